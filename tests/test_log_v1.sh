#!/usr/bin/env bash
# tests/test_log_v1.sh - the schema-1 log must outlive its code (issue #14): the log
# written on 2026-12-02 by that day's processor (fixtures/log-v1: commands, the events as a
# replay file with its seals, the writer keyring; made by tests/make_log_v1.sh) must
# rebuild, with its seals checked, to the read model that the same commands give when
# processed and projected by the code of today. Run by every later schema change. Its
# money events are schema 1 and upcast on read (core/bk_upcast.c); today's are schema 2,
# so the hash columns are compared apart (4.).
# Usage: test_log_v1.sh SRC BUILD_DIR (TAP)
set -uo pipefail
SRC=${1:?usage} B=${2:?usage}
BK=$B/cli/bookingctl PROJ=$B/projector/booking-projector PROCESSOR=$B/commands/booking-commands
FEED=$B/tests/test_projector_feed
FX=$SRC/fixtures/log-v1
# shellcheck source=tests/harness.sh
. "$SRC/tests/harness.sh"
T=$(mktemp -d /tmp/bk-test-log-v1.XXXXXX)
chmod 755 "$T"
# shellcheck source=tests/test_projector_lib.sh
. "$SRC/tests/test_projector_lib.sh"
# shellcheck source=tests/log_v1_lib.sh
. "$SRC/tests/log_v1_lib.sh"
A=bkt_lv1_a_$$ C=bkt_lv1_c_$$
cleanup() {
	pj_broker_stop
	if [ -n "${PGPORT:-}" ]; then pg_dropdb "$A"; pg_dropdb "$C"; fi
	bk_pg_teardown "$T/pg"
	rm -rf "$T"
}
trap cleanup EXIT
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() {
	n=$((n + 1)) failed=$((failed + 1))
	echo "not ok $n - $1"
	[ -n "${2:-}" ] && [ -s "$2" ] && tail -n 15 "$2" | sed 's/^/#   /'
}
check() { # check DESCRIPTION COMMAND...
	local d=$1
	shift
	if "$@" >"$T/check.out" 2>&1; then ok "$d"; else not_ok "$d" "$T/check.out"; fi
}
# the read model without the rules (a replay file holds no booking.rules), the timeline
# without its hash columns: those are the hashes of the stored bytes, and today's code
# stores its money events at schema 2 (with currency), so from an order's first money
# event on its hashes differ from the old log's by design (compared in 4. below)
dump() {
	pj_dump "$1" | awk '/^## /{skip = ($2 == "booking.autoaccept_rule" || $2 == "ord.timeline_event")} !skip'
	echo "## ord.timeline_event (without hash, prev_hash)"
	PGTZ=UTC psql -X -q -A -t -F '|' -v ON_ERROR_STOP=1 -d "$1" -c "select event_id, order_id,
		kind, subtype, actor_user_id, payload, created_at, seq, command_id, schema
		from ord.timeline_event order by order_id, seq"
}
# order_id seq subtype hash: one line per event
hashes() {
	psql -X -q -A -t -F ' ' -v ON_ERROR_STOP=1 -d "$1" -c "select order_id, seq, subtype,
		encode(hash, 'hex') from ord.timeline_event order by order_id, seq"
}

bk_pg_setup "$T/pg" 2>"$T/pg.err" || { echo "Bail out! PostgreSQL: $(cat "$T/pg.err")"; exit 1; }
export PGHOST PGPORT PGUSER
pj_broker 4 || { echo "Bail out! cannot start the dev broker"; exit 1; }
for db in "$A" "$C"; do pj_db "$db" || { echo "Bail out! cannot create $db"; exit 1; }; done
export BOOKING_MIGRATIONS=$SRC/migrations

# 1. the old log, rebuilt from its file with its seals checked
"$BK" rebuild -d "dbname=$A" --topic-prefix v1. --from-file "$FX/events.replay" \
	--writer-keyring "$FX/writers.keyring" \
	>"$T/rb.out" 2>&1
rc=$?
if [ "$rc" = 0 ]; then ok "rebuild --from-file of the 2026-12-02 log exits 0"; else
	not_ok "rebuild --from-file of the 2026-12-02 log exits 0 (rc $rc)" "$T/rb.out"; fi
check "every record sealed by that day's writer, none rejected" \
	bash -c "[ \"\$(psql -X -A -t -d $A -c 'select count(*) from booking_proj.rejected')\" = 0 ]"
events=$(pj_q "$A" "select count(*) from ord.timeline_event")
check "its events are all projected ($events)" test "$events" -gt 1000

# 2. the same commands, processed and projected by today's code
"$BK" devbroker ctl --control "$T/ctl" ping >/dev/null 2>&1
for t in commands events command-results rules dlq snapshots; do
	"$BK" devbroker ctl --control "$T/ctl" topic "now.booking.$t" 4 >/dev/null 2>&1
done
lv1_process "$FX/commands.jsonl" now.
check "today's processor answers every command of the stream ($(grep -c . "$FX/commands.jsonl"))" \
	test "$(grep -c . "$T/lv1.results.now." 2>/dev/null)" = "$(grep -c . "$FX/commands.jsonl")"
pj_project "$C" now. lv1-proj --writer-keyring "$T/lv1.writers"
check "today's read model has the same number of events" \
	test "$(pj_q "$C" "select count(*) from ord.timeline_event")" = "$events"

# 3. the same read model, row for row (event ids, hashes, money, statuses, cards...)
dump "$A" >"$T/a.dump"
dump "$C" >"$T/c.dump"
check "the old log's read model equals today's ($(grep -vc '^## ' "$T/a.dump") rows)" \
	diff -u "$T/a.dump" "$T/c.dump"
check "the old log's read model shows its money events upcast to schema 2" \
	test "$(pj_q "$A" "select count(*) from ord.timeline_event where schema = 2 and
		payload ? 'currency'")" -gt 100

# 4. the hashes: the old log's are the ones it stores (the chain links in the read model),
# equal to today's up to each order's first money event (the same bytes), different from
# it on (schema 2 bytes): had the old events been hashed again after the upcast, they
# would equal today's there
check "the old log's hash chain links in the read model" \
	test "$(pj_q "$A" "select count(*) from (select seq, prev_hash, lag(hash) over
		(partition by order_id order by seq) as before from ord.timeline_event) t
		where seq > 1 and prev_hash is distinct from before")" = 0
hashes "$A" >"$T/a.hashes"
hashes "$C" >"$T/c.hashes"
paste -d ' ' "$T/a.hashes" "$T/c.hashes" | awk '
	$1 != $5 || $2 != $6 { bad++; next }
	$1 != ord { ord = $1; money = 0 }
	$3 ~ /^(payment\.captured|payment\.refunded|tip\.added|card\.extras\.accepted|card\.expense\.accepted)$/ { money = 1 }
	money { if ($4 == $8) bad++; else differ++; next }
	{ if ($4 != $8) bad++; else same++ }
	END { print same + 0, differ + 0, bad + 0 }' >"$T/hash.cmp"
read -r same differ bad <"$T/hash.cmp"
check "hashes equal before an order's first money event ($same), differ from it on ($differ)" \
	test "$bad" = 0 -a "$same" -gt 100 -a "$differ" -gt 100
echo "1..$n"
[ "$failed" = 0 ]
