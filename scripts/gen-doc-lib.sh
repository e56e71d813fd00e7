# scripts/gen-doc-lib.sh - what the doc generators share (sourced by gen-fsm-docs.sh,
# gen-wire-docs.sh, gen-events-docs.sh): their arguments, the GENERATED markers of the
# doc they write, splicing generated text between those markers (the hand-written text
# around them is left as it is), and the --check / write ending of a one-file doc.
#
# gd_start NAME DOC ARGS...: parse [--check] [BOOKINGCTL]; sets ROOT, CHECK, BK, DOC
# (absolute), T (a temporary directory removed at exit); exits 2 when bookingctl, the doc
# or its markers are missing.
gd_start() {
	GD_NAME=$1
	ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
	DOC=$ROOT/$2
	shift 2
	CHECK=0
	if [ "${1:-}" = "--check" ]; then
		CHECK=1
		shift
	fi
	BK=${1:-$ROOT/build/cli/bookingctl}
	GD_BEGIN='<!-- BEGIN GENERATED'
	GD_END='<!-- END GENERATED -->'
	[ -x "$BK" ] || gd_die "no bookingctl at $BK (build first: ninja -C build)"
	[ -f "$DOC" ] || gd_die "$DOC is missing"
	if ! grep -q "^$GD_BEGIN" "$DOC" || ! grep -q "^$GD_END\$" "$DOC"; then
		gd_die "$DOC lacks the GENERATED markers"
	fi
	T=$(mktemp -d "/tmp/$GD_NAME.XXXXXX")
	trap 'rm -rf "$T"' EXIT
}

gd_die() {
	echo "$GD_NAME: $*" >&2
	exit 2
}

# gd_splice GENERATED OUT: DOC with GENERATED between its markers, into OUT.
gd_splice() {
	awk -v begin="$GD_BEGIN" -v end="$GD_END" -v gen="$1" '
		index($0, begin) == 1 { print; print ""; while ((getline l < gen) > 0) print l; skip = 1; next }
		$0 == end { skip = 0 }
		!skip { print }
	' "$DOC" >"$2"
}

# gd_finish NEW: with --check, exit 0 when NEW equals DOC, else show the difference and
# exit 1; without it, write NEW to DOC.
gd_finish() {
	local rel=${DOC#"$ROOT"/}
	if [ "$CHECK" = 1 ]; then
		if cmp -s "$1" "$DOC"; then
			echo "$GD_NAME: $rel is up to date"
			exit 0
		fi
		echo "stale: $rel"
		diff -u "$DOC" "$1" | head -n 40 || true
		echo "$GD_NAME: run scripts/$GD_NAME.sh to regenerate" >&2
		exit 1
	fi
	cp "$1" "$DOC"
	echo "$GD_NAME: wrote $rel"
}
