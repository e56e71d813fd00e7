#!/usr/bin/env bash
# bench_ops.sh - the whole pipeline, both daemons, with and without --metrics-addr, in one
# run on one dev broker and one private PostgreSQL (tests/harness.sh): the same generated
# stream (signed) is preloaded under three topic prefixes, then for each run the
# processor and the projector start together on theirs: A (no metrics), B (both with
# --metrics-addr, /metrics scraped with curl every second while they work), A again (the
# spread of the two A runs is the noise). Timed from the daemons' start to the last
# result (processor) and to projector lag 0 (the whole pipeline).
#   bench/bench_ops.sh [BUILD_DIR] [ORDERS] [PARTITIONS]   (default build 13700 ~ 100,000 commands, 32)
#   BK_BENCH_KEEP=1 keeps the run's directory (logs, scrapes)
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "${1:-build}" && pwd) ORDERS=${2:-13700} P=${3:-32}
BK=$B/cli/bookingctl PROC=$B/commands/booking-commands PROJ=$B/projector/booking-projector
BC=$B/bench/bench_commands
# shellcheck source=tests/harness.sh
. "$SRC/tests/harness.sh"
T=$(mktemp -d /tmp/bk-bench-ops.XXXXXX)
chmod 755 "$T"
BROKER='' PCP='' PJP='' SCR=''
cleanup() {
	local p
	for p in $SCR $PCP $PJP; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	[ -n "$BROKER" ] && kill "$BROKER" 2>/dev/null && wait "$BROKER" 2>/dev/null
	pg_stop "$T/pg"
	if [ -n "${BK_BENCH_KEEP:-}" ]; then echo "kept: $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
now() { date +%s.%N; }
calc() { echo "$@" | bc -l; }
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }
port_of() { # the port a daemon logged in "metrics listening"
	local i p
	for i in $(seq 1 300); do
		p=$(sed -n 's/.*msg="metrics listening".* port=\([0-9]*\).*/\1/p' "$1" | tail -1)
		[ -n "$p" ] && { echo "$p"; return 0; }
		sleep 0.1
	done
	return 1
}
# sum FILE FAMILY: the sum of a metric family's samples in a scrape
sum() { awk -v m="$2" 'index($1, m "{") == 1 || $1 == m { s += $2 } END { printf "%d\n", s }' "$1"; }
topics() { # topics PREFIX N: the five project topics under PREFIX
	local t out=""
	for t in booking.commands booking.events booking.command-results booking.dlq booking.rules; do
		out="$out,$1$t:$2"
	done
	printf '%s' "${out#,}"
}

"$BK" devbroker --partitions "$P" --topics "$(topics a1. "$P"),$(topics m. "$P"),$(topics a2. "$P")" \
	--bootstrap-file "$T/bs" >/dev/null 2>"$T/broker.log" &
BROKER=$!
pg_start "$T/pg" 2>/dev/null
export PGHOST PGPORT PGUSER
for _ in $(seq 600); do [ -s "$T/bs" ] && break; sleep 0.1; done
"$BK" keygen --key-id bench --roles buyer,provider,support,system --out "$T/bench" >"$T/keyring" 2>/dev/null
"$BK" keygen --key-id w --roles system --types seal --out "$T/w" >"$T/writers" 2>/dev/null
export BOOKING_WRITER_KEY="$T/w.sk" BOOKING_WRITER_KEY_ID=w BOOKING_WRITER_KEYRING="$T/writers"
"$BK" gen --orders "$ORDERS" --format msgpack -o "$T/stream.mp" 2>"$T/gen.log"
N=$(sed -n 's/.* commands=\([0-9]*\) .*/\1/p' "$T/gen.log")
for pfx in a1. m. a2.; do
	pg_newdb "bench_${pfx%.}" >/dev/null
	"$BK" migrate -q -d "dbname=bench_${pfx%.}" --migrations "$SRC/migrations" >/dev/null
	"$BC" preload --brokers-file "$T/bs" --topic-prefix "$pfx" --file "$T/stream.mp" \
		--key "$T/bench.sk" --key-id bench >/dev/null
done
echo "== stream: $N commands (bookingctl gen --orders $ORDERS), signed, preloaded; $P partitions"
echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) (shared)"

# run PREFIX NAME [--metrics-addr ADDR]: one pipeline run; prints its line
run() {
	local pfx=$1 name=$2 db=bench_${1%.}
	shift 2
	local k=(--brokers-file "$T/bs" --topic-prefix "$pfx")
	"$BC" count "${k[@]}" --n "$N" --timeout-ms 600000 >"$T/count.$name" &
	local cnt=$!
	for _ in $(seq 300); do grep -q ready= "$T/count.$name" && break; sleep 0.1; done
	local t0 t1 t2
	t0=$(now)
	"$PROC" "${k[@]}" --keyring "$T/keyring" --sweep-interval-ms 0 "$@" 2>"$T/proc.$name.log" &
	PCP=$!
	"$PROJ" "${k[@]}" -d "dbname=$db" --stats-s 0 "$@" 2>"$T/proj.$name.log" &
	PJP=$!
	if [ $# -gt 0 ]; then # scrape both every second while they work
		local cp jp
		cp=$(port_of "$T/proc.$name.log") jp=$(port_of "$T/proj.$name.log")
		(
			i=0
			while :; do
				curl -s "http://127.0.0.1:$cp/metrics" >"$T/scrape.c.$i"
				curl -s "http://127.0.0.1:$jp/metrics" >"$T/scrape.p.$i"
				i=$((i + 1))
				sleep 1
			done
		) &
		SCR=$!
	fi
	wait "$cnt"
	t1=$(now)
	"$BK" status "${k[@]}" -d "dbname=$db" --wait --timeout-ms 600000 >"$T/status.$name" 2>&1 || true
	t2=$(now)
	local pc jc
	pc=$(cpu_s "$PCP") jc=$(cpu_s "$PJP")
	if [ -n "$SCR" ]; then
		kill "$SCR"
		wait "$SCR" 2>/dev/null || true
		SCR=
		sleep 1.1 # the per-second update (lag)
		curl -s "http://127.0.0.1:$cp/metrics" >"$T/final.c"
		curl -s "http://127.0.0.1:$jp/metrics" >"$T/final.p"
	fi
	kill -TERM "$PCP" "$PJP"
	wait "$PCP" "$PJP" || true
	PCP='' PJP=''
	printf '%-22s processor %6.0f commands/s (%5.2f s, CPU %4.1f s); to projector lag 0 %6.0f commands/s (%5.2f s, projector CPU %4.1f s)\n' \
		"$name" "$(calc "$N / ($t1 - $t0)")" "$(calc "$t1 - $t0")" "$pc" \
		"$(calc "$N / ($t2 - $t0)")" "$(calc "$t2 - $t0")" "$jc"
}

run a1. "A: no metrics"
run m. "B: --metrics-addr" --metrics-addr 127.0.0.1:0
run a2. "A again: no metrics"

scrapes=$(find "$T" -name 'scrape.c.*' | wc -l)
mid=0
for f in "$T"/scrape.c.*; do
	h=$(sum "$f" booking_commands_handled_total)
	[ "$h" -gt 0 ] && [ "$h" -lt "$N" ] && mid=$((mid + 1))
done
echo "== B: $scrapes scrapes of each daemon during the run, $mid of them mid-stream; the final scrapes:"
echo "  sent: $N commands"
for m in booking_commands_handled_total booking_commands_total booking_commands_dlq_records_total \
	booking_commands_events_total booking_commands_batches_total booking_commands_batch_size_sum \
	booking_commands_result_latency_seconds_count booking_commands_partition_lag_records; do
	echo "  $m $(sum "$T/final.c" "$m")"
done
for o in accepted rejected duplicate; do
	echo "  booking_commands_total{outcome=\"$o\"} $(awk -v o="outcome=\"$o\"" \
		'index($1, "booking_commands_total{") == 1 && index($1, o) { s += $2 } END { print s + 0 }' "$T/final.c")"
done
for m in $(grep -o '^booking_projector_[a-z_]*_total' "$T/final.p" | sort -u) booking_projector_partition_lag_records; do
	echo "  $m $(sum "$T/final.p" "$m")"
done
