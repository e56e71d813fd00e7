#!/usr/bin/env bash
# tests/test_fsm_cli.sh - `bookingctl fsm` end to end: Markdown and DOT for every machine,
# --lint on the real tables, usage errors. The names and row counts expected in the output
# are read from core/bk_fsm.[ch], not from the binary, so the check does not trust the
# renderer it tests. Usage: test_fsm_cli.sh BOOKINGCTL [SRCDIR]   (TAP on stdout)
# shellcheck disable=SC2016 # the checks are eval'd: single quotes on purpose
set -uo pipefail

BK=${1:?usage: test_fsm_cli.sh BOOKINGCTL [SRCDIR]}
SRC=${2:-$(cd "$(dirname "$0")/.." && pwd)}
FSM_C=$SRC/core/bk_fsm.c
FSM_H=$SRC/core/bk_fsm.h

T=$(mktemp -d /tmp/bk-test-fsm-cli.XXXXXX)
trap 'rm -rf "$T"' EXIT

n=0
failed=0
ok() {
	n=$((n + 1))
	echo "ok $n - $1"
}
not_ok() {
	n=$((n + 1))
	failed=$((failed + 1))
	echo "not ok $n - $1"
	for f in "$T/out" "$T/err"; do
		[ -s "$f" ] && head -n 20 "$f" | sed "s|^|#   $(basename "$f"): |"
	done
	return 0
}
check() { # check DESCRIPTION COMMAND...: ok when COMMAND succeeds
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}
# run ARGS...: bookingctl fsm ARGS, stdout in $T/out, stderr in $T/err, status in $rc
run() {
	"$BK" fsm "$@" >"$T/out" 2>"$T/err"
	rc=$?
}

# --- what the tables hold, from the source ------------------------------------------
block() { # block START_REGEX: the lines from START_REGEX to the next "};"
	sed -n "/$1/,/^};/p" "$FSM_C"
}
names_of() { # the quoted names in a name table
	block "$1" | grep -o '= "[^"]*"' | sed 's/^= "//; s/"$//'
}
cmd_name() { # BK_CMD_ORDER_CREATE -> order.create (from BK_CMD_MAP in the header)
	sed -n "s/.*X(${1#BK_CMD_}, \"\\([^\"]*\\)\").*/\\1/p" "$FSM_H"
}
card_op_name() { # BK_CO_OPEN -> open
	block 'card_op_names\[' | sed -n "s/.*\\[$1\\] = \"\\([^\"]*\\)\".*/\\1/p"
}
rows_of() { # number of rows of a table (each row opens with "{index, ")
	block "$1" | grep -cE '^[[:space:]]*\{[0-9]+, '
}

mapfile -t STATUSES < <(names_of 'status_names\[BK_ST__COUNT\]')
mapfile -t OSTATES < <(names_of 'ostate_names\[BK_OS__COUNT\]')
mapfile -t CARD_STATES < <(names_of 'card_state_names\[BK_CS__COUNT\]')
mapfile -t MS_STATES < <(names_of 'ms_state_names\[BK_MS__COUNT\]')
mapfile -t CARD_TYPES < <(names_of 'card_type_names\[BK_CT__COUNT\]')
STATUS_CMDS=()
for sym in $(block '^const bk_status_row bk_status_table' | grep -o 'BK_CMD_[A-Z_]*' | sort -u); do
	STATUS_CMDS+=("$(cmd_name "$sym")")
done
MS_CMDS=()
for sym in $(block '^const bk_ms_row bk_ms_table' | grep -o 'BK_CMD_[A-Z_]*' | sort -u); do
	MS_CMDS+=("$(cmd_name "$sym")")
done
CARD_OPS=()
for sym in $(block '^const bk_card_row bk_card_table' | grep -o 'BK_CO_[A-Z_]*' | sort -u); do
	CARD_OPS+=("$(card_op_name "$sym")")
done
N_STATUS_ROWS=$(rows_of '^const bk_status_row bk_status_table')
N_CARD_ROWS=$(rows_of '^const bk_card_row bk_card_table')
N_MS_ROWS=$(rows_of '^const bk_ms_row bk_ms_table')
N_PROFILE_ROWS=$(rows_of '^const bk_profile_row bk_profile_table')
mapfile -t PROFILE_STATES < <(names_of 'profile_state_names\[BK_PS__COUNT\]')
PROFILE_CMDS=()
for sym in $(block '^const bk_profile_row bk_profile_table' | grep -o 'BK_CMD_[A-Z_]*' | sort -u); do
	PROFILE_CMDS+=("$(cmd_name "$sym")")
done

sane=1
for v in "${#STATUSES[@]}" "${#OSTATES[@]}" "${#CARD_STATES[@]}" "${#MS_STATES[@]}" \
	"${#CARD_TYPES[@]}" "${#STATUS_CMDS[@]}" "${#MS_CMDS[@]}" "${#CARD_OPS[@]}" \
	"$N_STATUS_ROWS" "$N_CARD_ROWS" "$N_MS_ROWS" "$N_PROFILE_ROWS" "${#PROFILE_STATES[@]}" \
	"${#PROFILE_CMDS[@]}"; do
	[ "$v" -gt 0 ] || sane=0
done
for v in "${STATUS_CMDS[@]}" "${MS_CMDS[@]}" "${CARD_OPS[@]}" "${PROFILE_CMDS[@]}"; do
	[ -n "$v" ] || sane=0
done
: >"$T/out"
: >"$T/err"
check "names and rows read from $FSM_C (${#STATUSES[@]} statuses, ${#STATUS_CMDS[@]} status commands, $N_STATUS_ROWS/$N_CARD_ROWS/$N_MS_ROWS rows)" \
	test "$sane" = 1

# all_in FILE WORD...: every WORD occurs in FILE as `word` or as a whole word
all_in() {
	local f=$1 w missing=()
	shift
	for w in "$@"; do
		grep -qF -- "$w" "$f" || missing+=("$w")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		echo "missing: ${missing[*]}" >>"$T/err"
		return 1
	fi
}
# table_rows FILE: Markdown rows that start with a row index
table_rows() {
	grep -cE '^\| [0-9]+ \| ' "$1"
}

# --- help ----------------------------------------------------------------------------
run --help
check "--help exits 0 with the usage on stdout" \
	eval '[ "$rc" = 0 ] && grep -q "usage: bookingctl fsm" "$T/out"'

# --- Markdown --------------------------------------------------------------------------
run --format markdown --machine all
cp "$T/out" "$T/all.md"
check "markdown all: exit 0" test "$rc" = 0
check "markdown all: every status name" all_in "$T/all.md" "${STATUSES[@]}"
check "markdown all: every command of the status table" all_in "$T/all.md" \
	"${STATUS_CMDS[@]/#/\`}"
check "markdown all: every card op, card state and card type" all_in "$T/all.md" \
	"${CARD_OPS[@]/#/\`}" "${CARD_STATES[@]}" "${CARD_TYPES[@]}"
check "markdown all: every milestone command and state" all_in "$T/all.md" \
	"${MS_CMDS[@]/#/\`}" "${MS_STATES[@]}"
check "markdown all: every order_state" all_in "$T/all.md" "${OSTATES[@]}"
check "markdown all: every profile command and state" all_in "$T/all.md" \
	"${PROFILE_CMDS[@]}" "${PROFILE_STATES[@]}"
run
check "markdown is the default format and all the default machine" cmp -s "$T/out" "$T/all.md"

run --format markdown --machine status
check "markdown status: one table line per row ($N_STATUS_ROWS)" \
	eval '[ "$rc" = 0 ] && [ "$(table_rows "$T/out")" = "$N_STATUS_ROWS" ]'
check "markdown status: guards and the no-order start shown" \
	eval 'grep -q "amount = total" "$T/out" && grep -q "no order yet" "$T/out"'
run --format markdown --machine card
check "markdown card: one table line per row ($N_CARD_ROWS)" \
	eval '[ "$rc" = 0 ] && [ "$(table_rows "$T/out")" = "$N_CARD_ROWS" ]'
check "markdown card: has the who and who-may-open columns" \
	grep -q '^| # | op | card types | from | to | who | who may open |$' "$T/out"
run --format markdown --machine milestone
check "markdown milestone: one table line per row ($N_MS_ROWS)" \
	eval '[ "$rc" = 0 ] && [ "$(table_rows "$T/out")" = "$N_MS_ROWS" ]'
run --format markdown --machine profile
check "markdown profile: one table line per row ($N_PROFILE_ROWS)" \
	eval '[ "$(table_rows "$T/out")" = "$N_PROFILE_ROWS" ] && grep -qF "| \`profile.bind\` | system |" "$T/out"'
# the lifecycle tables: one table line per row of each (rows counted in core/bk_fsm.c)
for pair in request:req_rows invite_recipient:rcp_rows dispute:dsp_rows; do
	m=${pair%%:*} tbl=${pair##*:}
	nr=$(rows_of "^static const bk_life_row $tbl")
	run --format markdown --machine "$m"
	check "markdown $m: one table line per row ($nr)" \
		eval '[ "$rc" = 0 ] && [ "$nr" -gt 0 ] && [ "$(table_rows "$T/out")" = "$nr" ]'
done
run --format markdown --machine order_state
check "markdown order_state: maps every status" \
	eval '[ "$rc" = 0 ] && all_in "$T/out" "${STATUSES[@]}" "${OSTATES[@]}"'

# --- DOT -------------------------------------------------------------------------------
have_dot=0
command -v dot >/dev/null 2>&1 && have_dot=1
for m in status card milestone order_state profile request invite_recipient dispute all; do
	run --format dot --machine "$m"
	want=1
	[ "$m" = all ] && want=8
	check "dot $m: exit 0, $want digraph(s), a point start node" \
		eval '[ "$rc" = 0 ] && [ "$(grep -c "^digraph " "$T/out")" = "$want" ] &&
		      grep -q "\"__start\" \[shape=point" "$T/out"'
	if [ "$have_dot" = 1 ]; then
		cp "$T/out" "$T/in.dot"
		dot -Tsvg "$T/in.dot" >"$T/out" 2>"$T/err"
		rc=$?
		check "dot $m: accepted by dot -Tsvg without warnings" \
			eval '[ "$rc" = 0 ] && [ ! -s "$T/err" ] && grep -q "<svg" "$T/out"'
	else
		ok "dot $m: accepted by dot -Tsvg # SKIP graphviz not installed"
	fi
done
run --format dot --machine status
check "dot status: edges labelled command [actor] (guard)" \
	eval 'grep -qF "order.create [buyer]" "$T/out" &&
	      grep -qF "payment.captured [system] (amount = total)" "$T/out"'
check "dot status: rows that keep the status are omitted with a note" \
	eval 'grep -q "Not drawn: rows that keep the status" "$T/out" &&
	      ! grep -qE "\"([a-z_]+)\" -> \"\\1\"" "$T/out"'

# --- lint ------------------------------------------------------------------------------
run --lint
check "--lint on the real tables: exit 0, fsm lint: ok" \
	eval '[ "$rc" = 0 ] && grep -q "^fsm lint: ok (" "$T/out"'
for m in status card milestone order_state profile request invite_recipient dispute; do
	run --lint --machine "$m"
	check "--lint --machine $m: exit 0" eval '[ "$rc" = 0 ] && grep -q "$m: " "$T/out"'
done

# --- bad usage -------------------------------------------------------------------------
bad() { # bad DESCRIPTION ARGS...: exit 2, a message on stderr, nothing on stdout
	local what=$1
	shift
	run "$@"
	check "bad usage ($what): exit 2 with a message" \
		eval '[ "$rc" = 2 ] && [ -s "$T/err" ] && [ ! -s "$T/out" ]'
}
bad "unknown format" --format xml
bad "unknown machine" --machine nope
bad "unknown option" --bogus
bad "missing argument" --format
bad "stray argument" extra
bad "--lint with --format" --lint --format dot

echo "1..$n"
[ "$failed" = 0 ]
