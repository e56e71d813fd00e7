#!/usr/bin/env bash
# tests/make_log_v1.sh BUILD_DIR - writes fixtures/log-v1 (run once, 2026-12-02, by the
# code of that day; kept as it was written): the schema-1 log that every later version
# must still read (issue #14: "the log must outlive its code"). A generated command
# stream, the events log the processor of the day wrote for it (a replay file: header,
# every record with its seal, trailer) and the writer keyring that checks its seals. The
# writer's secret key is thrown away. tests/test_log_v1.sh checks it on every run.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "${1:-build}" && pwd)
BK=$B/cli/bookingctl PROCESSOR=$B/commands/booking-commands
OUT=$SRC/fixtures/log-v1
T=$(mktemp -d /tmp/bk-make-log-v1.XXXXXX)
BROKER=
cleanup() {
	[ -n "$BROKER" ] && kill "$BROKER" 2>/dev/null && wait "$BROKER" 2>/dev/null
	[ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
# shellcheck source=tests/log_v1_lib.sh
. "$SRC/tests/log_v1_lib.sh"
mkdir -p "$OUT"
"$BK" devbroker --partitions 4 --topic-prefix v1. --bootstrap-file "$T/bootstrap" \
	--control "$T/ctl" >/dev/null 2>"$T/broker.log" &
BROKER=$!
for _ in $(seq 100); do [ -s "$T/bootstrap" ] && break; sleep 0.1; done
"$BK" gen --orders 120 --seed 20261202 -o "$OUT/commands.jsonl" 2>/dev/null
lv1_process "$OUT/commands.jsonl" v1. || { echo "processing failed" >&2; exit 1; }
"$BK" replay --brokers-file "$T/bootstrap" --topic-prefix v1. --writer-keyring "$T/lv1.writers" \
	--format msgpack -o "$OUT/events.replay" 2>"$T/replay.err"
cp "$T/lv1.writers" "$OUT/writers.keyring"
tail -n 1 "$T/replay.err"
ls -l "$OUT"
