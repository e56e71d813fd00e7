#!/usr/bin/env bash
# bench_replay.sh - `bookingctl replay` to a file, beside the raw consume rate of the same
# topic on the same dev broker in the same run (bench_consume: the same reader, records
# counted and dropped). The log is a generated realistic stream (bookingctl gen) run
# through the core and produced as events records (tests/loggen).
#   bench/bench_replay.sh [BUILD_DIR] [ORDERS]     (default build, 60000 orders ~ 560k events)
set -euo pipefail
B=${1:-build} ORDERS=${2:-60000}
BK=$B/cli/bookingctl
T=$(mktemp -d)
trap 'kill $BROKER 2>/dev/null; wait 2>/dev/null; rm -rf "$T"' EXIT
# The dev broker keeps at most 5 MiB per partition: give the log room (docs/devbroker.md).
"$BK" devbroker --partitions 100 --bootstrap-file "$T/bs" >/dev/null 2>"$T/broker.log" &
BROKER=$!
for _ in $(seq 600); do [ -s "$T/bs" ] && break; sleep 0.1; done
"$BK" gen --orders "$ORDERS" --with-expect -o "$T/stream.jsonl" 2>/dev/null
"$B/tests/loggen" --brokers-file "$T/bs" --topic booking.events "$T/stream.jsonl" >/dev/null 2>"$T/loggen.log" || { cat "$T/loggen.log" >&2; exit 1; }
cat "$T/loggen.log" >&2

echo "== raw consume (baseline): lib/logread, records counted and dropped"
base=$("$B/bench/bench_consume" --brokers-file "$T/bs")
echo "$base"
echo "== bookingctl replay --format json -o FILE"
t0=$(date +%s.%N)
"$BK" replay --brokers-file "$T/bs" -o "$T/events.jsonl" 2>"$T/replay.log"
t1=$(date +%s.%N)
events=$(wc -l <"$T/events.jsonl")
rsec=$(echo "$t1 - $t0" | bc -l)
echo "events=$events bytes=$(stat -c %s "$T/events.jsonl") seconds=$rsec"
echo "== bookingctl replay --format msgpack -o FILE"
t0=$(date +%s.%N)
"$BK" replay --brokers-file "$T/bs" --format msgpack -o "$T/events.msgpack" 2>/dev/null
t1=$(date +%s.%N)
msec=$(echo "$t1 - $t0" | bc -l)
echo "seconds=$msec bytes=$(stat -c %s "$T/events.msgpack")"

records=$(echo "$base" | sed -n 's/.*records=\([0-9]*\) .*/\1/p')
bsec=$(echo "$base" | sed -n 's/.*seconds=\([0-9.]*\) .*/\1/p')
printf '\n%-44s %12s %10s %14s %8s\n' name count seconds "rate (/s)" ratio
printf '%-44s %12d %10.3f %14.0f %8s\n' "raw consume (records)" "$records" "$bsec" "$(echo "$records / $bsec" | bc -l)" baseline
printf '%-44s %12d %10.3f %14.0f %8.2f\n' "replay json (events; records/s in ratio)" "$events" "$rsec" "$(echo "$events / $rsec" | bc -l)" "$(echo "$rsec / $bsec" | bc -l)"
printf '%-44s %12d %10.3f %14.0f %8.2f\n' "replay msgpack (records)" "$records" "$msec" "$(echo "$records / $msec" | bc -l)" "$(echo "$msec / $bsec" | bc -l)"
echo "ratio: seconds / seconds of the raw consume of the same records (lower is better)"
echo "target: >= 400000 events/s to a file: $(echo "$events / $rsec" | bc -l | cut -d. -f1) events/s"
