#!/usr/bin/env bash
# tests/test_attack.sh - attacks on a live log (issue #10), by a producer that is not
# bookingctl (tests/attacker.c: librdkafka directly, the canonical form from the docs), TAP.
# A processor and a projector run on the dev broker and a private PostgreSQL; an order is
# driven to `confirmed`; then the attacker appends:
#   forge       an event at head + 1 linked to the real head, correctly hashed, unsealed
#   forge-seal  the same under a seal signed by a key that claims the writer's key id
#   tamper      a copy of the order's last record with one value changed, hashes kept
#   ahead       a correctly hashed chain at head + 3
# The processor is restarted (restore); then a real note.add must be accepted at the real
# head + 1, verify must name every planted record and exit 1, and the projector must
# reject each one alone (booking_proj.rejected) and project the real note.
# Usage: test_attack.sh SRCDIR BOOKINGCTL BOOKING_COMMANDS BOOKING_PROJECTOR ATTACKER
set -uo pipefail

SRC=${1:?usage}
BK=${2:?usage}
PROC=${3:?usage}
PROJ=${4:?usage}
ATT=${5:?usage}
# shellcheck source=tests/harness.sh
. "$SRC/tests/harness.sh"
# shellcheck source=tests/test_projector_lib.sh
. "$SRC/tests/test_projector_lib.sh"

T=$(mktemp -d /tmp/bk-test-attack.XXXXXX)
chmod 755 "$T"
pids=()
DB=bkt_attack_$$
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	pg_dropdb "$DB"
	bk_pg_teardown "$T/pg"
	[ -n "${BK_KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT

n=0
failed=0
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
	for f in "$@"; do [ -s "$f" ] && tail -n 30 "$f" | sed 's/^/#   /'; done
}
check() { # check DESCRIPTION COMMAND...
	local d=$1
	shift
	if "$@" >"$T/check.out" 2>&1; then ok "$d"; else not_ok "$d" "$T/check.out"; fi
}

if ! bk_pg_setup "$T/pg" 2>"$T/pg.err"; then
	echo "Bail out! cannot start PostgreSQL: $(tr '\n' ' ' <"$T/pg.err")"
	exit 1
fi
export PGHOST PGPORT PGUSER
pg_newdb "$DB" >/dev/null || { echo "Bail out! cannot create $DB"; exit 1; }
unset PGDATABASE
"$BK" migrate -q -d "dbname=$DB" --dir "$SRC/migrations" >"$T/migrate.out" 2>&1 ||
	{ echo "Bail out! migrate: $(cat "$T/migrate.out")"; exit 1; }

"$BK" devbroker --partitions 4 --bootstrap-file "$T/boot" >"$T/broker.out" 2>"$T/broker.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$T/boot" ] && break; sleep 0.1; done
[ -s "$T/boot" ] || { echo "Bail out! dev broker did not start"; exit 1; }
K=(--brokers-file "$T/boot")
G=(-X session.timeout.ms=6000 -X heartbeat.interval.ms=500)

"$BK" keygen --key-id up --roles buyer,provider,support,system --out "$T/up" >"$T/keyring" 2>/dev/null
"$BK" keygen --key-id proc-1 --roles system --types seal --out "$T/proc" >"$T/writers" 2>/dev/null
# the attacker's own key pair; it will claim the id proc-1 on its seal
"$BK" keygen --key-id mallory --roles system --types seal --out "$T/mallory" >/dev/null 2>&1
export BOOKING_WRITER_KEY="$T/proc.sk" BOOKING_WRITER_KEY_ID=proc-1 BOOKING_WRITER_KEYRING="$T/writers"

start_proc() {
	"$PROC" "${K[@]}" --keyring "$T/keyring" --sweep-interval-ms 0 "${G[@]}" \
		>>"$T/proc.log" 2>&1 &
	PROC_PID=$!
	pids+=($PROC_PID)
	local i
	for i in $(seq 300); do
		[ "$(grep -c 'msg="restore finished"' "$T/proc.log")" -ge "$1" ] && return 0
		sleep 0.1
	done
	return 1
}
send() { # send FILE: results as JSON lines on stdout
	"$BK" send "${K[@]}" --key "$T/up.sk" --key-id up --wait --sequential --timeout-ms 30000 "$1"
}

check "processor restored its partitions" start_proc 1
"$PROJ" "${K[@]}" -d "dbname=$DB" --batch-ms 50 "${G[@]}" >"$T/proj.log" 2>&1 &
pids+=($!)

ORD=ord_rta_1
send "$SRC/fixtures/rtb_accept.jsonl" >"$T/sent.1" 2>"$T/send.1.err"
check "the order reached confirmed (5 results)" test "$(wc -l <"$T/sent.1")" -eq 5
HEAD=$(tail -n 1 "$T/sent.1" | jq -r .version)
check "the real head is known ($HEAD)" test "${HEAD:-0}" -gt 3

plant() { # plant MODE [ARGS]: prints offset=... seq=...
	"$ATT" "${K[@]}" --order "$ORD" --mode "$@" 2>>"$T/attacker.err"
}
F1=$(plant forge)
F2=$(plant forge-seal --key "$T/mallory.sk" --key-id proc-1)
F3=$(plant tamper)
F4=$(plant ahead)
F5=$(plant result)
echo "# planted: forge $F1 | forge-seal $F2 | tamper $F3 | ahead $F4 | result $F5"
check "the attacker planted five records" test -n "$F1" -a -n "$F2" -a -n "$F3" -a -n "$F4" -a -n "$F5"

# the processor restores from the log with the planted records on it
kill -TERM "$PROC_PID"
wait "$PROC_PID" 2>/dev/null
check "the processor restarted and restored" start_proc 2
grep 'msg="restore finished"' "$T/proc.log" | tail -n 1 | sed 's/^/# /'
check "its restore counted the unsealed records and the bad seal" \
	grep -Eq 'msg="restore finished".* bad_seals=1 unsealed_records=[34] ' "$T/proc.log"

cat >"$T/note.jsonl" <<EOF
{"id":"cmd_att_note","type":"note.add","order_id":"$ORD","actor":{"user_id":"usr_buyer_ben","role":"buyer"},"at":"2026-11-02T13:00:00Z","payload":{"text":"the real note"}}
EOF
send "$T/note.jsonl" >"$T/sent.2" 2>"$T/send.2.err"
check "the forged result with a high src-offset did not move the resume point (note answered)" \
	test "$(jq -r .command_id "$T/sent.2")" = cmd_att_note
check "a real command after the attacks is accepted at the real head + 1" \
	test "$(jq -r '"\(.status) \(.version)"' "$T/sent.2")" = "accepted $((HEAD + 1))"

# verify names each planted record, and the real chain has no other problem
"$BK" verify "${K[@]}" >"$T/verify.out" 2>"$T/verify.err"
rc=$?
sed 's/^/# /' "$T/verify.out"
check "verify exits 1" test "$rc" -eq 1
check "verify: the forged events linked to the real head are unsealed" \
	test "$(grep -c "^unsealed: .*order_id=$ORD seq=$((HEAD + 1)) " "$T/verify.out")" -eq 2
check "verify: the chain at head + 3 is unsealed" \
	grep -q "^unsealed: .*order_id=$ORD seq=$((HEAD + 3)) " "$T/verify.out"
check "verify: the four planted records are unsealed" \
	test "$(grep -c "^unsealed: .*order_id=$ORD " "$T/verify.out")" -eq 4
check "verify: the attacker's seal is garbage (bad signature)" \
	grep -q "^garbage: .*bad signature" "$T/verify.out"
check "verify: nothing else (5 problems)" grep -q "problems=5$" "$T/verify.out"
check "verify: the forged result is not counted (unsealed), no contradiction" \
	grep -q "^verify: results: answered=6 same_answer_again=0 unsealed=1 " "$T/verify.out"

# the projector: every planted record rejected alone, the real note projected
ok_proj=0
for _ in $(seq 150); do
	got=$(psql -X -A -t -d "$DB" -c "select count(*) from ord.timeline_event where order_id = '$ORD' and seq = $((HEAD + 1)) and command_id = 'cmd_att_note'" 2>/dev/null)
	[ "$got" = 1 ] && ok_proj=1 && break
	sleep 0.2
done
check "the projector applied the real note at seq $((HEAD + 1))" test "$ok_proj" = 1
check "no forged event in ord.timeline_event" \
	test "$(psql -X -A -t -d "$DB" -c "select count(*) from ord.timeline_event where command_id = 'cmd_forged'")" = 0
check "booking_proj.rejected holds the 4 planted records, all unsealed" \
	test "$(psql -X -A -t -d "$DB" -c "select count(*) || ' ' || string_agg(distinct verdict, ',') from booking_proj.rejected where order_id = '$ORD'")" = "4 unsealed"
check "nothing quarantined" \
	test "$(psql -X -A -t -d "$DB" -c "select count(*) from booking_proj.quarantine")" = 0
check "the projector logged the bad seal" grep -q 'msg="seal record rejected"' "$T/proj.log"

# rebuild reads the same log with the same rule: the same read model, the same rejections
rejected() { psql -X -A -t -d "$DB" -c "select topic, partition, record_offset, coalesce(seq, -1), verdict from booking_proj.rejected order by 1, 2, 3, 4"; }
pj_dump "$DB" >"$T/dump.live"
rejected >"$T/rejected.live"
BOOKING_MIGRATIONS=$SRC/migrations "$BK" rebuild "${K[@]}" -d "dbname=$DB" >"$T/rebuild.log" 2>&1
check "bookingctl rebuild of the attacked log exits 0" grep -q 'msg="rebuild done"' "$T/rebuild.log"
check "the rebuilt read model equals the live projector's" diff -u "$T/dump.live" <(pj_dump "$DB")
check "rebuild rejects the same records with the same verdicts" diff -u "$T/rejected.live" <(rejected)
check "... the 4 planted events records among them" test "$(grep -c unsealed "$T/rejected.live")" -eq 4

# replay reads the same log with the same rule: sealed events out, planted records reported
"$BK" replay "${K[@]}" --order "$ORD" >"$T/replay.jsonl" 2>"$T/replay.err"
rc=$?
check "replay with the writer keyring exits 0" test "$rc" -eq 0
check "replay prints no forged event" test "$(grep -c cmd_forged "$T/replay.jsonl")" -eq 0
check "replay prints the real chain, seq 1..$((HEAD + 1)) once each" \
	test "$(jq -r .seq "$T/replay.jsonl" | tr '\n' ' ')" = "$(seq -s ' ' 1 $((HEAD + 1))) "
check "replay reports the 4 planted events records as unsealed (partition, offset, order, seq)" \
	test "$(grep -Ec "msg=\"record rejected\" topic=booking.events partition=[0-9]+ offset=[0-9]+ order_id=$ORD seq=[0-9]+ verdict=unsealed " "$T/replay.err")" -eq 4
check "... and the attacker's seal as garbage (bad signature)" \
	grep -q 'msg="record rejected" .*verdict=garbage reason=".*bad signature' "$T/replay.err"
check "... and counts them in its summary" \
	grep -q 'msg="replay done" .* seals=checked .* rejected=4 .* bad_seals=1 ' "$T/replay.err"
"$BK" replay "${K[@]}" --order "$ORD" --include-rejected >"$T/replay.all.jsonl" 2>/dev/null
check "--include-rejected adds the planted events marked \"rejected\":\"unsealed\", the rest unchanged" \
	test "$(jq -c 'select(.rejected == null)' "$T/replay.all.jsonl")" = "$(jq -c . "$T/replay.jsonl")" -a \
	"$(jq -r 'select(.rejected != null) | .rejected' "$T/replay.all.jsonl" | sort -u)" = unsealed
"$BK" replay "${K[@]}" --order "$ORD" --trust-unsealed >"$T/replay.trust.jsonl" 2>"$T/replay.trust.err"
check "--trust-unsealed prints the forged events too, and says so loudly" \
	test "$(grep -c cmd_forged "$T/replay.trust.jsonl")" -ge 1 -a "$(grep -c 'NOT checked' "$T/replay.trust.err")" -eq 1
BOOKING_WRITER_KEYRING= "$BK" replay "${K[@]}" >/dev/null 2>"$T/replay.nokr.err"
check "replay without a writer keyring and without --trust-unsealed: exit 2 with a message" \
	test $? -eq 2 -a "$(grep -c 'no writer keyring.*--trust-unsealed' "$T/replay.nokr.err")" -eq 1

# the whole log as a replay file, rebuilt with the file's seals checked again: the same
# read model and the same rejections as the Kafka rebuild
"$BK" replay "${K[@]}" --format msgpack -o "$T/log.mp" 2>"$T/replay.mp.err"
check "replay --format msgpack reports the same rejections" \
	grep -q 'msg="replay done" .* rejected=4 .* bad_seals=1 ' "$T/replay.mp.err"
BOOKING_MIGRATIONS=$SRC/migrations "$BK" rebuild -d "dbname=$DB" --from-file "$T/log.mp" >"$T/rebuild.file.log" 2>&1
check "rebuild --from-file (writer keyring) of the attacked log exits 0" grep -q 'msg="rebuild done"' "$T/rebuild.file.log"
check "its read model equals the Kafka rebuild's" diff -u "$T/dump.live" <(pj_dump "$DB")
check "it rejects the same records with the same verdicts" diff -u "$T/rejected.live" <(rejected)

# an insider with the writer's key seals a tampered copy of the last record (at the end:
# it would change what the readers above see): replay rejects its event, bad_hash
F6=$(plant tamper-seal --key "$T/proc.sk" --key-id proc-1)
"$BK" replay "${K[@]}" --order "$ORD" >"$T/replay.6.jsonl" 2>"$T/replay.6.err"
check "replay rejects a sealed record whose event's hash does not match ($F6): reported, not printed" \
	test "$(grep -c "msg=\"record rejected\" .* order_id=$ORD seq=$(echo "$F6" | sed -n 's/.*seq=\([0-9]*\).*/\1/p') verdict=bad_hash " "$T/replay.6.err")" -eq 1 -a \
	"$(jq -c . "$T/replay.6.jsonl")" = "$(jq -c . "$T/replay.jsonl")"

echo "1..$n"
[ "$failed" -eq 0 ]
