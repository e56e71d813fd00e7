#!/usr/bin/env bash
# scripts/gen-events-docs.sh - regenerate the event reference of docs/events.md from the
# schema table of core/bk_schema.c (versions and payload fields: `bookingctl events`), between
# its GENERATED markers; the hand-written text around them is left as it is. The test
# events_doc (tests/meson.build) runs --check.
#
# Usage: scripts/gen-events-docs.sh [--check] [BOOKINGCTL]   (default: build/cli/bookingctl)
#   --check  change nothing; exit 1 when docs/events.md is out of date
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CHECK=0
if [ "${1:-}" = "--check" ]; then
	CHECK=1
	shift
fi
BK=${1:-$ROOT/build/cli/bookingctl}
DOC=$ROOT/docs/events.md
BEGIN='<!-- BEGIN GENERATED'
END='<!-- END GENERATED -->'

die() {
	echo "gen-events-docs: $*" >&2
	exit 2
}
[ -x "$BK" ] || die "no bookingctl at $BK (build first: ninja -C build)"
[ -f "$DOC" ] || die "$DOC is missing"
if ! grep -q "^$BEGIN" "$DOC" || ! grep -q "^$END\$" "$DOC"; then
	die "$DOC lacks the GENERATED markers"
fi

T=$(mktemp -d /tmp/gen-events-docs.XXXXXX)
trap 'rm -rf "$T"' EXIT
"$BK" events >"$T/generated.md"
awk -v begin="$BEGIN" -v end="$END" -v gen="$T/generated.md" '
	index($0, begin) == 1 { print; print ""; while ((getline l < gen) > 0) print l; skip = 1; next }
	$0 == end { skip = 0 }
	!skip { print }
' "$DOC" >"$T/events.md"

if [ "$CHECK" = 1 ]; then
	if cmp -s "$T/events.md" "$DOC"; then
		echo "gen-events-docs: docs/events.md is up to date"
		exit 0
	fi
	echo "stale: docs/events.md"
	diff -u "$DOC" "$T/events.md" | head -n 40 || true
	echo "gen-events-docs: run scripts/gen-events-docs.sh to regenerate" >&2
	exit 1
fi
cp "$T/events.md" "$DOC"
echo "gen-events-docs: wrote docs/events.md"
