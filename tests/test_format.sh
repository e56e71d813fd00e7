#!/usr/bin/env bash
# tests/test_format.sh - every *.c and *.h under core/ and lib/ (the stable code) is formatted
# by the repository's .clang-format (clang-format --dry-run --Werror): one TAP line per file.
# Skipped (TAP "1..0 # SKIP") when clang-format is not installed. The whole tree, with
# cppcheck and clang-tidy too, is scripts/lint. Usage: test_format.sh [SRCDIR]   (TAP on stdout)
set -uo pipefail

SRC=${1:-$(cd "${0%/*}/.." && pwd)}
cd "$SRC" || {
	echo "Bail out! cannot enter $SRC"
	exit 1
}

if ! command -v clang-format >/dev/null 2>&1; then
	echo "1..0 # SKIP clang-format is not installed"
	exit 0
fi

mapfile -t files < <(find core lib -type f \( -name '*.c' -o -name '*.h' \) | LC_ALL=C sort)
echo "1..$((${#files[@]} + 1))"

n=1
failed=0
# Without the file clang-format would quietly judge by its fallback (LLVM) style.
if [ -f .clang-format ]; then
	echo "ok $n - .clang-format is at the top of the tree"
else
	echo "not ok $n - .clang-format is at the top of the tree"
	failed=$((failed + 1))
fi

out=$(mktemp /tmp/bk-test-format.XXXXXX)
trap 'rm -f "$out"' EXIT
for f in "${files[@]}"; do
	n=$((n + 1))
	if clang-format --style=file --dry-run --Werror "$f" >/dev/null 2>"$out"; then
		echo "ok $n - $f is clang-formatted"
	else
		failed=$((failed + 1))
		echo "not ok $n - $f is clang-formatted (fix: clang-format -i $f)"
		head -n 12 "$out" | sed 's/^/#   /'
	fi
done
[ "$failed" -eq 0 ]
