#!/usr/bin/env bash
# bench_latency.sh - the round trip of an idle system: one command at a time, each sent
# when the previous one's answer arrived (bench_commands sequential), send -> result, on
# one dev broker, for the processor with group commit (the default) and without it
# (--no-group-commit, the behaviour before) in the same run, alternating, signed.
#   bench/bench_latency.sh [BUILD_DIR] [N] [ROUNDS]   (default build 300 2)
#   env: PARTS (16) FETCH_WAIT_MS (5: the results consumer's fetch.wait.max.ms)
#   LINGER_MS (0: the client producer's linger.ms, as a client sending one at a time sets it)
# Targets (docs/benchmarks.md): p50 <= 15 ms, p99 <= 40 ms with group commit.
# Saturated throughput beside the old behaviour: OLD_RUN=1 bench/bench_commands.sh.
set -euo pipefail
B=$(cd "${1:-build}" && pwd) N=${2:-300} ROUNDS=${3:-2}
PARTS=${PARTS:-16} FETCH_WAIT_MS=${FETCH_WAIT_MS:-5} LINGER_MS=${LINGER_MS:-0}
BK=$B/cli/bookingctl PROC=$B/commands/booking-commands BC=$B/bench/bench_commands
T=$(mktemp -d /tmp/bk-bench-lat.XXXXXX)
BROKER='' PROCPID=''
cleanup() {
	[ -n "$PROCPID" ] && kill "$PROCPID" 2>/dev/null && wait "$PROCPID" 2>/dev/null
	[ -n "$BROKER" ] && kill "$BROKER" 2>/dev/null && wait "$BROKER" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
field() { echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n1; }

modes=(group-commit no-group-commit)
topics=""
for r in $(seq "$ROUNDS"); do
	for m in "${modes[@]}"; do
		for t in booking.commands booking.events booking.command-results booking.dlq booking.rules booking.snapshots; do
			topics="$topics,r$r-$m.$t:$PARTS"
		done
	done
done
"$BK" devbroker --partitions "$PARTS" --topics "${topics#,}" --bootstrap-file "$T/bs" \
	>/dev/null 2>"$T/broker.log" &
BROKER=$!
for _ in $(seq 600); do [ -s "$T/bs" ] && break; sleep 0.1; done
[ -s "$T/bs" ] || { echo "bench_latency: the dev broker did not start" >&2; exit 1; }
"$BK" keygen --key-id bench --roles buyer,provider,support,system --out "$T/bench" \
	>"$T/keyring" 2>/dev/null
"$BK" gen --orders "$((N / 4 + 50))" --format msgpack -o "$T/stream.mp" 2>"$T/gen.log"
echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $N sequential signed" \
	"commands after 20 untimed, $PARTS partitions, client linger.ms=$LINGER_MS, results consumer fetch.wait.max.ms=$FETCH_WAIT_MS"

for r in $(seq "$ROUNDS"); do
	for m in "${modes[@]}"; do
		pfx="r$r-$m."
		extra=()
		[ "$m" = no-group-commit ] && extra=(--no-group-commit)
		"$PROC" --brokers-file "$T/bs" --topic-prefix "$pfx" --group-id "lat-$r-$m" --archive-after 0 \
			--keyring "$T/keyring" --sweep-interval-ms 0 \
			-X session.timeout.ms=6000 -X heartbeat.interval.ms=500 "${extra[@]}" \
			2>"$T/proc.$r.$m.log" &
		PROCPID=$!
		for _ in $(seq 300); do
			grep -q 'msg="restore finished"' "$T/proc.$r.$m.log" && break
			sleep 0.1
		done
		out=$("$BC" sequential --brokers-file "$T/bs" --topic-prefix "$pfx" --file "$T/stream.mp" \
			-X "linger.ms=$LINGER_MS" \
			--warmup 20 --n "$N" --key "$T/bench.sk" --key-id bench --timeout-ms 10000 \
			-C "fetch.wait.max.ms=$FETCH_WAIT_MS")
		kill -TERM "$PROCPID" && wait "$PROCPID"
		PROCPID=
		stop=$(grep 'msg="stopping"' "$T/proc.$r.$m.log" | sed 's/.*msg="stopping" //')
		printf '[round %d] %-16s p50 %6s ms  p90 %6s ms  p99 %6s ms  max %6s ms  (%s commands in %s s; batches=%s)\n' \
			"$r" "$m" "$(field p50_ms "$out")" "$(field p90_ms "$out")" "$(field p99_ms "$out")" \
			"$(field max_ms "$out")" "$(field sequential "$out")" "$(field seconds "$out")" \
			"$(field batches "$stop")"
	done
done
