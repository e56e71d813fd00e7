#!/usr/bin/env bash
# scripts/gen-fsm-docs.sh - regenerate the state-machine docs from the tables, through the
# built binary: the generated part of docs/fsm.md (between its GENERATED markers, from
# `bookingctl fsm --format markdown --machine all`) and docs/fsm/<machine>.dot and .svg.
# The prose of docs/fsm.md outside the markers is left as it is.
#
# Usage: scripts/gen-fsm-docs.sh [--check] [BOOKINGCTL]   (default: build/cli/bookingctl)
#   --check  change nothing; exit 1 when docs/fsm.md or docs/fsm/*.dot are out of date
#            (the SVGs are not compared: their bytes depend on the Graphviz version).
# Needs Graphviz `dot` to write the SVGs (apt-get install graphviz).
set -euo pipefail
# shellcheck source=scripts/gen-doc-lib.sh
. "$(dirname "$0")/gen-doc-lib.sh"

gd_start gen-fsm-docs docs/fsm.md "$@"
SVGDIR=$ROOT/docs/fsm
MACHINES=(status card milestone order_state profile request invite_recipient dispute)

# Lint first: docs of broken tables are still written, but say so.
if ! "$BK" fsm --lint >"$T/lint"; then
	echo "gen-fsm-docs: warning: bookingctl fsm --lint found problems:" >&2
	sed 's/^/  /' "$T/lint" >&2
fi

"$BK" fsm --format markdown --machine all >"$T/generated.md"
gd_splice "$T/generated.md" "$T/fsm.md"
for m in "${MACHINES[@]}"; do
	"$BK" fsm --format dot --machine "$m" >"$T/$m.dot"
done

if [ "$CHECK" = 1 ]; then
	stale=0
	cmp -s "$T/fsm.md" "$DOC" || { echo "stale: docs/fsm.md"; stale=1; }
	for m in "${MACHINES[@]}"; do
		cmp -s "$T/$m.dot" "$SVGDIR/$m.dot" || { echo "stale: docs/fsm/$m.dot"; stale=1; }
	done
	[ "$stale" = 0 ] && echo "gen-fsm-docs: docs are up to date"
	[ "$stale" = 0 ] || echo "gen-fsm-docs: run scripts/gen-fsm-docs.sh to regenerate" >&2
	exit "$stale"
fi

command -v dot >/dev/null || gd_die "Graphviz dot not found (apt-get install graphviz)"
mkdir -p "$SVGDIR"
for m in "${MACHINES[@]}"; do
	dot -Tsvg "$T/$m.dot" >"$T/$m.svg"
	cp "$T/$m.dot" "$SVGDIR/$m.dot"
	cp "$T/$m.svg" "$SVGDIR/$m.svg"
done
cp "$T/fsm.md" "$DOC"
echo "gen-fsm-docs: wrote docs/fsm.md and docs/fsm/{$(
	IFS=,
	echo "${MACHINES[*]}"
)}.{dot,svg}"
