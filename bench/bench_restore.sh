#!/usr/bin/env bash
# bench_restore.sh - booking-commands' restore on a long history (issue #11 item 5): a
# generated stream processed once (with checkpoints), then, in the same run on the same
# dev broker, a restore of every partition without snapshots (--snapshot-interval-ms 0:
# events from offset 0), a restore from the checkpoints, and the raw consume of the same
# partitions (bench_consume: events, then snapshots) with nothing done to the records.
#   bench/bench_restore.sh [BUILD_DIR] [ORDERS] [PARTITIONS]   (default build 250000 160)
#   env: SNAP_MS (checkpoint interval while the stream is processed, 5000),
#   COMPRESSION (the processor's producer compression.type, lz4: the dev broker keeps
#   ~5 MiB a partition, compressed batches count compressed), BK_BENCH_KEEP=1 (keep the
#   work directory), ARCHIVE=1 (after the history, a life with the sweep on and
#   --archive-after 1 archives every settled order and checkpoints; the restores then
#   read the archived history: issue #11 item 2)
# Prints key=value lines and a table; never fails on a figure (nothing here is a test).
set -euo pipefail
B=$(cd "${1:-build}" && pwd) ORDERS=${2:-250000} P=${3:-160}
SNAP_MS=${SNAP_MS:-5000} COMPRESSION=${COMPRESSION:-lz4}
BK=$B/cli/bookingctl PROC=$B/commands/booking-commands
BC=$B/bench/bench_commands BCONS=$B/bench/bench_consume
T=$(mktemp -d /tmp/bk-bench-restore.XXXXXX)
BROKER='' PROCPID=''
cleanup() {
	[ -n "$PROCPID" ] && kill "$PROCPID" 2>/dev/null && wait "$PROCPID" 2>/dev/null
	[ -n "$BROKER" ] && kill "$BROKER" 2>/dev/null && wait "$BROKER" 2>/dev/null
	[ -n "${BK_BENCH_KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
field() { echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n1; }

"$BK" devbroker --partitions "$P" --bootstrap-file "$T/bs" >/dev/null 2>"$T/broker.log" &
BROKER=$!
for _ in $(seq 600); do [ -s "$T/bs" ] && break; sleep 0.1; done
"$BK" keygen --key-id bench-writer --roles system --types seal --out "$T/writer" \
	>"$T/writers" 2>/dev/null
export BOOKING_WRITER_KEY="$T/writer.sk" BOOKING_WRITER_KEY_ID=bench-writer \
	BOOKING_WRITER_KEYRING="$T/writers"
"$BK" gen --orders "$ORDERS" --format msgpack -o "$T/stream.mp" 2>"$T/gen.log"
N=$(sed -n 's/.* commands=\([0-9]*\) .*/\1/p' "$T/gen.log")
K=$(($(sed -n 's/.* binds=\([0-9]*\) .*/\1/p' "$T/gen.log") + $(sed -n 's/.* rules=\([0-9]*\) .*/\1/p' "$T/gen.log")))
echo "== stream: $(sed 's/^.*msg="gen done" //' "$T/gen.log")"
echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

run=(--brokers-file "$T/bs")
# a long session timeout: on a loaded 2-core machine a 2,000-command batch or a restore of
# 256 partitions can outlast 6 s without a poll, and the processor then (rightly) gives
# its batch up as no longer sure it owns its partitions, which is not what is measured
proc() { # proc NAME SNAPSHOT_MS [ARGS...]: a processor in the background (PROCPID)
	local name=$1 ms=$2
	shift 2
	"$PROC" "${run[@]}" --allow-unsigned --group-id "bench-restore-$name" --sweep-interval-ms 0 \
		--snapshot-interval-ms "$ms" -X "compression.type=$COMPRESSION" "$@" \
		-X session.timeout.ms=30000 -X max.poll.interval.ms=600000 -X heartbeat.interval.ms=500 \
		2>"$T/proc.$name.log" &
	PROCPID=$!
}
stop() { kill -TERM "$PROCPID" && wait "$PROCPID" || true; PROCPID=; }

# the history: the rules first (their commands sit on other partitions than the orders
# they govern), then the orders, answered to the last result
"$BC" preload "${run[@]}" -X "compression.type=$COMPRESSION" --file "$T/stream.mp" --to "$K" >/dev/null
proc write "$SNAP_MS"
"$BC" count "${run[@]}" --n "$K" >/dev/null
"$BC" preload "${run[@]}" -X "compression.type=$COMPRESSION" --file "$T/stream.mp" --from "$K" >/dev/null
t0=$(date +%s)
"$BC" count "${run[@]}" --n "$N" --skip "$K" --timeout-ms 1800000 >"$T/count.write"
echo "== history written: $N commands in $(($(date +%s) - t0)) s ($(tail -n 1 "$T/count.write"))"
sleep $((SNAP_MS / 1000 + 2)) # the last checkpoint covers the last batch
stop
echo "== the writing life: $(grep 'msg="stopping"' "$T/proc.write.log" | sed 's/.*msg="stopping" //')"
if [ -n "${ARCHIVE:-}" ]; then
	# the stream's times are weeks old: a 1 s window archives every settled order
	proc archive "$SNAP_MS" --sweep-interval-ms 500 --expiring-lead 0 --archive-after 1
	last=-1
	for _ in $(seq 600); do
		sleep 3
		now=$(grep -c 'msg="sweep"' "$T/proc.archive.log" || true)
		[ "$now" -gt 0 ] && [ "$now" = "$last" ] && break
		last=$now
	done
	sleep $((SNAP_MS / 1000 + 2)) # a checkpoint after the last sweep
	stop
	echo "== archived: $(grep -c 'target=archive:' "$T/proc.archive.log") orders"
fi

# restore_once NAME SNAPSHOT_MS: a fresh group member restores every partition; its
# `restore finished` line
restore_once() {
	proc "$1" "$2"
	for _ in $(seq 6000); do grep -q 'msg="restore finished"' "$T/proc.$1.log" && break; sleep 0.1; done
	RESTORE=$(grep 'msg="restore finished"' "$T/proc.$1.log" | head -n 1)
	RSS=$(awk '/VmRSS/ {print $2}' "/proc/$PROCPID/status")
	stop
}
restore_once full 0
FULL=$RESTORE FULL_RSS=$RSS
restore_once snap 5000
SNAP=$RESTORE SNAP_RSS=$RSS
RAW_EV=$("$BCONS" "${run[@]}")
RAW_SN=$("$BCONS" "${run[@]}" --events-topic booking.snapshots)
ev_recs=$(field records "$RAW_EV") sn_recs=$(field records "$RAW_SN")

echo "full:     ${FULL#*msg=}"
echo "snapshot: ${SNAP#*msg=}"
echo "raw consume of booking.events:    $RAW_EV"
echo "raw consume of booking.snapshots: $RAW_SN"
printf '\n| %-44s | %12s | %14s | %8s | %9s |\n' what records events/orders seconds "RSS MB"
printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..46})" "$(printf -- '-%.0s' {1..13}):" \
	"$(printf -- '-%.0s' {1..15}):" "$(printf -- '-%.0s' {1..9}):" "$(printf -- '-%.0s' {1..10}):"
printf '| %-44s | %12s | %14s | %8.2f | %9s |\n' "restore without snapshots (events from 0)" \
	"$(field records "$FULL")" "$(field applied_events "$FULL") ev" \
	"$(echo "$(field ms "$FULL") / 1000" | bc -l)" "$((FULL_RSS / 1024))"
printf '| %-44s | %12s | %14s | %8.2f | %9s |\n' "restore from checkpoints" \
	"$(field records "$SNAP")" "$(field snapshots_loaded "$SNAP") snap + $(field applied_events "$SNAP") ev" \
	"$(echo "$(field ms "$SNAP") / 1000" | bc -l)" "$((SNAP_RSS / 1024))"
printf '| %-44s | %12s | %14s | %8.2f | %9s |\n' "raw consume, booking.events (all partitions)" \
	"$ev_recs" "" "$(field seconds "$RAW_EV")" ""
printf '| %-44s | %12s | %14s | %8.2f | %9s |\n' "raw consume, booking.snapshots" \
	"$sn_recs" "" "$(field seconds "$RAW_SN")" ""
echo "snapshot fallbacks: $(field snapshot_fallbacks "$SNAP"); partitions: $P; compression: $COMPRESSION"
echo "after the restores: full read $(field orders "$FULL") orders held, $(field archived "$FULL") archived; from checkpoints $(field orders "$SNAP") held, $(field archived "$SNAP") archived ($(field archived_records "$SNAP") archived records)"
