#!/usr/bin/env bash
# tests/test_metrics.sh - operating the daemons (TAP), against the dev broker and a private
# PostgreSQL: both daemons with --metrics-addr are scraped while commands flow; the final
# counters equal what `bookingctl send --wait` saw (results by outcome and code, dead
# letters by reason, events projected); /healthz, /readyz, 404; `promtool check metrics`
# on both scrapes and `promtool check rules ops/alerts.yml` (a loud SKIP without
# promtool). Signals: SIGHUP reloads the processor's keyring (a new key works, a broken
# keyring keeps the old one), SIGHUP never kills either daemon, SIGTERM logs its cause;
# --version on the three programs.
# The projector's offsets committed to Kafka (information only) equal its checkpoints.
# Usage: test_metrics.sh SRCDIR BOOKINGCTL BOOKING_COMMANDS BOOKING_PROJECTOR KAFKA_COMMITTED
set -uo pipefail

SRC=${1:?usage} BK=${2:?usage} PROC=${3:?usage} PROJ=${4:?usage} KC=${5:?usage}
# shellcheck source=tests/harness.sh
. "$SRC/tests/harness.sh"

T=$(mktemp -d /tmp/bk-test-metrics.XXXXXX)
chmod 755 "$T"
pids=()
DB=bkt_metrics_$$
n=0
failed=0
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	pg_dropdb "$DB"
	bk_pg_teardown "$T/pg"
	if [ "$failed" -eq 0 ] && [ -z "${BK_KEEP:-}" ]; then rm -rf "$T"; else echo "# kept: $T"; fi
}
trap cleanup EXIT
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
	for f in "$@"; do [ -s "$f" ] && tail -n 25 "$f" | sed 's/^/#   /'; done
}
check() { # check DESCRIPTION COMMAND...
	local d=$1
	shift
	if "$@" >"$T/check.out" 2>&1; then ok "$d"; else not_ok "$d" "$T/check.out"; fi
}
skip() {
	n=$((n + 1))
	echo "ok $n - # SKIP $1"
	echo "# ************ SKIPPED: $1 ************" >&2
}

# metric FILE NAME{LABELS}: the value of one sample line (exact name and labels), or 0
metric() {
	awk -v k="$2" '$1 == k { v = $2 } END { print (v == "" ? 0 : v) }' "$1"
}
# metric_sum FILE NAME [LABEL-REGEX]: the sum of a family's samples (label filter optional)
metric_sum() {
	awk -v m="$2" -v re="${3:-}" '
		index($1, m "{") == 1 || $1 == m { if (re == "" || $1 ~ re) s += $2 }
		END { printf "%d\n", s }' "$1"
}
# port_of LOG: the port a daemon logged in "metrics listening"
port_of() {
	local i
	for i in $(seq 1 200); do
		p=$(sed -n 's/.*msg="metrics listening".* port=\([0-9]*\).*/\1/p' "$1" | tail -1)
		[ -n "$p" ] && { echo "$p"; return 0; }
		sleep 0.1
	done
	return 1
}
# wait_for SECONDS COMMAND...: until COMMAND succeeds
wait_for() {
	local s=$1 i
	shift
	for i in $(seq 1 $((s * 10))); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}
http_code() { curl -s -o "$T/body" -w '%{http_code}' "$1"; }
# is_200 URL: the URL answers 200 now
is_200() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ]; }

# ---- --version -----------------------------------------------------------------------
want=$(sed -n "s/^ *version : '\(.*\)',/\1/p" "$SRC/meson.build")
for prog in "$BK" "$PROC" "$PROJ"; do
	name=$(basename "$prog")
	check "$name --version prints '$name $want' and exits 0" \
		bash -c '[ "$("$1" --version)" = "$2 $3" ]' _ "$prog" "$name" "$want"
done

# ---- set-up: PostgreSQL, the dev broker, keys, both daemons --------------------------
if ! bk_pg_setup "$T/pg" 2>"$T/pg.err"; then
	echo "Bail out! cannot start PostgreSQL: $(tr '\n' ' ' <"$T/pg.err")"
	exit 1
fi
export PGHOST PGPORT PGUSER
pg_newdb "$DB" >/dev/null || { echo "Bail out! cannot create $DB"; exit 1; }
"$BK" migrate -q -d "dbname=$DB" --dir "$SRC/migrations" >"$T/migrate.out" 2>&1 ||
	{ echo "Bail out! migrate failed: $(cat "$T/migrate.out")"; exit 1; }
"$BK" devbroker --partitions 4 --bootstrap-file "$T/boot" --control "$T/ctl" >/dev/null \
	2>"$T/devbroker.log" &
pids+=($!)
wait_for 30 test -s "$T/boot" || { echo "Bail out! the dev broker did not start"; exit 1; }
"$BK" keygen --key-id k1 --roles buyer,provider,support,system --out "$T/k1" >"$T/keyring" 2>/dev/null
"$BK" keygen --key-id k2 --roles buyer,provider,support,system --out "$T/k2" >"$T/k2.line" 2>/dev/null
# the processor's writer key and the readers' writer keyring (seals)
"$BK" keygen --key-id w1 --roles system --types seal --out "$T/w1" >"$T/writers" 2>/dev/null
export BOOKING_WRITER_KEY="$T/w1.sk" BOOKING_WRITER_KEY_ID=w1 BOOKING_WRITER_KEYRING="$T/writers"

# both daemons configured by -F files (kcat's key=value format): own options and
# librdkafka properties; the command line after -F overrides the file
cat >"$T/proc.conf" <<EOF
# booking-commands
brokers-file=$T/boot
keyring=$T/keyring
sweep-interval-ms=5000
metrics-addr=127.0.0.1:0
session.timeout.ms=6000
heartbeat.interval.ms = 500
allow-unsigned=false
EOF
cat >"$T/proj.conf" <<EOF
dbname=dbname=$DB
brokers-file=$T/boot
stats-s=0
metrics-addr=127.0.0.1:0
session.timeout.ms=6000
heartbeat.interval.ms=500
EOF
"$PROC" -F "$T/proc.conf" --sweep-interval-ms 0 >"$T/proc.log" 2>&1 &
PROC_PID=$!
pids+=($PROC_PID)
"$PROJ" --config "$T/proj.conf" >"$T/proj.log" 2>&1 &
PROJ_PID=$!
pids+=($PROJ_PID)
CP=$(port_of "$T/proc.log") || { echo "Bail out! no metrics port: $(tail -5 "$T/proc.log")"; exit 1; }
PP=$(port_of "$T/proj.log") || { echo "Bail out! no metrics port: $(tail -5 "$T/proj.log")"; exit 1; }
C=http://127.0.0.1:$CP
P=http://127.0.0.1:$PP

check "-F: the file's settings apply, and the command line after it wins (sweep_interval_ms=0)" \
	wait_for 10 grep -q 'msg="booking-commands started".* sweep_interval_ms=0 ' "$T/proc.log"
check "start-up lines carry the version" \
	wait_for 30 bash -c 'grep -q "msg=\"booking-commands started\" version=$3 " "$1" &&
		grep -q "msg=\"projector started\" version=$3 " "$2"' _ "$T/proc.log" "$T/proj.log" "$want"
check "no warning at start-up (metrics server, librdkafka)" \
	bash -c '! grep -q "level=warn" "$1" "$2"' _ "$T/proc.log" "$T/proj.log"
check "processor /healthz answers 200" test "$(http_code "$C/healthz")" = 200
check "processor /readyz becomes 200 once its partitions are restored" \
	wait_for 30 is_200 "$C/readyz"
check "projector /readyz becomes 200 once PostgreSQL answers" \
	wait_for 30 is_200 "$P/readyz"
check "projector /healthz answers 200" test "$(http_code "$P/healthz")" = 200
check "an unknown path is 404" test "$(http_code "$C/nope")" = 404

# ---- a stream, scraped while it flows ------------------------------------------------
"$BK" gen --orders 300 --seed 7 -o "$T/cmds.jsonl" 2>"$T/gen.err"
head -3 "$T/cmds.jsonl" >"$T/unsigned.jsonl"
sent=$(grep -c . "$T/cmds.jsonl")
(
	i=0
	while [ ! -e "$T/stop-scraping" ]; do
		curl -s "$C/metrics" >"$T/scrape.c.$i" && curl -s "$P/metrics" >"$T/scrape.p.$i"
		i=$((i + 1))
		sleep 0.2
	done
) &
SCRAPER=$!
# in two halves, with a pause between them longer than the metrics' update period (1 s):
# a scrape in the pause sees the stream in progress however fast the processor is
head -n $((sent / 2)) "$T/cmds.jsonl" >"$T/cmds.1.jsonl"
tail -n +$((sent / 2 + 1)) "$T/cmds.jsonl" >"$T/cmds.2.jsonl"
"$BK" send --brokers-file "$T/boot" --key "$T/k1.sk" --key-id k1 --wait --timeout-ms 60000 \
	"$T/cmds.1.jsonl" >"$T/results.jsonl" 2>"$T/send.err"
sleep 2
"$BK" send --brokers-file "$T/boot" --key "$T/k1.sk" --key-id k1 --wait --timeout-ms 60000 \
	"$T/cmds.2.jsonl" >>"$T/results.jsonl" 2>>"$T/send.err"
"$BK" send --brokers-file "$T/boot" --unsigned --wait --timeout-ms 60000 \
	"$T/unsigned.jsonl" >"$T/dlq.jsonl" 2>"$T/send2.err"
check "every command got an outcome ($sent signed + 3 unsigned)" \
	test "$(grep -c . "$T/results.jsonl")" = "$sent" -a "$(grep -c . "$T/dlq.jsonl")" = 3
"$BK" status -d "dbname=$DB" --brokers-file "$T/boot" --wait --timeout-ms 60000 >"$T/status.out" 2>&1
sleep 1.5 # one more metrics update (every second)
touch "$T/stop-scraping"
wait "$SCRAPER"
curl -s "$C/metrics" >"$T/final.c"
curl -s "$P/metrics" >"$T/final.p"

mid=0
for f in "$T"/scrape.c.*; do
	h=$(metric_sum "$f" booking_commands_handled_total)
	[ "$h" -gt 0 ] && [ "$h" -lt $((sent + 3)) ] && mid=$((mid + 1))
done
check "scrapes during the stream saw it in progress ($mid scrapes between 0 and the end)" \
	test "$mid" -ge 1
mono=ok
prev=0
for i in $(seq 0 $(($(ls "$T"/scrape.c.* | wc -l) - 1))); do
	h=$(metric_sum "$T/scrape.c.$i" booking_commands_handled_total)
	[ "$h" -ge "$prev" ] || mono="went from $prev to $h at scrape $i"
	prev=$h
done
check "booking_commands_handled_total never decreased across scrapes ($mono)" test "$mono" = ok

# expected counts from what send printed
jq -r 'select(.status != "dlq") | "\(.status) \(.code)"' "$T/results.jsonl" | sort | uniq -c >"$T/want.codes"
bad=""
while read -r cnt status code; do
	got=$(metric_sum "$T/final.c" booking_commands_total "outcome=\"$status\",code=\"$code\"")
	[ "$got" = "$cnt" ] || bad="$bad $status/$code:want=$cnt,got=$got"
done <"$T/want.codes"
check "booking_commands_total by outcome and code equals send's results${bad:+ (}${bad}${bad:+)}" \
	test -z "$bad" -a -s "$T/want.codes"
answered=$(jq -r 'select(.status != "dlq") | .status' "$T/results.jsonl" | grep -c .)
check "booking_commands_total sums to the $answered answered commands" \
	test "$(metric_sum "$T/final.c" booking_commands_total)" = "$answered"
check "commands are counted by type (order.create: one per created order)" \
	test "$(metric_sum "$T/final.c" booking_commands_total 'type="order.create",outcome="accepted"')" -gt 0
check "booking_commands_dlq_records_total{reason=\"unsigned\"} is 3" \
	test "$(metric "$T/final.c" 'booking_commands_dlq_records_total{reason="unsigned"}')" = 3
check "booking_commands_handled_total is every record sent ($((sent + 3)))" \
	test "$(metric "$T/final.c" booking_commands_handled_total)" = $((sent + 3))
check "result latency observed for every committed command" \
	test "$(metric "$T/final.c" booking_commands_result_latency_seconds_count)" = $((sent + 3))
check "batch sizes sum to the commands handled" \
	test "$(metric "$T/final.c" booking_commands_batch_size_sum | cut -d. -f1)" = $((sent + 3))
check "batches counted, and one batch-duration observation each" \
	bash -c '[ "$(awk "\$1==\"booking_commands_batches_total\"{print \$2}" "$1")" -gt 0 ] &&
		[ "$(awk "\$1==\"booking_commands_batches_total\"{print \$2}" "$1")" = \
		  "$(awk "\$1==\"booking_commands_batch_seconds_count\"{print \$2}" "$1")" ]' _ "$T/final.c"
check "a restore was observed" test "$(metric "$T/final.c" booking_commands_restore_seconds_count)" -ge 1
check "processor lag is 0 on every partition once all is answered, end offsets sum to the records" \
	bash -c '[ "$(awk "/^booking_commands_partition_lag_records\\{/{s+=\$2} END{print s+0}" "$1")" = 0 ] &&
		[ "$(awk "/^booking_commands_partition_lag_records\\{/{n++} END{print n+0}" "$1")" = 4 ] &&
		[ "$(awk "/^booking_commands_partition_end_offset\\{/{s+=\$2} END{print s+0}" "$1")" = "$2" ]' \
	_ "$T/final.c" $((sent + 3))
check "build info carries the version" \
	grep -q "^booking_build_info{program=\"booking-commands\",version=\"$want\"} 1" "$T/final.c"

events=$(jq -r 'select(.status != "dlq" and .status != "duplicate") | (.event_ids // []) | length' \
	"$T/results.jsonl" | awk '{s += $1} END {print s + 0}')
check "projector: booking_projector_events_total equals the events the results named ($events)" \
	test "$(metric "$T/final.p" booking_projector_events_total)" = "$events"
check "projector: every event applied, no fork, nothing quarantined" \
	bash -c '[ "$(awk "\$1==\"booking_projector_events_applied_total\"{print \$2}" "$1")" = "$2" ] &&
		grep -q "^booking_projector_forks_total 0$" "$1" &&
		grep -q "^booking_projector_quarantined_orders 0$" "$1" &&
		grep -q "^booking_projector_postgresql_up 1$" "$1"' _ "$T/final.p" "$events"
check "projector: lag 0 on its 4 events partitions after catching up" \
	bash -c '[ "$(awk "/^booking_projector_partition_lag_records\\{/{s+=\$2;n++} END{print s+0, n+0}" "$1")" = "0 4" ]' \
	_ "$T/final.p"
"$KC" --brokers-file "$T/boot" booking-projector booking.events 4 >"$T/committed" 2>&1
check "projector: its group's offsets committed to Kafka reach the end of booking.events" \
	test "$(sed -n 's/^total //p' "$T/committed")" = \
	"$(awk '/^booking_projector_partition_end_offset\{/{s+=$2} END{print s+0}' "$T/final.p")"
check "projector: batches counted with sizes and durations" \
	bash -c '[ "$(awk "\$1==\"booking_projector_batch_seconds_count\"{print \$2}" "$1")" -gt 0 ]' _ "$T/final.p"

if command -v promtool >/dev/null 2>&1; then
	check "promtool check metrics accepts the processor's scrape" \
		bash -c 'promtool check metrics <"$1"' _ "$T/final.c"
	check "promtool check metrics accepts the projector's scrape" \
		bash -c 'promtool check metrics <"$1"' _ "$T/final.p"
	check "promtool check rules accepts ops/alerts.yml" promtool check rules "$SRC/ops/alerts.yml"
else
	skip "promtool not installed (Debian package prometheus): exposition NOT validated"
	skip "promtool not installed: ops/alerts.yml NOT validated"
fi
check "ops/metrics.md documents every metric both daemons expose" \
	bash -c 'for m in $(cat "$1" "$2" | sed -n "s/^# TYPE \([a-z_]*\) .*/\1/p" | sort -u); do
		grep -q "\`$m\`" "$3" || { echo "undocumented: $m"; exit 1; }; done' \
	_ "$T/final.c" "$T/final.p" "$SRC/ops/metrics.md"

# ---- logs an operator can use --------------------------------------------------------
check "rejected and duplicate commands are not logged at info (they are counted)" \
	bash -c '! grep "msg=\"command handled\"" "$1" | grep -qv "level=debug"' _ "$T/proc.log"
check "the projector's assignment is one line per topic with the partition list" \
	grep -q 'level=info msg="partition assigned" topic=booking.events count=4 partitions=0-3' "$T/proj.log"
check "consumer properties in -F/-X are not passed to the producer (no 'will be ignored' warning)" \
	bash -c '! grep -q "will be ignored" "$1" && grep -q "session.timeout.ms" "$2"' _ "$T/proc.log" "$T/proc.conf"
# both daemons against a closed port: retried with one line per window, then exit 3 after
# --timeout-ms, with the same lines (lib/startup.c)
"$PROC" -b 127.0.0.1:1 --allow-unsigned --timeout-ms 2000 >"$T/down.log" 2>&1 &
dpid=$!
"$PROJ" -b 127.0.0.1:1 -d "dbname=$DB" --timeout-ms 2000 >"$T/down.proj.log" 2>&1
jc=$?
wait "$dpid"
pc=$?
for w in proc:"$pc":"$T/down.log" proj:"$jc":"$T/down.proj.log"; do
	IFS=: read -r who code log <<<"$w"
	check "$who, Kafka unreachable at start: a retry line, then exit 3 after --timeout-ms" \
		bash -c '[ "$1" = 3 ] &&
			grep -q "level=warn msg=\"kafka unreachable at start: retrying\" attempt=1 " "$2" &&
			grep -q "level=error msg=\"refusing to run\" err=\"kafka unreachable: no broker answered within 2000 ms (--timeout-ms" "$2" &&
			grep -q "msg=\"not started: exiting\" exit=3 cause=\"kafka unreachable" "$2"' \
		_ "$code" "$log"
done
check "an unreachable broker: librdkafka's connection failures at warn, none at error" \
	bash -c 'grep -q "level=warn msg=\"librdkafka\" fac=FAIL" "$1" &&
		! grep "msg=\"librdkafka\"" "$1" | grep -q "level=error"' _ "$T/down.log"

# ---- configuration errors and secrets -----------------------------------------------
printf 'brokers-file=%s\nno-such-option=1\n' "$T/boot" >"$T/bad.conf"
"$PROJ" -F "$T/bad.conf" >"$T/badconf.log" 2>&1
bc=$?
check "-F with an unknown setting: exit 2, naming it" \
	bash -c '[ "$1" = 2 ] && grep -q "no-such-option" "$2"' _ "$bc" "$T/badconf.log"
printf 'brokers-file %s\n' "$T/boot" >"$T/bad2.conf"
"$PROC" -F "$T/bad2.conf" --allow-unsigned >"$T/badconf2.log" 2>&1
bc=$?
check "-F with a line that is not key=value: exit 2, naming the file and line" \
	bash -c '[ "$1" = 2 ] && grep -q "bad2.conf:1: expected key=value" "$2"' _ "$bc" "$T/badconf2.log"
"$PROC" -F "$T/no-such.conf" >"$T/badconf3.log" 2>&1
check "-F with a missing file: exit 2" test $? = 2
BOOKING_KAFKA_SASL_PASSWORD=hunter2-secret BOOKING_KAFKA_MESSAGE_MAX_BYTES=hunter2-secret \
	"$PROC" --brokers-file "$T/boot" --allow-unsigned --timeout-ms 3000 >"$T/env.log" 2>&1
bc=$?
check "BOOKING_KAFKA_* reaches librdkafka: a bad one is exit 2 naming the variable, never the value" \
	bash -c '[ "$1" = 2 ] && grep -q "BOOKING_KAFKA_MESSAGE_MAX_BYTES" "$2" && ! grep -q hunter2 "$2"' \
	_ "$bc" "$T/env.log"
BOOKING_LOG_LEVEL=debug BOOKING_KAFKA_CLIENT_ID=from-the-environment BOOKING_KAFKA_DEBUG=generic \
	timeout 20 "$BK" status -d "dbname=$DB" --brokers-file "$T/boot" >"$T/env2.log" 2>&1
check "BOOKING_KAFKA_CLIENT_ID and _DEBUG are applied (librdkafka's debug lines name the client)" \
	grep -q "from-the-environment" "$T/env2.log"

# ---- SIGHUP ---------------------------------------------------------------------------
cat "$T/k2.line" >>"$T/keyring"
kill -HUP "$PROC_PID" "$PROJ_PID"
check "SIGHUP: the processor reloads its keyring and logs it" \
	wait_for 10 grep -q 'msg="SIGHUP: keyring reloaded".*keys=2' "$T/proc.log"
check "SIGHUP: the projector logs it" \
	wait_for 10 grep -q 'msg="SIGHUP: nothing to reload' "$T/proj.log"
check "SIGHUP: both daemons are still running" kill -0 "$PROC_PID" "$PROJ_PID"
"$BK" gen --orders 2 --seed 99 | head -1 >"$T/k2.jsonl"
check "a command signed with the key added before SIGHUP is accepted" \
	"$BK" send --brokers-file "$T/boot" --key "$T/k2.sk" --key-id k2 --wait --timeout-ms 30000 "$T/k2.jsonl"
echo "garbage line" >>"$T/keyring"
kill -HUP "$PROC_PID"
check "SIGHUP with a broken keyring: an error line, the old keyring stays" \
	wait_for 10 grep -q 'msg="SIGHUP: keyring not reloaded, the old one stays"' "$T/proc.log"
check "the reload failure is counted" \
	bash -c 'sleep 1.2; curl -s "$1/metrics" | grep -q "^booking_commands_keyring_reload_errors_total 1$"' _ "$C"
"$BK" gen --orders 2 --seed 98 | head -1 >"$T/k2b.jsonl"
check "... and k2 still works after it" \
	"$BK" send --brokers-file "$T/boot" --key "$T/k2.sk" --key-id k2 --wait --timeout-ms 30000 "$T/k2b.jsonl"
check "both daemons survived" kill -0 "$PROC_PID" "$PROJ_PID"

# ---- exits log their cause -----------------------------------------------------------
kill -TERM "$PROC_PID" "$PROJ_PID"
wait "$PROC_PID"
pc=$?
wait "$PROJ_PID"
jc=$?
check "SIGTERM: both exit 0" test "$pc:$jc" = 0:0
check "SIGTERM: the processor logs exit=0 cause=SIGTERM" grep -q 'msg="stopping" exit=0 cause=SIGTERM' "$T/proc.log"
check "SIGTERM: the projector logs exit=0 cause=SIGTERM" grep -q 'msg="projector stopped" exit=0 cause=SIGTERM' "$T/proj.log"
# a projector whose database does not exist: alive, not ready, and SIGTERM still works
"$PROJ" -d "dbname=${DB}_missing" --brokers-file "$T/boot" --metrics-addr 127.0.0.1:0 \
	>"$T/proj-nodb.log" 2>&1 &
NODB_PID=$!
pids+=($NODB_PID)
NP=$(port_of "$T/proj-nodb.log")
check "projector without its database: /healthz 200, /readyz 503 naming PostgreSQL" \
	bash -c '[ "$(curl -s -o /dev/null -w "%{http_code}" "$1/healthz")" = 200 ] &&
		sleep 1 && curl -s -w " %{http_code}" "$1/readyz" | tr "\\n" " " | grep -q "postgresql unreachable.* 503$"' \
	_ "http://127.0.0.1:$NP"
kill -TERM "$NODB_PID"
wait "$NODB_PID"
nc=$?
check "... and SIGTERM while waiting for PostgreSQL: exit 0, cause logged" \
	bash -c '[ "$1" = 0 ] && grep -q "msg=\"projector stopped\" exit=0 cause=\"SIGTERM before postgresql came\"" "$2"' \
	_ "$nc" "$T/proj-nodb.log"
"$PROC" --brokers-file "$T/boot" --keyring "$T/nonexistent" >"$T/bad.log" 2>&1
bc=$?
check "bad configuration: exit 2 with a logged cause" \
	bash -c '[ "$1" = 2 ] && grep -q "msg=\"not started: exiting\" exit=2" "$2"' _ "$bc" "$T/bad.log"
"$PROC" --brokers-file "$T/boot" --allow-unsigned --metrics-addr nonsense >"$T/bad2.log" 2>&1
bc=$?
check "a bad --metrics-addr is bad configuration (exit 2)" test "$bc" = 2


# ---- CLI conventions (docs/operations.md): --format json, exit 2 --------------------
# a held order (the projector is stopped: it stays held) for status and quarantine list
psql -X -q -d "$DB" -c "insert into booking_proj.quarantine (order_id, topic, partition,
	record_offset, seq, reason, event) values ('ord_held_1', 'booking.events', 2, 7, 3,
	'test: held', '\\x00')" >"$T/psql.out" 2>&1
"$BK" status -d "dbname=$DB" --brokers-file "$T/boot" --format json >"$T/status.json" 2>"$T/status.err"
sc=$?
check "status --format json: exit 1 (an order is held), the documented fields" \
	python3 - "$T/status.json" "$sc" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert sys.argv[2] == "1", sys.argv[2]
assert set(j) == {"topic", "partitions", "lag", "quarantined", "forks"}, j.keys()
assert j["topic"] == "booking.events" and len(j["partitions"]) == 4 and j["lag"] >= 0
for p in j["partitions"]:
    assert set(p) == {"partition", "low", "end", "checkpoint", "lag", "lag_seconds"}, p
assert sum(p["end"] for p in j["partitions"]) > 0
assert j["quarantined"] == [{"order_id": "ord_held_1", "events": 1, "status": "held",
                             "reason": "test: held"}], j["quarantined"]
assert j["forks"] == 0
PY
"$BK" quarantine list -d "dbname=$DB" --format json >"$T/q.json" 2>"$T/q.err"
check "quarantine list --format json: the documented fields" \
	python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j == {"orders": [{"order_id": "ord_held_1", "status": "held", "events": 1, "seq_min": 3,
    "seq_max": 3, "topic": "booking.events", "partition": 2, "offset": 7,
    "reason": "test: held"}]}, j' "$T/q.json"
"$BK" verify --brokers-file "$T/boot" --format json >"$T/verify.json" 2>"$T/verify.err"
vc=$?
check "verify --format json: exit 0, the documented fields, every record counted" \
	python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert sys.argv[2] == "0", sys.argv[2]
assert {"ok", "records", "seals", "events", "orders", "duplicates_skipped", "problems",
        "seals_checked", "problem_list", "leftovers", "awaiting_seal", "awaiting",
        "results"} == set(j), j.keys()
assert j["ok"] is True and j["problems"] == 0 and j["problem_list"] == [] and j["seals_checked"]
assert j["events"] > 0 and j["seals"] > 0 and j["orders"] > 0
assert j["results"]["answered"] >= int(sys.argv[3]), j["results"]' "$T/verify.json" "$vc" "$sent"
"$BK" migrate -d "dbname=$DB" --migrations "$SRC/migrations" --status --format json \
	>"$T/mig.json" 2>"$T/mig.err"
check "migrate --status --format json: every migration applied, the documented fields" \
	python3 -c '
import json, os, sys
j = json.load(open(sys.argv[1]))
files = sorted(f for f in os.listdir(sys.argv[2]) if f.endswith(".sql"))
assert j["ok"] is True and j["pending"] == 0 and j["problems"] == 0, j
assert j["applied"] == len(files) == len(j["migrations"]), (j["applied"], len(files))
for m, f in zip(j["migrations"], files):
    assert set(m) == {"version", "name", "state", "applied_at", "sha256"}, m
    assert m["state"] == "applied" and f == m["version"] + "_" + m["name"] + ".sql", (m, f)' \
	"$T/mig.json" "$SRC/migrations"
for c in "status --brokers-file $T/boot" "quarantine list" "verify --brokers-file $T/boot" \
	"migrate --status"; do
	# shellcheck disable=SC2086 # the words of $c are arguments
	"$BK" $c --format xml -d "dbname=$DB" >/dev/null 2>"$T/fmt.err"
	fc=$?
	check "bookingctl ${c%% -*} --format xml: exit 2, naming the choices" \
		bash -c '[ "$1" = 2 ] && grep -q -- "--format xml: text or json" "$2"' _ "$fc" "$T/fmt.err"
done
"$BK" send --brokers-file "$T/boot" --unsigned -X partitioner=random "$T/k2.jsonl" >/dev/null 2>"$T/part.err"
check "send -X partitioner=random is bad configuration: exit 2" \
	bash -c '[ "$1" = 2 ] && grep -q "partitioner is fixed" "$2"' _ "$?" "$T/part.err"
"$BK" seal --brokers-file "$T/boot" -X partitioner=random >/dev/null 2>"$T/seal.err"
check "seal -X partitioner=random is bad configuration: exit 2, before reading the log" \
	bash -c '[ "$1" = 2 ] && grep -q "partitioner is fixed" "$2"' _ "$?" "$T/seal.err"
"$PROC" --brokers-file "$T/boot" --allow-unsigned -X partitioner=random >"$T/part2.log" 2>&1
check "booking-commands -X partitioner=random: exit 2" test "$?" = 2
"$PROJ" --brokers-file "$T/boot" -d "dbname=$DB" -X no.such.property=1 >"$T/prop.log" 2>&1
check "booking-projector -X no.such.property=1: exit 2" test "$?" = 2
# a misspelled --topic-prefix: both daemons refuse, exit 2, naming the topics
"$PROJ" --brokers-file "$T/boot" -d "dbname=$DB" --topic-prefix typo. >"$T/typo.proj.log" 2>&1
jc=$?
"$PROC" --brokers-file "$T/boot" --allow-unsigned --topic-prefix typo. >"$T/typo.proc.log" 2>&1
pc=$?
check "projector with a missing topic (--topic-prefix typo.): exit 2, the topic named" \
	bash -c '[ "$1" = 2 ] && grep -q "refusing to run\" err=\"topics missing or unusable: typo.booking.events (does not exist, --events-topic)" "$2"' \
	_ "$jc" "$T/typo.proj.log"
check "processor with the same typo: the same exit and message" \
	bash -c '[ "$1" = 2 ] && grep -q "refusing to run\" err=\"topics missing or unusable: typo.booking.commands (does not exist, --commands-topic)" "$2"' \
	_ "$pc" "$T/typo.proc.log"

# ---- a stalled pipeline: Kafka unreachable while running, one line each way -----------
# (checkpoints off: a checkpoint's commit waiting for the broker holds the main loop,
# which says the stall when it returns; that is documented, not what is tested here)
"$PROC" --brokers-file "$T/boot" --keyring "$T/k2.line" --sweep-interval-ms 0 \
	--snapshot-interval-ms 0 >"$T/stall.proc.log" 2>&1 &
SP=$!
pids+=($SP)
"$PROJ" --brokers-file "$T/boot" -d "dbname=$DB" --stats-s 0 >"$T/stall.proj.log" 2>&1 &
SJ=$!
pids+=($SJ)
wait_for 30 bash -c 'grep -q "msg=\"restore finished\" partitions=4 " "$1" &&
	grep -q "msg=\"partition assigned\" topic=booking.events count=4 partitions=0-3" "$2"' \
	_ "$T/stall.proc.log" "$T/stall.proj.log"
check "the processor's assignment is one line with the partition list" \
	grep -q 'msg="partitions assigned: restoring" topic=booking.commands count=4 partitions=0-3 ' "$T/stall.proc.log"
"$BK" devbroker ctl --control "$T/ctl" broker-down all >/dev/null
# (10 s or more: a daemon inside a Kafka call that waits for the broker, a checkpoint's
# commit, says it when the call returns; docs/operations.md)
check "broker down: both daemons say once that the pipeline is stalled (after 10 s or more)" \
	wait_for 45 bash -c 'grep -q "level=warn msg=\"kafka unreachable: pipeline stalled\" program=booking-commands seconds=[1-9][0-9][0-9]* partitions_stalled=4" "$1" &&
		grep -q "level=warn msg=\"kafka unreachable: pipeline stalled\" program=booking-projector seconds=[1-9][0-9][0-9]* partitions_stalled=" "$2"' \
	_ "$T/stall.proc.log" "$T/stall.proj.log"
"$BK" devbroker ctl --control "$T/ctl" broker-up all >/dev/null
check "broker up again: one line each that the pipeline resumes" \
	wait_for 20 bash -c 'grep -q "msg=\"kafka reachable again: pipeline resumes\"" "$1" &&
		grep -q "msg=\"kafka reachable again: pipeline resumes\"" "$2"' \
	_ "$T/stall.proc.log" "$T/stall.proj.log"
check "... and the stall was said once per daemon" \
	bash -c '[ "$(grep -c "pipeline stalled" "$1")" = 1 ] && [ "$(grep -c "pipeline stalled" "$2")" = 1 ]' \
	_ "$T/stall.proc.log" "$T/stall.proj.log"
kill -TERM "$SP" "$SJ"
wait "$SP" "$SJ"

echo "1..$n"
[ "$failed" -eq 0 ]
