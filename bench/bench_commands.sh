#!/usr/bin/env bash
# bench_commands.sh - booking-commands end to end on one dev broker: a preloaded generated
# stream processed to its last result, beside the raw transactional produce of the same
# records (bench_produce) in the same run; then send -> result latency at a steady rate.
#   bench/bench_commands.sh [BUILD_DIR] [ORDERS] [PARTITIONS]   (default build 70000 128)
#   env: LAT_RATE (1000) LAT_SECONDS (25) LAT_PARTS (16) SIGNED_RUN (0: 1 adds a signed
#   throughput run) OLD_RUN (0: 1 adds a run with --no-group-commit, the batching before
#   group commit, in the same run; OLD_FIRST=1 runs it first) ONLY (tp: throughput only,
#   lat: latency only) BK_BENCH_PERF=FILE (perf record of each throughput run's processor
#   into FILE.<run>) METRICS_RUN (0: 1 adds the default run with --metrics-addr right after
#   it, then the default run once more (A B A: the spread of the two A runs is the noise);
#   the metrics run's final scrape is printed and kept in BK_BENCH_SCRAPE when set)
set -euo pipefail
B=$(cd "${1:-build}" && pwd) ORDERS=${2:-70000} P=${3:-128}
LAT_RATE=${LAT_RATE:-1000} LAT_SECONDS=${LAT_SECONDS:-25}
LAT_PARTS=${LAT_PARTS:-16} SIGNED_RUN=${SIGNED_RUN:-0} OLD_RUN=${OLD_RUN:-0} ONLY=${ONLY:-}
METRICS_RUN=${METRICS_RUN:-0}
BK=$B/cli/bookingctl PROC=$B/commands/booking-commands
BC=$B/bench/bench_commands BP=$B/bench/bench_produce
T=$(mktemp -d /tmp/bk-bench-cmd.XXXXXX)
BROKER='' PROCPID='' BROKER2=''
cleanup() {
	[ -n "$BROKER2" ] && kill "$BROKER2" 2>/dev/null && wait "$BROKER2" 2>/dev/null
	[ -n "$PROCPID" ] && kill "$PROCPID" 2>/dev/null && wait "$PROCPID" 2>/dev/null
	[ -n "$BROKER" ] && kill "$BROKER" 2>/dev/null && wait "$BROKER" 2>/dev/null
	[ -n "${BK_BENCH_KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
now() { date +%s.%N; }
calc() { echo "$@" | bc -l; }
# field NAME LINE: the value of NAME=... in a key=value line
field() { echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n1; }
# epoch seconds of the first log line matching $1 in file $2 (ts= has ms)
ts_of() { date -d "$(grep "$1" "$2" | head -n1 | sed -n 's/^ts=\([^ ]*\) .*/\1/p')" +%s.%N; }
cpu_s() { # user + system CPU seconds of a live process
	awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"
}
topics() { # topics PREFIX N: the five project topics under PREFIX
	local t out=""
	for t in booking.commands booking.events booking.command-results booking.dlq booking.rules booking.snapshots; do
		out="$out,$1$t:$2"
	done
	printf '%s' "${out#,}"
}

# The dev broker keeps about 5 MiB per partition (docs/devbroker.md): P partitions for
# every prefix that holds the whole stream; raw. receives the baseline's records.
extra="$(topics sig. "$P"),$(topics old. "$P"),$(topics met. "$P"),$(topics re. "$P"),$(topics lat. "$LAT_PARTS")"
for x in latu. lati. lato.; do extra="$extra,$(topics $x "$LAT_PARTS")"; done
extra="$extra,raw.booking.events:$P,raw.booking.rules:$P,raw.booking.command-results:$P"
"$BK" devbroker --partitions "$P" --topics "$extra" --bootstrap-file "$T/bs" >/dev/null \
	2>"$T/broker.log" &
BROKER=$!
for _ in $(seq 600); do [ -s "$T/bs" ] && break; sleep 0.1; done
"$BK" keygen --key-id bench --roles buyer,provider,support,system --out "$T/bench" \
	>"$T/keyring" 2>/dev/null
"$BK" keygen --key-id bench-writer --roles system --types seal --out "$T/writer" \
	>"$T/writers" 2>/dev/null
export BOOKING_WRITER_KEY="$T/writer.sk" BOOKING_WRITER_KEY_ID=bench-writer \
	BOOKING_WRITER_KEYRING="$T/writers"
"$BK" gen --orders "$ORDERS" --format msgpack -o "$T/stream.mp" 2>"$T/gen.log"
N=$(sed -n 's/.* commands=\([0-9]*\) .*/\1/p' "$T/gen.log")
echo "== stream: $(sed 's/^.*msg="gen done" //' "$T/gen.log") bytes=$(stat -c %s "$T/stream.mp")"
echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); the dev broker, the" \
	"processor and the load generator share them"

# the stream opens with the profiles' profile.bind and the providers' autoaccept.set
K=$(($(sed -n 's/.* binds=\([0-9]*\) .*/\1/p' "$T/gen.log") + $(sed -n 's/.* rules=\([0-9]*\) .*/\1/p' "$T/gen.log")))

# throughput PREFIX NAME PROC_ARGS...: sets TP_LINE ("commands seconds") and AVG_BATCH.
# Life 1 handles the stream's K profile.bind and autoaccept.set commands (they sit on other partitions
# than the orders they govern: the rules are in place before the orders, as planned).
# Life 2 starts on the preloaded rest; timed from its "restore finished" to the last result.
throughput() {
	local pfx=$1 name=$2
	shift 2
	local sign=() run=(--brokers-file "$T/bs" --topic-prefix "$pfx")
	[ "$name" = signed ] && sign=(--key "$T/bench.sk" --key-id bench)
	local proc=("$PROC" "${run[@]}" --group-id "bench-$name" --sweep-interval-ms 0
		-X session.timeout.ms=6000 -X heartbeat.interval.ms=500 "$@")
	"$BC" preload "${run[@]}" --file "$T/stream.mp" --to "$K" "${sign[@]}" >/dev/null
	"${proc[@]}" 2>"$T/proc.$name.1.log" &
	PROCPID=$!
	"$BC" count "${run[@]}" --n "$K" >/dev/null
	kill -TERM "$PROCPID" && wait "$PROCPID"
	echo "== [$name] life 1: $K profile.bind and autoaccept.set commands answered; preload the other $((N - K))" \
		"(idempotent producer${sign:+, signed})"
	"$BC" preload "${run[@]}" --file "$T/stream.mp" --from "$K" "${sign[@]}"
	"$BC" count "${run[@]}" --n "$N" --skip "$K" >"$T/count.$name" &
	local cpid=$!
	for _ in $(seq 300); do grep -q ready= "$T/count.$name" && break; sleep 0.1; done
	local t0 bc0 bc1 pc
	t0=$(now) bc0=$(cpu_s "$BROKER")
	"${proc[@]}" 2>"$T/proc.$name.log" &
	PROCPID=$!
	local perfpid=
	if [ -n "${BK_BENCH_PERF:-}" ]; then
		perf record -q -F 499 ${BK_BENCH_PERF_ARGS:--g} -p "$PROCPID" -o "$BK_BENCH_PERF.$name" 2>/dev/null &
		perfpid=$!
	fi
	wait "$cpid" || { tail -n 5 "$T/proc.$name.log" >&2; exit 1; }
	if [ -n "$perfpid" ]; then kill -INT "$perfpid"; wait "$perfpid" || true; fi
	pc=$(cpu_s "$PROCPID") bc1=$(cpu_s "$BROKER")
	local mport
	mport=$(sed -n 's/.*msg="metrics listening".* port=\([0-9]*\).*/\1/p' "$T/proc.$name.log")
	if [ -n "$mport" ]; then
		sleep 1.1 # the per-second update (lag, assigned)
		curl -s "http://127.0.0.1:$mport/metrics" >"$T/scrape.$name"
		[ -n "${BK_BENCH_SCRAPE:-}" ] && cp "$T/scrape.$name" "$BK_BENCH_SCRAPE"
		echo "== [$name] scraped at the last result: $(grep -vc '^#' "$T/scrape.$name") samples"
		grep -E '^booking_commands_(handled_total|batches_total|batch_size_(sum|count)|result_latency_seconds_(sum|count)|restore_seconds_sum|restore_records_total|dlq_records_total)' \
			"$T/scrape.$name" | sed 's/^/  /'
		echo "  booking_commands_total: $(grep -c '^booking_commands_total{' "$T/scrape.$name") series," \
			"sum $(awk '/^booking_commands_total\{/{s+=$2} END{print s+0}' "$T/scrape.$name")"
		echo "  lag summed over partitions: $(awk '/^booking_commands_partition_lag_records\{/{s+=$2} END{print s+0}' "$T/scrape.$name")"
	fi
	kill -TERM "$PROCPID" && wait "$PROCPID"
	PROCPID=
	local c stop tr first last
	c=$(tail -n 1 "$T/count.$name")
	stop=$(grep 'msg="stopping"' "$T/proc.$name.log")
	tr=$(ts_of 'msg="restore finished"' "$T/proc.$name.log")
	first=$(field first "$c") last=$(field last "$c")
	echo "$c"
	echo "processor: ${stop#*msg=\"stopping\" }"
	grep 'msg="restore finished"' "$T/proc.$name.log" | sed 's/.*msg=//'
	local cmds batches
	cmds=$(field commands "$stop") batches=$(field batches "$stop")
	AVG_BATCH=$(calc "$cmds / $batches" | cut -d. -f1)
	printf 'start -> restore finished %.2f s; restore finished -> last result %.2f s;' \
		"$(calc "$tr - $t0")" "$(calc "$last - $tr")"
	printf ' first -> last result %.2f s; start -> last result %.2f s; %d commands/batch\n' \
		"$(calc "$last - $first")" "$(calc "$last - $t0")" "$AVG_BATCH"
	printf 'CPU from start to last result (%.1f s): processor %.1f s (%.0f%%), dev broker %.1f s' \
		"$(calc "$last - $t0")" "$pc" "$(calc "100 * $pc / ($last - $t0)")" "$(calc "$bc1 - $bc0")"
	printf ' (%.0f%%), counter and others: the rest of 2 cores\n' \
		"$(calc "100 * ($bc1 - $bc0) / ($last - $t0)")"
	TP_LINE="$cmds $(calc "$last - $tr")"
}

# row NAME COMMANDS SECONDS BASE_RATE|-: records/s and MB/s from the output per command
row() {
	local r
	r=$(calc "$2 / $3")
	printf '%-50s %8d %8.2f %10.0f %10.0f %6.1f %6s\n' "$1" "$2" "$3" "$r" "$(calc "$r * $RPC")" \
		"$(calc "$r * $BPC / 1000000")" "$([ "$4" = - ] && echo base || printf '%.2f' "$(calc "$r / $4")")"
}

if [ "$ONLY" != lat ]; then
old_run() {
	throughput old. old --allow-unsigned --no-group-commit
	read -r n5 s5 <<<"$TP_LINE"
	avg5=$AVG_BATCH
}
# OLD_FIRST=1: the --no-group-commit run before the default one (alternate the order
# between runs: on a shared machine the load drifts within a run)
[ "$OLD_RUN" = 1 ] && [ "${OLD_FIRST:-0}" = 1 ] && old_run
throughput "" default --allow-unsigned
read -r n1 s1 <<<"$TP_LINE"
avg1=$AVG_BATCH
if [ "$METRICS_RUN" = 1 ]; then
	throughput met. metrics --allow-unsigned --metrics-addr 127.0.0.1:0
	read -r n2 s2 <<<"$TP_LINE"
	throughput re. default-again --allow-unsigned
	read -r n4 s4 <<<"$TP_LINE"
fi
if [ "$SIGNED_RUN" = 1 ]; then
	throughput sig. signed --keyring "$T/keyring"
	read -r n3 s3 <<<"$TP_LINE"
	avg3=$AVG_BATCH
fi
[ "$OLD_RUN" = 1 ] && [ "${OLD_FIRST:-0}" != 1 ] && old_run

echo "== baseline: the default run's output records (events, rules, results) produced again by" \
	"a transactional producer, transactions of 500 and $avg1 commands"
for b in 500 "$avg1" ${avg3:+"$avg3"}; do
	[ -s "$T/base.$b" ] && continue
	bc0=$(cpu_s "$BROKER")
	"$BP" --brokers-file "$T/bs" --to-prefix raw. --batch "$b" >"$T/base.$b"
	bc1=$(cpu_s "$BROKER")
	cat "$T/base.$b"
	s=$(field seconds "$(tail -n 1 "$T/base.$b")")
	printf 'CPU: dev broker %.1f s in the %.1f s produce and load (%.0f%%)\n' "$(calc "$bc1 - $bc0")" \
		"$s" "$(calc "100 * ($bc1 - $bc0) / $s")"
done
load=$(head -n 1 "$T/base.500")
recs=$(($(field events_records "$load") + $(field rules_records "$load") + $(field results "$load")))
bytes=$(($(field events_bytes "$load") + $(field rules_bytes "$load") + $(field results_bytes "$load")))
RPC=$(calc "$recs / $N") BPC=$(calc "$bytes / $N")
b500=$(tail -n 1 "$T/base.500") bavg=$(tail -n 1 "$T/base.$avg1")
ravg=$(field commands_per_s "$bavg")
printf 'output per command: %.3f records, %.0f bytes (key + value + headers)\n' "$RPC" "$BPC"

printf '\n%-50s %8s %8s %10s %10s %6s %6s\n' "" commands seconds commands/s records/s MB/s "x base"
row "raw txn produce, 500 commands/txn" "$N" "$(field seconds "$b500")" -
row "raw txn produce, $avg1 commands/txn (baseline of [3])" "$N" "$(field seconds "$bavg")" -
if [ "$SIGNED_RUN" = 1 ]; then
	bsig=$(tail -n 1 "$T/base.$avg3")
	row "raw txn produce, $avg3 commands/txn (baseline of [4])" "$N" "$(field seconds "$bsig")" -
fi
row "[3] booking-commands, defaults" "$n1" "$s1" "$ravg"
if [ "$OLD_RUN" = 1 ]; then
	row "[5] booking-commands, --no-group-commit ($avg5/batch)" "$n5" "$s5" "$ravg"
fi
if [ "$METRICS_RUN" = 1 ]; then
	row "[3m] booking-commands, defaults, --metrics-addr" "$n2" "$s2" "$ravg"
	row "[3a] booking-commands, defaults again" "$n4" "$s4" "$ravg"
	printf 'metrics: [3m] / mean([3], [3a]) = %.3f; noise: [3a] / [3] = %.3f\n' \
		"$(calc "($n2 / $s2) / (($n1 / $s1 + $n4 / $s4) / 2)")" "$(calc "($n4 / $s4) / ($n1 / $s1)")"
fi
if [ "$SIGNED_RUN" = 1 ]; then
	row "[4] booking-commands, defaults, signed (Ed25519 verify)" "$n3" "$s3" \
		"$(field commands_per_s "$bsig")"
fi
echo "processor: life 2, restore finished -> last result; records/s, MB/s: output records" \
	"(events + rules + results) at the run's mean per command; x base: commands/s over the" \
	"baseline's at the run's mean batch size"
echo "target: >= 100000 commands/s and >= 0.8 x the raw rate"
fi
[ "$ONLY" = tp ] && exit 0

# latency PREFIX NAME signed|unsigned PROC_ARGS... [-- CONSUMER_ARGS...]: a fresh prefix,
# 500 warm-up commands (untimed: the first transaction waits ~1 s for topic metadata),
# then LAT_RATE commands/s for LAT_SECONDS s, each timed from produce() to its result
latency() {
	local pfx=$1 name=$2 mode=$3
	shift 3
	local pa=() ca=() auth=(--keyring "$T/keyring") sign=(--key "$T/bench.sk" --key-id bench)
	[ "$mode" = unsigned ] && auth=(--allow-unsigned) sign=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do pa+=("$1"); shift; done
	[ $# -gt 0 ] && shift
	ca=("$@")
	"$PROC" --brokers-file "${LAT_BS:-$T/bs}" --topic-prefix "$pfx" --group-id "bench-$name" --archive-after 0 "${auth[@]}" \
		-X session.timeout.ms=6000 -X heartbeat.interval.ms=500 "${pa[@]}" \
		2>"$T/proc.$name.log" &
	PROCPID=$!
	for _ in $(seq 300); do
		grep -q 'msg="restore finished"' "$T/proc.$name.log" && break
		sleep 0.1
	done
	echo "== [$name] $LAT_RATE commands/s for $LAT_SECONDS s, $mode, $LAT_PARTS partitions;" \
		"processor: ${pa[*]:-defaults}; results consumer: ${ca[*]:-defaults}"
	"$BC" latency --brokers-file "${LAT_BS:-$T/bs}" --topic-prefix "$pfx" --file "$T/lat.mp" --warmup 500 \
		--rate "$LAT_RATE" --seconds "$LAT_SECONDS" "${sign[@]}" "${ca[@]}"
	kill -TERM "$PROCPID" && wait "$PROCPID"
	PROCPID=
	echo "processor: $(grep 'msg="stopping"' "$T/proc.$name.log" | sed 's/.*msg="stopping" //')"
}
"$BK" gen --orders $(((LAT_RATE * LAT_SECONDS + 500) / 6)) --format msgpack -o "$T/lat.mp" 2>/dev/null
# The mock answers a Fetch that finds no data only after fetch.wait.max.ms (500 ms by
# default; a real broker answers as soon as data arrives): the processor sets it to 10 ms,
# the results consumer here to 5 ms.
W=(-- -C fetch.wait.max.ms=5)
latency lat. lat-signed signed "${W[@]}"
if [ "$OLD_RUN" = 1 ]; then
	latency lato. lat-signed-no-group-commit signed --no-group-commit "${W[@]}"
fi
latency latu. lat-unsigned unsigned "${W[@]}"
latency lati. lat-signed-idle-close signed --batch-idle-ms 2 "${W[@]}"
# the same as lat-signed on a second dev broker that keeps the mock's Nagle on
# (docs/devbroker.md: ~40 ms delayed ACKs on about one response in two)
BK_DEVBROKER_NAGLE=1 "$BK" devbroker --partitions "$LAT_PARTS" --bootstrap-file "$T/bs2" \
	>/dev/null 2>"$T/broker2.log" &
BROKER2=$!
for _ in $(seq 600); do [ -s "$T/bs2" ] && break; sleep 0.1; done
LAT_BS=$T/bs2 latency "" lat-signed-nagle signed "${W[@]}"
kill "$BROKER2" && wait "$BROKER2" || true
BROKER2=
echo "target: p99 < 250 ms at a steady 1000 commands/s"
