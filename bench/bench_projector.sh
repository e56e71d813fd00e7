#!/usr/bin/env bash
# bench_projector.sh - booking-projector's live rate beside PostgreSQL COPY of the same final
# rows, in one run on one generated log (bookingctl gen -> engine -> events and rules
# records on the dev broker), into a private PostgreSQL (tests/harness.sh) with the keys.
#   bench/bench_projector.sh [BUILD_DIR] [ORDERS] [PARTITIONS] [-- PROJECTOR_ARGS...]
#   (default build 10000 orders ~ 100k events, 128 partitions; 100000 orders ~ 1M events)
#   BK_BENCH_PERF=FILE: perf record -g of the projector during the live run (FILE.<run>);
#   BK_BENCH_KEEP=1 keeps $T. SEALED=1: the log sealed as the processor writes it (a seal per
#   partition every SEAL_EVERY records, 2000) and three runs on it: seals checked (writer
#   keyring), trusted without checks (--trust-unsealed), checked again (A B A).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "${1:-build}" && pwd) ORDERS=${2:-10000} PARTS=${3:-128}
SEALED=${SEALED:-0} SEAL_EVERY=${SEAL_EVERY:-2000}
shift $(($# < 3 ? $# : 3))
[ "${1:-}" = -- ] && shift
BK=$B/cli/bookingctl PROJ=$B/projector/booking-projector FEED=$B/tests/test_projector_feed
# shellcheck source=tests/harness.sh
. "$SRC/tests/harness.sh"
T=$(mktemp -d /tmp/bk-bench-proj.XXXXXX)
chmod 755 "$T"
BROKER= PJ=
cleanup() {
	[ -n "$PJ" ] && kill "$PJ" 2>/dev/null
	[ -n "$BROKER" ] && kill "$BROKER" 2>/dev/null && wait "$BROKER" 2>/dev/null
	pg_stop "$T/pg"
	[ -n "${BK_BENCH_KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
now() { date +%s.%N; }
ts_of() { date -d "$(sed -n "s/^ts=\([^ ]*\) .*$1.*/\1/p" "$2" | head -n1)" +%s.%N; }

# The dev broker keeps about 5 MiB per partition (docs/devbroker.md): give the log room.
"$BK" devbroker --partitions "$PARTS" --bootstrap-file "$T/bs" --control "$T/ctl" \
	>/dev/null 2>"$T/broker.log" &
BROKER=$!
pg_start "$T/pg" 2>/dev/null
export PGHOST PGPORT PGUSER
for _ in $(seq 600); do [ -s "$T/bs" ] && [ -S "$T/ctl" ] && break; sleep 0.1; done
"$BK" gen --orders "$ORDERS" --with-expect -o "$T/stream.jsonl" 2>/dev/null
SEAL=()
if [ "$SEALED" = 1 ]; then # the log as the processor writes it: sealed batches, signed rules
	"$BK" keygen --key-id bench-writer --roles system --types seal --out "$T/writer" \
		>"$T/writers" 2>/dev/null
	export BOOKING_WRITER_KEY="$T/writer.sk" BOOKING_WRITER_KEY_ID=bench-writer
	SEAL=(--seal-every "$SEAL_EVERY")
fi
echo "== log: $("$FEED" --brokers-file "$T/bs" --control "$T/ctl" --create-topics "$PARTS" \
	--topic-prefix bench. "${SEAL[@]}" "$T/stream.jsonl" 2>&1 | tail -n 1)"
dbs=(bench_live bench_copy)
[ "$SEALED" = 1 ] && dbs+=(bench_trusted bench_live2)
for db in "${dbs[@]}"; do
	pg_newdb "$db" >/dev/null
	"$BK" migrate -q -d "dbname=$db" --dir "$SRC/migrations" >/dev/null
done
cpu_s() { # user + system CPU seconds of a live process
	awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"
}

# proj_run DB NAME PROJECTOR_ARGS...: the projector from offset 0 to caught up; sets
# events, live (assigned to caught up, wall), busy (in batches) and cpu (its CPU seconds).
proj_run() {
	local db=$1 name=$2
	shift 2
	echo "== [$name] booking-projector $*"
	local t0 t1 hwm stats ta
	t0=$(now)
	"$PROJ" -d "dbname=$db" --brokers-file "$T/bs" --topic-prefix bench. --stats-s 0 \
		--group-id "bench-$name" "$@" 2>"$T/proj.$name.log" &
	PJ=$!
	PERF=
	if [ -n "${BK_BENCH_PERF:-}" ]; then # a profile of the projector
		perf record --call-graph dwarf,16384 -F 2000 -p "$PJ" -o "$BK_BENCH_PERF.$name" 2>/dev/null &
		PERF=$!
	fi
	"$BK" status -d "dbname=$db" --brokers-file "$T/bs" --topic-prefix bench. --wait --timeout-ms 3600000 \
		>"$T/status.out" 2>&1 || { tail -n 5 "$T/status.out" "$T/proj.$name.log" >&2; exit 1; }
	t1=$(now)
	cpu=$(cpu_s "$PJ")
	[ -n "$PERF" ] && { kill -TERM "$PERF"; wait "$PERF" || true; }
	hwm=$(sed -n 's/^VmHWM: *//p' "/proc/$PJ/status" 2>/dev/null || true) # peak RSS
	kill -TERM "$PJ" && wait "$PJ"
	PJ=
	stats=$(grep 'msg="stats"' "$T/proj.$name.log" | tail -n 1)
	stat() { echo "$stats" | sed -n "s/.* $1=\([0-9]*\).*/\1/p"; }
	events=$(stat events) busy=$(echo "$(stat busy_ms) / 1000" | bc -l)
	ta=$(ts_of ' assigned' "$T/proj.$name.log")
	live=$(echo "$t1 - $ta" | bc -l)
	echo "$stats" | sed 's/^.*msg=stats //'
	printf 'start to assigned %.2f s, assigned to caught up %.2f s (wall), in batches %.2f s, CPU %.2f s\n' \
		"$(echo "$ta - $t0" | bc -l)" "$live" "$busy" "$cpu"
	echo "projector peak RSS: ${hwm:-unknown}; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
}

if [ "$SEALED" = 1 ]; then # A B A: seals checked, trusted without checks, checked again
	proj_run bench_live checked --writer-keyring "$T/writers" "$@"
	ev_a=$events live_a=$live busy_a=$busy cpu_a=$cpu
	proj_run bench_trusted trusted --trust-unsealed "$@"
	ev_b=$events live_b=$live busy_b=$busy cpu_b=$cpu
	proj_run bench_live2 checked2 --writer-keyring "$T/writers" "$@"
	ev_c=$events live_c=$live busy_c=$busy cpu_c=$cpu
	for db in bench_live bench_trusted bench_live2; do
		pj=$(psql -X -A -t -d "$db" -c "select count(*) from ord.timeline_event")
		rj=$(psql -X -A -t -d "$db" -c "select count(*) from booking_proj.rejected")
		echo "$db: timeline rows $pj, rejected $rj"
	done
	printf '\n%-44s %10s %9s %9s %9s %12s\n' "" events wall_s busy_s cpu_s "cpu us/event"
	for r in "seals checked (A)|$ev_a|$live_a|$busy_a|$cpu_a" \
		"trusted, no checks (B)|$ev_b|$live_b|$busy_b|$cpu_b" \
		"seals checked again (A)|$ev_c|$live_c|$busy_c|$cpu_c"; do
		IFS='|' read -r n e l b c <<<"$r"
		printf '%-44s %10d %9.2f %9.2f %9.2f %12.2f\n' "$n" "$e" "$l" "$b" "$c" \
			"$(echo "1000000 * $c / $e" | bc -l)"
	done
	printf 'CPU with checks / without: %.3f and %.3f (the two A runs against B)\n' \
		"$(echo "$cpu_a / $cpu_b" | bc -l)" "$(echo "$cpu_c / $cpu_b" | bc -l)"
	events=$ev_a live=$live_a busy=$busy_a
else
	proj_run bench_live trusted --trust-unsealed "$@"
fi

echo "== baseline: COPY FROM of the final rows into the same (empty, migrated) tables"
tables="booking.order booking.line_item booking.request booking.invite_recipient
 booking.milestone booking.dispute booking.autoaccept_rule ord.order ord.timeline_event
 ord.card ord.card_response ord.order_lock"
rows=0
{
	echo "begin;"
	for t in $tables; do
		psql -X -q -d bench_live -c "\\copy $t to '$T/$t.copy'"
		rows=$((rows + $(wc -l <"$T/$t.copy")))
		echo "\\copy $t from '$T/$t.copy'"
	done
	echo "commit;"
} >"$T/load.sql"
bytes=$(cat "$T"/*.copy | wc -c)
t0=$(now)
psql -X -q -v ON_ERROR_STOP=1 -d bench_copy -f "$T/load.sql"
t1=$(now)
copy=$(echo "$t1 - $t0" | bc -l)
ls -l "$T"/*.copy >&2 && echo "rows=$rows bytes=$bytes seconds=$(printf %.2f "$copy")" \
	"load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
for t in $tables; do
	a=$(psql -X -A -t -d bench_live -c "select count(*) from $t")
	b=$(psql -X -A -t -d bench_copy -c "select count(*) from $t")
	[ "$a" = "$b" ] || echo "warning: $t: $a rows live, $b copied" >&2
done

printf '\n%-40s %10s %9s %12s %12s\n' "" events seconds events/s "x COPY"
rate() { echo "$events / $1" | bc -l; }
printf '%-40s %10d %9.2f %12.0f %12s\n' "COPY FROM the final rows (baseline)" "$events" "$copy" \
	"$(rate "$copy")" 1.00
printf '%-40s %10d %9.2f %12.0f %12.2f\n' "projector, assigned to caught up (wall)" "$events" \
	"$live" "$(rate "$live")" "$(echo "$copy / $live" | bc -l)"
printf '%-40s %10d %9.2f %12.0f %12.2f\n' "projector, time in batches (busy_ms)" "$events" \
	"$busy" "$(rate "$busy")" "$(echo "$copy / $busy" | bc -l)"
echo "goal: >= 60000 events/s and >= 0.50 x COPY (wall)"
