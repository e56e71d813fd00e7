#!/usr/bin/env bash
# tests/test_projector_crash.sh - crash safety of booking-projector (TAP), on its own
# PostgreSQL (it is stopped and restarted here) and dev broker:
#  - a stream of >= 200,000 events (every fixture, copied under fresh ids) is produced
#    while the projector is killed with SIGKILL at random moments, >= 10 times, and
#    restarted each time; the final tables equal a single clean projection of the log;
#  - PostgreSQL is stopped and restarted while a projector works through the log; it
#    waits, reconnects and ends with the same tables.
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
cleanup() {
	[ -n "$FEED_PID" ] && kill "$FEED_PID" 2>/dev/null
	[ -n "${PJ_PID:-}" ] && kill -9 "$PJ_PID" 2>/dev/null
	pj_broker_stop
	pg_stop "$T/pg"
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

# Its own server: this test stops and restarts it.
unset BK_TEST_PGHOST
if ! pg_start "$T/pg" 2>"$T/pg.err"; then
	echo "Bail out! cannot start PostgreSQL: $(tr '\n' ' ' <"$T/pg.err")"
	exit 1
fi
export PGHOST PGPORT PGUSER
pj_broker 4 || { echo "Bail out! cannot start the dev broker"; exit 1; }
P=crash_$$.
pj_db bkt_crash_kill && pj_db bkt_crash_clean && pj_db bkt_crash_pg ||
	{ echo "Bail out! cannot create the databases"; exit 1; }

# one pass over every fixture is about 236 events
copies=$(((EVENTS + 235) / 236))
start=$(date +%s)
# topics first (a consumer subscribing to a missing topic could get it auto-created)
pj_feed "$P" 48 >"$T/topics.out" 2>&1 || { echo "Bail out! cannot create topics"; exit 1; }
"$FEED" --brokers-file "$T/bootstrap" --topic-prefix "$P" --copies "$copies" --sleep-every 1000 --sleep-ms 600 "$SRC"/fixtures/*.jsonl \
	>"$T/feed.out" 2>&1 &
FEED_PID=$!

# --- kill -9 at random moments while the stream is produced ---------------------------------
kills=0
mid=0
while [ "$kills" -lt "$KILLS" ]; do
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
if pj_wait bkt_crash_kill "$P" 300; then ok "restarted projector catches up"; else not_ok "restarted projector catches up" "$T/status.out" "$T/proj.g_kill.log"; fi
pj_stop "$PJ_PID"
PJ_PID=

# --- the reference: one clean projection ---------------------------------------------------
if pj_project bkt_crash_clean "$P" g_clean; then ok "clean projection"; else not_ok "clean projection" "$T/proj.g_clean.log"; fi
pj_dump bkt_crash_kill >"$T/dump.kill"
pj_dump bkt_crash_clean >"$T/dump.clean"
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
bindir=$(pg_bindir)
pj_start bkt_crash_pg "$P" g_pg --batch-events 2000
sleep 5
before=$(pj_q bkt_crash_pg "select coalesce(sum(next_offset), 0) from booking_proj.checkpoint")
(cd "$T/pg" && _pg_as_owner "$bindir/pg_ctl" -D "$T/pg/data" -m fast -w stop >/dev/null 2>&1)
sleep 4
(cd "$T/pg" && _pg_as_owner "$bindir/pg_ctl" -D "$T/pg/data" -l "$T/pg/log" -w start >/dev/null 2>&1)
if kill -0 "$PJ_PID" 2>/dev/null; then ok "the projector outlived the outage (had $before records projected)"; else not_ok "the projector outlived the outage" "$T/proj.g_pg.log"; fi
if pj_wait bkt_crash_pg "$P" 300; then ok "it resumed and caught up"; else not_ok "it resumed and caught up" "$T/status.out" "$T/proj.g_pg.log"; fi
pj_stop "$PJ_PID"
rc=$?
PJ_PID=
if [ "$rc" -eq 0 ]; then ok "SIGTERM: exit 0"; else not_ok "SIGTERM: exit 0 (got $rc)" "$T/proj.g_pg.log"; fi
if grep -q 'postgresql failed, retrying\|postgresql unavailable, retrying' "$T/proj.g_pg.log"; then
	ok "the outage was logged and retried"
else
	not_ok "the outage was logged and retried" "$T/proj.g_pg.log"
fi
pj_dump bkt_crash_pg >"$T/dump.pg"
if cmp -s "$T/dump.clean" "$T/dump.pg"; then
	ok "after the PostgreSQL restart the tables equal the clean projection"
else
	diff "$T/dump.clean" "$T/dump.pg" | head -n 20 >"$T/diff.pg"
	not_ok "after the PostgreSQL restart the tables equal the clean projection" "$T/diff.pg"
fi
echo "# took $(($(date +%s) - start)) s"
echo "1..$n"
[ "$failed" -eq 0 ]
