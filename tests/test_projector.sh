#!/usr/bin/env bash
# tests/test_projector.sh - booking-projector against the dev broker and a real PostgreSQL
# (TAP). Each case has its own topics (prefix) and database:
#  - every fixture scenario: the projected rows equal tests/golden/<fixture>.txt
#    (BK_GOLDEN_UPDATE=1 rewrites them: review the diff against SPEC before committing);
#  - duplicated records and a forked record: nothing applied twice, the fork reported;
#  - a poison event: only its order is quarantined; retry after the fix applies it, and the
#    result equals a clean projection; a garbage record: rejected alone, nothing held;
#  - bookingctl status and quarantine exit codes; the pipelined write path gives the
#    same rows as the COPY path.
# Usage: test_projector.sh SRCDIR BOOKINGCTL BOOKING_PROJECTOR TEST_PROJECTOR_FEED
set -uo pipefail

SRC=${1:?usage}
BK=${2:?usage}
PROJ=${3:?usage}
FEED=${4:?usage}
# shellcheck source=tests/harness.sh
. "$SRC/tests/harness.sh"
# shellcheck source=tests/test_projector_lib.sh
. "$SRC/tests/test_projector_lib.sh"

T=$(mktemp -d /tmp/bk-test-projector.XXXXXX)
chmod 755 "$T"
DBS=()
cleanup() {
	pj_broker_stop
	for d in "${DBS[@]}"; do pg_dropdb "$d"; done
	bk_pg_teardown "$T/pg"
	[ -n "${BK_KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT

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
	shift
	local f
	for f in "$@"; do
		[ -s "$f" ] && tail -n 30 "$f" | sed 's/^/#   /'
	done
}
check() { # check DESCRIPTION COMMAND...
	local d=$1
	shift
	if "$@" >"$T/check.out" 2>&1; then ok "$d"; else not_ok "$d" "$T/check.out"; fi
}

if ! bk_pg_setup "$T/pg" 2>"$T/pg.err"; then
	echo "Bail out! cannot start PostgreSQL: $(tr '\n' ' ' <"$T/pg.err")"
	exit 1
fi
export PGHOST PGPORT PGUSER
pj_broker 4 || { echo "Bail out! cannot start the dev broker"; exit 1; }
ID=$$

# --- every fixture, projected in parallel (own topics, database, group each) ----------
names=()
for f in "$SRC"/fixtures/*.jsonl; do
	names+=("$(basename "$f" .jsonl)")
done
pids=()
for name in "${names[@]}"; do
	db=bkt_pj_${ID}_$(echo "$name" | tr -c 'a-z0-9_\n' '_')
	DBS+=("$db")
	pj_db "$db" || { echo "Bail out! cannot create $db"; exit 1; }
	pj_feed "fx_${name}_$ID." 4 "$SRC/fixtures/$name.jsonl" >"$T/feed.$name" 2>&1 ||
		echo "# feed $name failed: $(cat "$T/feed.$name")"
	pj_start "$db" "fx_${name}_$ID." "g_${name}_$ID"
	pids+=("$PJ_PID")
done
i=0
for name in "${names[@]}"; do
	db=${DBS[$i]}
	pj_wait "$db" "fx_${name}_$ID." 120 || echo "# $name: not caught up: $(tail -n 3 "$T/status.out")"
	i=$((i + 1))
done
for p in "${pids[@]}"; do pj_stop "$p"; done
mkdir -p "$SRC/tests/golden"
i=0
for name in "${names[@]}"; do
	db=${DBS[$i]}
	i=$((i + 1))
	pj_dump "$db" >"$T/dump.$name" 2>&1
	gold=$SRC/tests/golden/$name.txt
	if [ "${BK_GOLDEN_UPDATE:-0}" = 1 ]; then
		cp "$T/dump.$name" "$gold"
	fi
	q=$(pj_q "$db" "select count(*) from booking_proj.quarantine")
	if [ -f "$gold" ] && diff -u "$gold" "$T/dump.$name" >"$T/diff.$name" && [ "$q" = 0 ]; then
		ok "fixture $name: projected rows equal tests/golden/$name.txt"
	else
		echo "# quarantined rows: $q" >>"$T/diff.$name"
		not_ok "fixture $name: projected rows equal tests/golden/$name.txt" "$T/diff.$name" \
			"$T/proj.g_${name}_$ID.log"
	fi
done

# the confirmed-only address: no order that was never confirmed shows one
check "location_address is NULL on orders never confirmed" bash -c "
	for d in ${DBS[*]}; do
		c=\$(psql -X -A -t -d \$d -c \"select count(*) from booking.order o where location_address is not null and not exists (select 1 from ord.timeline_event t where t.order_id = o.order_id and t.subtype = 'order.confirmed')\")
		[ \"\$c\" = 0 ] || exit 1
	done"
# a column that is a schema row and a migration only (070, booking.order.captured_cents from
# payment.captured's amount_cents): filled on every captured order, NULL on the others
check "captured_cents = payment.captured's amount_cents on every captured order, NULL elsewhere" bash -c "
	n=0
	for d in ${DBS[*]}; do
		bad=\$(psql -X -A -t -d \$d -c \"select count(*) from booking.order o left join ord.timeline_event t on t.order_id = o.order_id and t.subtype = 'payment.captured' where o.captured_cents is distinct from (t.payload->>'amount_cents')::int\")
		[ \"\$bad\" = 0 ] || exit 1
		n=\$((n + \$(psql -X -A -t -d \$d -c \"select count(*) from booking.order where captured_cents > 0\")))
	done
	[ \$n -gt 5 ]"

# --- the logs of the cases below, and their projections at once --------------------------
# Each projection has its own database, group and (but for the three over the poison log
# and the three over the big log) topics; nothing one does reaches another, so they run
# together, as the fixtures' do above, instead of one after the other. The checks follow,
# case by case; only the poison case's retry projects again.
FX=card_supersede_counter_cancel_expire
ord=$(grep -o '"order_id":"ord_[^"]*"' "$SRC/fixtures/$FX.jsonl" | head -n1 | cut -d'"' -f4)
pj_feed "dup_$ID." 4 --dup-every 2 --fork "$ord" "$SRC/fixtures/$FX.jsonl" >"$T/feed.dup" 2>&1
pj_feed "poison_$ID." 4 --copies 3 "$SRC/fixtures/card_extras.jsonl" >"$T/feed.poison" 2>&1
pj_feed "big_$ID." 4 --copies 6 "$SRC"/fixtures/*.jsonl >"$T/feed.big" 2>&1
pj_feed "garb_$ID." 4 --garbage ord_garbage_1 "$SRC/fixtures/rtb_accept.jsonl" >"$T/feed.g" 2>&1
pj_feed "arch_$ID." 4 --archive-after 86400 "$SRC/fixtures/cancellations.jsonl" \
	"$SRC/fixtures/rtb_accept.jsonl" >"$T/feed.arch" 2>&1
for d in dupfork poison poison_clean pipe bbig bsmall bpipe garbage arch; do
	DBS+=("bkt_pj_${ID}_$d")
	pj_db "bkt_pj_${ID}_$d" || { echo "Bail out! cannot create bkt_pj_${ID}_$d"; exit 1; }
done
# the poison: a constraint (the "cause") refuses k2's extras line item
pj_q "bkt_pj_${ID}_poison" "alter table booking.line_item add constraint test_poison check (order_id <> 'ord_k2_cex_1' or kind <> 'extra')" >/dev/null
# DB PREFIX GROUP [ARGS], one a line
PROJECTIONS=(
	"dupfork dup g_dup"
	"poison poison g_poison"
	"poison_clean poison g_poison_clean"
	"pipe poison g_pipe --write-path pipeline"
	"bbig big g_bbig --batch-ms 2000"
	"bsmall big g_bsmall --batch-events 50"
	"bpipe big g_bpipe --write-path pipeline"
	"garbage garb g_garb"
	"arch arch g_arch"
)
ppids=()
for spec in "${PROJECTIONS[@]}"; do
	read -r d pfx g args <<<"$spec"
	# shellcheck disable=SC2086 # args: options, split on purpose
	pj_start "bkt_pj_${ID}_$d" "${pfx}_$ID." "${g}_$ID" $args
	ppids+=("$PJ_PID")
done
for spec in "${PROJECTIONS[@]}"; do
	read -r d pfx _ <<<"$spec"
	pj_wait "bkt_pj_${ID}_$d" "${pfx}_$ID." 120 || echo "# $d: not caught up: $(tail -n 3 "$T/status.out")"
done
for p in "${ppids[@]}"; do pj_stop "$p"; done

# --- duplicates and a fork --------------------------------------------------------------
db=bkt_pj_${ID}_dupfork
check "feed with duplicates and a fork" grep -q 'duplicates=[1-9]' "$T/feed.dup"
pj_dump "$db" >"$T/dump.dup"
check "duplicated records are applied once: rows equal the fixture's golden" \
	diff -u "$SRC/tests/golden/$FX.txt" "$T/dump.dup"
check "the fork is reported once and not applied" \
	test "$(pj_q "$db" "select count(*) || ' ' || min(order_id) from booking_proj.fork")" = "1 $ord"
check "no order is quarantined by duplicates or the fork" \
	test "$(pj_q "$db" "select count(*) from booking_proj.quarantine")" = 0
check "the fork is logged with its order and offset" \
	grep -q "msg=\"fork: event not applied\".*order_id=$ord" "$T/proj.g_dup_$ID.log"
"$BK" status -d "dbname=$db" --brokers-file "$T/bootstrap" --topic-prefix "dup_$ID." >"$T/st.dup" 2>&1
check "bookingctl status: caught up, 1 fork, exit 0" \
	bash -c "grep -q 'forks reported: 1' '$T/st.dup' && grep -q 'total lag: 0 ' '$T/st.dup'"

# --- a poison event ------------------------------------------------------------------------
# Three copies of card_extras; a constraint (the "cause") refuses k2's extras line item.
db=bkt_pj_${ID}_poison
clean=bkt_pj_${ID}_poison_clean
check "the poisoned order is quarantined, held at the refused event" \
	test "$(pj_q "$db" "select string_agg(distinct order_id, ',') || ' ' || min(seq) || ' ' || min(status) from booking_proj.quarantine")" = "ord_k2_cex_1 9 held"
check "the poisoned order kept the events before the refused one" \
	test "$(pj_q "$db" "select version from ord.order_lock where order_id = 'ord_k2_cex_1'")" = 8
check "the other orders are complete" \
	test "$(pj_q "$db" "select string_agg(version::text, ',' order by order_id) from ord.order_lock where order_id <> 'ord_k2_cex_1'")" = "9,9"
check "the reason names the constraint" \
	bash -c "psql -X -A -t -d $db -c 'select reason from booking_proj.quarantine' | grep -q test_poison"
"$BK" status -d "dbname=$db" --brokers-file "$T/bootstrap" --topic-prefix "poison_$ID." >"$T/st.p" 2>&1
check "bookingctl status lists the quarantined order and exits 1" \
	bash -c "test \$? -eq 0; '$BK' status -d dbname=$db --brokers-file '$T/bootstrap' --topic-prefix 'poison_$ID.' >/dev/null 2>&1; test \$? -eq 1 && grep -q 'ord_k2_cex_1' '$T/st.p'"
"$BK" quarantine list -d "dbname=$db" >"$T/ql" 2>&1
check "bookingctl quarantine list shows it" grep -q '^ord_k2_cex_1 *held' "$T/ql"
check "retry of an order that is not quarantined exits 1" \
	bash -c "'$BK' quarantine retry -d dbname=$db ord_nope >/dev/null 2>&1; test \$? -eq 1"
pj_q "$db" "alter table booking.line_item drop constraint test_poison" >/dev/null
check "bookingctl quarantine retry (after the fix)" "$BK" quarantine retry -d "dbname=$db" ord_k2_cex_1
pj_start "$db" "poison_$ID." "g_poison_$ID"
for _ in $(seq 1 100); do
	[ "$(pj_q "$db" "select count(*) from booking_proj.quarantine where status in ('held','retry')")" = 0 ] && break
	sleep 0.2
done
pj_stop "$PJ_PID"
check "the retried events are applied (rows applied)" \
	test "$(pj_q "$db" "select string_agg(distinct status, ',') from booking_proj.quarantine")" = applied
pj_dump "$db" >"$T/dump.poison"
pj_dump "$clean" >"$T/dump.clean"
check "after retry the rows equal a clean projection of the same log" \
	diff -u "$T/dump.clean" "$T/dump.poison"

# the pipelined write path projects the same rows
pipe=bkt_pj_${ID}_pipe
pj_dump "$pipe" >"$T/dump.pipe"
check "--write-path pipeline gives the same rows as copy" diff -u "$T/dump.clean" "$T/dump.pipe"

# --- big batches equal small ones ---------------------------------------------------------
# Every fixture, 6 copies (~2,500 records): in a few big batches (records decoded on two
# threads, new rows COPYed straight in with price snapshots computed by the projector, the
# orders of later batches patched) and in batches of 50 events (one thread, most rows
# patches, snapshots computed by PostgreSQL), then the pipelined path: the same rows.
for v in big small pipe; do pj_dump "bkt_pj_${ID}_b$v" >"$T/dump.b$v"; done
check "a log of $(sed -n 's/.*records=\([0-9]*\).*/\1/p' "$T/feed.big") records: batches of 50 events give the rows of big batches" \
	diff -u "$T/dump.bbig" "$T/dump.bsmall"
check "... and so does the pipelined path" diff -u "$T/dump.bbig" "$T/dump.bpipe"
check "... with nothing quarantined" \
	test "$(pj_q "bkt_pj_${ID}_bbig" "select count(*) from booking_proj.quarantine")" = 0

# --- an undecodable record: rejected alone (issue #10: quarantine is for valid events that
# fail to apply), reported in booking_proj.rejected, holding nothing back -----------------
db=bkt_pj_${ID}_garbage
check "an undecodable record is rejected alone: booking_proj.rejected names its key, verdict garbage" \
	test "$(pj_q "$db" "select order_id || ' ' || verdict || ' ' || coalesce(seq::text, 'null') from booking_proj.rejected")" = "ord_garbage_1 garbage null"
check "... and quarantines nothing" \
	test "$(pj_q "$db" "select count(*) from booking_proj.quarantine")" = 0
check "the other orders are projected" \
	diff -u "$SRC/tests/golden/rtb_accept.txt" <(pj_dump "$db")
check "bookingctl status exits 0 (nothing quarantined)" \
	"$BK" status -d "dbname=$db" --brokers-file "$T/bootstrap" --topic-prefix "garb_$ID."

# --- archiving (issue #11): the sweep's order.archived (a day after each settled order's
# last event) sets booking.order.archived_at, adds its timeline row, quarantines nothing;
# an order that is not settled (rtb_accept: confirmed) is not archived ------------------------
db=bkt_pj_${ID}_arch
TERMINAL="('completed','declined','cancelled_buyer','cancelled_provider','resolved')"
check "archiving: the settled orders are marked archived ($(pj_q "$db" "select count(*) from booking.order where archived_at is not null") of $(pj_q "$db" "select count(*) from booking.order")), the others not" \
	test "$(pj_q "$db" "select count(*) filter (where archived_at is not null), count(*) filter (where (archived_at is not null) <> (status in $TERMINAL)) from booking.order")" = "5|0"
check "... archived_at is the time of the order's event before it (by seq) plus the window, that of its order.archived timeline row" \
	test "$(pj_q "$db" "select count(*) from booking.order o join ord.timeline_event a on a.order_id = o.order_id and a.subtype = 'order.archived' join ord.timeline_event b on b.order_id = o.order_id and b.seq = a.seq - 1 where o.archived_at = a.created_at and a.created_at = b.created_at + interval '1 day'")" = 5
check "... and nothing is quarantined" \
	test "$(pj_q "$db" "select count(*) from booking_proj.quarantine")" = 0

# --- usage ---------------------------------------------------------------------------------
check "booking-projector --help documents --batch-events" bash -c "'$PROJ' --help | grep -q -- --batch-events"
check "booking-projector with a bad option exits 2" bash -c "'$PROJ' --nope >/dev/null 2>&1; test \$? -eq 2"
check "bookingctl status --help exits 0" "$BK" status --help
check "bookingctl quarantine without a subcommand exits 2" \
	bash -c "'$BK' quarantine >/dev/null 2>&1; test \$? -eq 2"
check "bookingctl status against an unreachable PostgreSQL exits 3" \
	bash -c "'$BK' status -d 'host=127.0.0.1 port=1 dbname=x' --brokers-file '$T/bootstrap' >/dev/null 2>&1; test \$? -eq 3"

echo "1..$n"
[ "$failed" -eq 0 ]
