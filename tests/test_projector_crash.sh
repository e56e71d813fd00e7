#!/usr/bin/env bash
# tests/test_projector_crash.sh - crash safety of booking-projector (TAP), on its own dev
# broker; one stream of >= 200,000 events (every fixture, copied under fresh ids) is
# projected by three projectors at once while it is produced:
#  - the kill run: killed with SIGKILL at random moments, >= 10 times, and restarted each
#    time; its final tables equal the clean run's;
#  - the clean run: never disturbed, the reference both others are compared with;
#  - the outage run, on a PostgreSQL of its own: the server is stopped and restarted while
#    the projector works through the log (records projected before the outage and after
#    it); it waits, reconnects and ends with the same tables.
# The three once ran one after the other (the clean and the outage run each a full
# projection of the finished log); running them while the stream is produced takes the
# same projections, faults and comparisons in about half the time.
# BK_CRASH_EVENTS scales the stream (default 200000), BK_CRASH_KILLS the kills (12).
# Usage: test_projector_crash.sh SRCDIR BOOKINGCTL BOOKING_PROJECTOR TEST_PROJECTOR_FEED
set -uo pipefail

SRC=${1:?usage}
BK=${2:?usage}
PROJ=${3:?usage}
FEED=${4:?usage}
# shellcheck source=tests/harness.sh
. "$SRC/tests/harness.sh"
# shellcheck source=tests/test_projector_lib.sh
. "$SRC/tests/test_projector_lib.sh"

EVENTS=${BK_CRASH_EVENTS:-200000}
KILLS=${BK_CRASH_KILLS:-12}
T=$(mktemp -d /tmp/bk-test-pjcrash.XXXXXX)
chmod 755 "$T"
FEED_PID=
CLEAN_PID=
OUT_PID=
OUTAGE_PID=
KILL_PID=
cleanup() {
	local p
	for p in "$FEED_PID" "$OUTAGE_PID"; do
		[ -n "$p" ] && kill "$p" 2>/dev/null
	done
	for p in "${PJ_PID:-}" "$KILL_PID" "$CLEAN_PID" "$OUT_PID"; do
		[ -n "$p" ] && kill -9 "$p" 2>/dev/null
	done
	pj_broker_stop
	wait 2>/dev/null
	pg_stop "$T/pg"
	if [ "${BK_PG_STARTED:-0}" = 1 ]; then
		pg_stop "$T/pg0"
	elif [ -n "${PGK_HOST:-}" ]; then
		PGHOST=$PGK_HOST PGPORT=$PGK_PORT pg_dropdb bkt_crash_kill
		PGHOST=$PGK_HOST PGPORT=$PGK_PORT pg_dropdb bkt_crash_clean
	fi
	rm -rf "$T"
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

# Two servers: the kill and the clean run on the shared one of scripts/test (or a private
# one), the outage run on its own, which this test stops and restarts.
if ! bk_pg_setup "$T/pg0" 2>"$T/pg0.err"; then
	echo "Bail out! cannot start PostgreSQL: $(tr '\n' ' ' <"$T/pg0.err")"
	exit 1
fi
PGK_HOST=$PGHOST PGK_PORT=$PGPORT
if ! pg_start "$T/pg" 2>"$T/pg.err"; then
	echo "Bail out! cannot start PostgreSQL: $(tr '\n' ' ' <"$T/pg.err")"
	exit 1
fi
PGO_HOST=$PGHOST PGO_PORT=$PGPORT
# by default everything talks to the kill and clean runs' server; ogo CMD... to the other
export PGHOST=$PGK_HOST PGPORT=$PGK_PORT PGUSER
ogo() { PGHOST=$PGO_HOST PGPORT=$PGO_PORT "$@"; }
pj_broker 4 || { echo "Bail out! cannot start the dev broker"; exit 1; }
P=crash_$$.
pj_db bkt_crash_kill && pj_db bkt_crash_clean && ogo pj_db bkt_crash_pg ||
	{ echo "Bail out! cannot create the databases"; exit 1; }

# one pass over every fixture is about 236 events
copies=$(((EVENTS + 235) / 236))
start=$(date +%s)
# topics first (a consumer subscribing to a missing topic could get it auto-created)
pj_feed "$P" 48 >"$T/topics.out" 2>&1 || { echo "Bail out! cannot create topics"; exit 1; }
"$FEED" --brokers-file "$T/bootstrap" --topic-prefix "$P" --copies "$copies" --sleep-every 1000 --sleep-ms 600 "$SRC"/fixtures/*.jsonl \
	>"$T/feed.out" 2>&1 &
FEED_PID=$!
# the clean run follows the stream from its start, undisturbed
pj_start bkt_crash_clean "$P" g_clean
CLEAN_PID=$PJ_PID
PJ_PID=

# outage: (in the background) once the outage run, started with a backlog, has
# checkpointed its first records (at most 120 s), its server is stopped for 4 s;
# $T/outage.before: the records it had projected then
outage() {
	local bindir _
	bindir=$(pg_bindir)
	for _ in $(seq 1 600); do
		ogo pj_q bkt_crash_pg "select coalesce(sum(next_offset), 0) from booking_proj.checkpoint" \
			>"$T/outage.before" 2>&1
		[ "$(cat "$T/outage.before")" -gt 0 ] 2>/dev/null && break
		sleep 0.2
	done
	(cd "$T/pg" && _pg_as_owner "$bindir/pg_ctl" -D "$T/pg/data" -m fast -w stop >/dev/null 2>&1)
	sleep 4
	(cd "$T/pg" && _pg_as_owner "$bindir/pg_ctl" -D "$T/pg/data" -l "$T/pg/log" -w start >/dev/null 2>&1)
}

# --- kill -9 at random moments while the stream is produced ---------------------------------
kills=0
mid=0
while [ "$kills" -lt "$KILLS" ]; do
	# a quarter into the kills the outage run starts, with a backlog to work through
	if [ -z "$OUT_PID" ] && [ "$kills" -ge $((KILLS / 4)) ]; then
		ogo pj_start bkt_crash_pg "$P" g_pg --batch-events 2000
		OUT_PID=$PJ_PID
		outage &
		OUTAGE_PID=$!
	fi
	lines=$(cat "$T/proj.g_kill.log" 2>/dev/null | wc -l)
	pj_start bkt_crash_kill "$P" g_kill
	# a member killed -9 holds its partitions until its session times out (6 s): wait
	# for the assignment (the first start and every third are killed at random before
	# it), then kill at a random moment of the catch-up, mostly inside a batch
	if [ $((kills % 3)) -ne 0 ]; then
		for _ in $(seq 1 200); do
			tail -n +"$((lines + 1))" "$T/proj.g_kill.log" 2>/dev/null |
				grep -q 'partition assigned' && break
			sleep 0.1
		done
	fi
	sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", 0.1 + (r % 250) / 100 }')"
	kill -9 "$PJ_PID" 2>/dev/null
	wait "$PJ_PID" 2>/dev/null
	kills=$((kills + 1))
	tail -n +"$((lines + 1))" "$T/proj.g_kill.log" | grep -q 'partition assigned' && mid=$((mid + 1))
done
wait "$FEED_PID"
feed_rc=$?
FEED_PID=
if [ "$feed_rc" -eq 0 ]; then
	ok "stream produced: $(cat "$T/feed.out")"
else
	not_ok "stream produced" "$T/feed.out"
fi
done_at=$(pj_q bkt_crash_kill "select coalesce(sum(next_offset), 0) from booking_proj.checkpoint where topic = '${P}booking.events'")
ok "$kills SIGKILLs during the stream, $mid of them while projecting (records projected before the last restart: $done_at)"
pj_start bkt_crash_kill "$P" g_kill
KILL_PID=$PJ_PID
PJ_PID=
wait "$OUTAGE_PID"
OUTAGE_PID=
out_alive=0
kill -0 "$OUT_PID" 2>/dev/null && out_alive=1

# --- the three catch up (at once), then their tables are dumped (at once) ----------------
# kill_ok, clean_ok, out_ok: caught up and stopped (exit status of the outage run: out_rc)
kill_ok=1 clean_ok=1 out_ok=1
pj_wait bkt_crash_kill "$P" 300 || kill_ok=0
cp "$T/status.out" "$T/status.kill"
pj_stop "$KILL_PID"
KILL_PID=
pj_wait bkt_crash_clean "$P" 300 || clean_ok=0
cp "$T/status.out" "$T/status.clean"
pj_stop "$CLEAN_PID" || clean_ok=0
CLEAN_PID=
ogo pj_wait bkt_crash_pg "$P" 300 || out_ok=0
cp "$T/status.out" "$T/status.pg"
pj_stop "$OUT_PID"
out_rc=$?
OUT_PID=
dumps=()
pj_dump bkt_crash_kill >"$T/dump.kill" &
dumps+=($!)
pj_dump bkt_crash_clean >"$T/dump.clean" &
dumps+=($!)
ogo pj_dump bkt_crash_pg >"$T/dump.pg" &
dumps+=($!)
wait "${dumps[@]}" # not the dev broker, which runs on

if [ "$kill_ok" = 1 ]; then ok "restarted projector catches up"; else not_ok "restarted projector catches up" "$T/status.kill" "$T/proj.g_kill.log"; fi

# --- the reference: one clean projection ---------------------------------------------------
if [ "$clean_ok" = 1 ]; then ok "clean projection"; else not_ok "clean projection" "$T/status.clean" "$T/proj.g_clean.log"; fi
events=$(pj_q bkt_crash_clean "select count(*) from ord.timeline_event")
if [ "$events" -ge "$EVENTS" ]; then ok "the log holds $events events"; else not_ok "the log holds >= $EVENTS events (has $events)"; fi
if cmp -s "$T/dump.clean" "$T/dump.kill"; then
	ok "after $kills kills the tables equal the clean projection ($(wc -l <"$T/dump.kill") rows)"
else
	diff "$T/dump.clean" "$T/dump.kill" | head -n 20 >"$T/diff.kill"
	not_ok "after $kills kills the tables equal the clean projection" "$T/diff.kill"
fi
q=$(pj_q bkt_crash_kill "select (select count(*) from booking_proj.quarantine) + (select count(*) from booking_proj.fork)")
if [ "$q" = 0 ]; then ok "nothing quarantined or reported as a fork"; else not_ok "nothing quarantined or forked ($q rows)"; fi

# --- PostgreSQL stopped and restarted mid-stream -----------------------------------------
before=$(cat "$T/outage.before")
if [ "$out_alive" = 1 ]; then ok "the projector outlived the outage (had $before records projected)"; else not_ok "the projector outlived the outage" "$T/proj.g_pg.log"; fi
if [ "$out_ok" = 1 ]; then ok "it resumed and caught up"; else not_ok "it resumed and caught up" "$T/status.pg" "$T/proj.g_pg.log"; fi
if [ "$out_rc" -eq 0 ]; then ok "SIGTERM: exit 0"; else not_ok "SIGTERM: exit 0 (got $out_rc)" "$T/proj.g_pg.log"; fi
if grep -q 'postgresql failed, retrying\|postgresql unavailable, retrying' "$T/proj.g_pg.log"; then
	ok "the outage was logged and retried"
else
	not_ok "the outage was logged and retried" "$T/proj.g_pg.log"
fi
# the outage landed mid-stream: records projected before it, and more after it
total=$(ogo pj_q bkt_crash_pg "select coalesce(sum(next_offset), 0) from booking_proj.checkpoint")
if [ "$before" -gt 0 ] 2>/dev/null && [ "$total" -gt "$before" ]; then
	ok "the outage came mid-stream: $before records projected before it, $((total - before)) after"
else
	not_ok "the outage came mid-stream (records projected before it: $before, in all: $total)" "$T/outage.before"
fi
if cmp -s "$T/dump.clean" "$T/dump.pg"; then
	ok "after the PostgreSQL restart the tables equal the clean projection"
else
	diff "$T/dump.clean" "$T/dump.pg" | head -n 20 >"$T/diff.pg"
	not_ok "after the PostgreSQL restart the tables equal the clean projection" "$T/diff.pg"
fi
echo "# took $(($(date +%s) - start)) s"
echo "1..$n"
[ "$failed" -eq 0 ]
