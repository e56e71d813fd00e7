#!/usr/bin/env bash
# scripts/gen-wire-docs.sh - regenerate the parts of docs/wire.md the code holds as data
# (command types and roles, error codes, partition vectors: `bookingctl wire`), between
# its GENERATED markers; the hand-written text around them is left as it is and checked
# against the code by tests/test_wire_doc.sh.
#
# Usage: scripts/gen-wire-docs.sh [--check] [BOOKINGCTL]   (default: build/cli/bookingctl)
#   --check  change nothing; exit 1 when docs/wire.md is out of date
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CHECK=0
if [ "${1:-}" = "--check" ]; then
	CHECK=1
	shift
fi
BK=${1:-$ROOT/build/cli/bookingctl}
DOC=$ROOT/docs/wire.md
BEGIN='<!-- BEGIN GENERATED'
END='<!-- END GENERATED -->'

die() {
	echo "gen-wire-docs: $*" >&2
	exit 2
}
[ -x "$BK" ] || die "no bookingctl at $BK (build first: ninja -C build)"
[ -f "$DOC" ] || die "$DOC is missing"
if ! grep -q "^$BEGIN" "$DOC" || ! grep -q "^$END\$" "$DOC"; then
	die "$DOC lacks the GENERATED markers"
fi

T=$(mktemp -d /tmp/gen-wire-docs.XXXXXX)
trap 'rm -rf "$T"' EXIT
"$BK" wire >"$T/generated.md"
awk -v begin="$BEGIN" -v end="$END" -v gen="$T/generated.md" '
	index($0, begin) == 1 { print; print ""; while ((getline l < gen) > 0) print l; skip = 1; next }
	$0 == end { skip = 0 }
	!skip { print }
' "$DOC" >"$T/wire.md"

if [ "$CHECK" = 1 ]; then
	if cmp -s "$T/wire.md" "$DOC"; then
		echo "gen-wire-docs: docs/wire.md is up to date"
		exit 0
	fi
	echo "stale: docs/wire.md"
	diff -u "$DOC" "$T/wire.md" | head -n 40 || true
	echo "gen-wire-docs: run scripts/gen-wire-docs.sh to regenerate" >&2
	exit 1
fi
cp "$T/wire.md" "$DOC"
echo "gen-wire-docs: wrote docs/wire.md"
