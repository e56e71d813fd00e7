#!/usr/bin/env bash
# bench_replay.sh - `bookingctl replay` to a file, beside the raw consume rate of the same
# topic on the same dev broker in the same run (bench_consume: the same reader, records
# counted and dropped). The log is a generated realistic stream (bookingctl gen) run
# through the core and produced as events records (tests/loggen).
#   bench/bench_replay.sh [BUILD_DIR] [ORDERS]     (default build, 60000 orders ~ 560k events)
# BATCH=large (default) writes the log in producer batches of up to 1 MB a partition;
# BATCH=small keeps the producer's defaults (linger.ms=5: a record or two a batch, as the
# processor's transactions write them). The dev broker answers a fetch with ONE stored
# batch a partition and finds it by walking the partition's batches from the first, so
# on a log of small batches the broker, not the reader, sets the pace; a Kafka broker
# returns up to max.partition.fetch.bytes of a partition whatever the batching.
set -euo pipefail
B=${1:-build} ORDERS=${2:-60000} BATCH=${BATCH:-large}
BK=$B/cli/bookingctl
T=$(mktemp -d)
trap 'kill $BROKER 2>/dev/null; wait 2>/dev/null; rm -rf "$T"' EXIT
# The dev broker keeps at most 5 MiB per partition: give the log room (docs/devbroker.md).
"$BK" devbroker --partitions 100 --bootstrap-file "$T/bs" >/dev/null 2>"$T/broker.log" &
BROKER=$!
for _ in $(seq 600); do [ -s "$T/bs" ] && break; sleep 0.1; done
"$BK" gen --orders "$ORDERS" --with-expect -o "$T/stream.jsonl" 2>/dev/null
shape=()
[ "$BATCH" = large ] && shape=(-X linger.ms=1000 -X batch.num.messages=100000 -X batch.size=1000000)
"$B/tests/loggen" --brokers-file "$T/bs" "${shape[@]}" --topic booking.events "$T/stream.jsonl" >/dev/null 2>"$T/loggen.log" || { cat "$T/loggen.log" >&2; exit 1; }
echo "log: BATCH=$BATCH, load average $(cut -d' ' -f1-3 /proc/loadavg)"
cat "$T/loggen.log" >&2

echo "== raw consume (baseline): lib/logread, records counted and dropped"
base=$("$B/bench/bench_consume" --brokers-file "$T/bs")
echo "$base"
# replay's own "replay done" line times the read and the writing, as bench_consume times
# its read: neither counts the program's start.
secs() { sed -n 's/.*replay done.* seconds=\([0-9.]*\).*/\1/p' "$1"; }
# Each output is checked, then deleted and synced before the next run: hundreds of MB of
# dirty pages from one run would otherwise be written back during the next.
settle() { rm -f "$@"; sync; }
echo "== bookingctl replay --format json -o FILE --threads 1"
settle
"$BK" replay --trust-unsealed --brokers-file "$T/bs" --threads 1 -o "$T/events1.jsonl" 2>"$T/replay1.log"
r1sec=$(secs "$T/replay1.log")
sum1=$(sort "$T/events1.jsonl" | md5sum)
settle "$T/events1.jsonl"
echo "== bookingctl replay --format json -o FILE (default threads: $(nproc) CPUs)"
"$BK" replay --trust-unsealed --brokers-file "$T/bs" -o "$T/events.jsonl" 2>"$T/replay.log"
rsec=$(secs "$T/replay.log")
events=$(wc -l <"$T/events.jsonl")
echo "events=$events bytes=$(stat -c %s "$T/events.jsonl") seconds=$rsec"
# the same events whatever the threads (the order across partitions is the consumer's)
[ "$sum1" = "$(sort "$T/events.jsonl" | md5sum)" ] || { echo "replay: --threads 1 and the default differ" >&2; exit 1; }
settle "$T/events.jsonl"
echo "== bookingctl replay --format msgpack -o FILE"
"$BK" replay --trust-unsealed --brokers-file "$T/bs" --format msgpack -o "$T/events.msgpack" 2>"$T/replaym.log"
msec=$(secs "$T/replaym.log")
echo "seconds=$msec bytes=$(stat -c %s "$T/events.msgpack")"
settle "$T/events.msgpack"

records=$(echo "$base" | sed -n 's/.*records=\([0-9]*\) .*/\1/p')
bsec=$(echo "$base" | sed -n 's/.*seconds=\([0-9.]*\) .*/\1/p')
printf '\n%-44s %12s %10s %14s %8s\n' name count seconds "rate (/s)" ratio
printf '%-44s %12d %10.3f %14.0f %8s\n' "raw consume (records)" "$records" "$bsec" "$(echo "$records / $bsec" | bc -l)" baseline
printf '%-44s %12d %10.3f %14.0f %8s\n' "raw consume (events in those records)" "$events" "$bsec" "$(echo "$events / $bsec" | bc -l)" baseline
printf '%-44s %12d %10.3f %14.0f %8.2f\n' "replay json, 1 thread (events)" "$events" "$r1sec" "$(echo "$events / $r1sec" | bc -l)" "$(echo "$r1sec / $bsec" | bc -l)"
printf '%-44s %12d %10.3f %14.0f %8.2f\n' "replay json (events)" "$events" "$rsec" "$(echo "$events / $rsec" | bc -l)" "$(echo "$rsec / $bsec" | bc -l)"
printf '%-44s %12d %10.3f %14.0f %8.2f\n' "replay msgpack (records)" "$records" "$msec" "$(echo "$records / $msec" | bc -l)" "$(echo "$msec / $bsec" | bc -l)"
echo "ratio: seconds / seconds of the raw consume of the same records (lower is better)"
echo "target: >= 400000 events/s to a file: $(echo "$events / $rsec" | bc -l | cut -d. -f1) events/s"
