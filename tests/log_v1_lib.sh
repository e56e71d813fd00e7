# shellcheck shell=bash
# tests/log_v1_lib.sh - shared by tests/make_log_v1.sh (which wrote fixtures/log-v1 once)
# and tests/test_log_v1.sh (which checks it on every run): the commands of
# fixtures/log-v1/commands.jsonl through a real booking-commands with a writer key, sent
# one at a time (each after the previous one's result: the order of the stream is the
# order of the log, across partitions too), on the dev broker under topic prefix $2.
# Needs BK, PROCESSOR, T; writes $T/lv1.*.

# lv1_process COMMANDS PREFIX: 0 when every command got its result.
lv1_process() {
	local cmds=$1 prefix=$2 pid rc
	"$BK" keygen --key-id lv1-up --roles buyer,provider,support,system --out "$T/lv1.up" \
		>"$T/lv1.keyring" 2>/dev/null || return 1
	"$BK" keygen --key-id lv1-writer --roles system --types seal --out "$T/lv1.writer" \
		>"$T/lv1.writers" 2>/dev/null || return 1
	"$PROCESSOR" --brokers-file "$T/bootstrap" --topic-prefix "$prefix" --keyring "$T/lv1.keyring" \
		--writer-key "$T/lv1.writer.sk" --writer-key-id lv1-writer \
		--writer-keyring "$T/lv1.writers" --sweep-interval-ms 0 --group-id "lv1-$prefix" \
		-X session.timeout.ms=6000 -X heartbeat.interval.ms=500 2>"$T/lv1.proc.$prefix.log" &
	pid=$!
	"$BK" send --brokers-file "$T/bootstrap" --topic-prefix "$prefix" --key "$T/lv1.up.sk" \
		--key-id lv1-up --sequential --timeout-ms 60000 "$cmds" >"$T/lv1.results.$prefix" \
		2>"$T/lv1.send.$prefix.err"
	rc=$?
	[ "$rc" = 1 ] && rc=0 # some commands rejected: the stream plans rejections
	kill -TERM "$pid" 2>/dev/null
	wait "$pid" || rc=1
	[ "$rc" = 0 ] && [ "$(grep -c . "$T/lv1.results.$prefix")" = "$(grep -c . "$cmds")" ]
}
