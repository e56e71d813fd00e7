#!/usr/bin/env bash
# tests/test_python.sh - the Python reference client (examples/python/) against the dev
# broker and a running booking-commands (TAP): the client reproduces every wire test
# vector (encoding, key file, signatures, partitions), then drives an RTB order, an IB
# order under an auto-accept rule and a card flow, a duplicate and a forged signature,
# and gets each expected answer, matched by (partition, offset) or by command id; the
# log it leaves verifies.
# usage: test_python.sh BOOKINGCTL BOOKING_COMMANDS SRCDIR
# Needs Debian's python3-confluent-kafka, python3-nacl, python3-msgpack (scripts/setup.sh).
set -uo pipefail

BCTL=$1 PROC=$2 SRC=$3
PY=/usr/bin/python3
W=$(mktemp -d /tmp/bk-test-python.XXXXXX)
pids=()
n=0
fails=0
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	if [ "$fails" -eq 0 ] && [ -z "${BK_KEEP:-}" ]; then rm -rf "$W"; else echo "# work directory kept: $W"; fi
}
trap cleanup EXIT
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $*"; }
check() { # check DESCRIPTION COMMAND...
	local d=$1
	shift
	if "$@"; then ok "$d"; else not_ok "$d"; fi
}
finish() { echo "1..$n"; [ "$fails" -eq 0 ]; exit $?; }

if ! "$PY" -c 'import confluent_kafka, nacl.signing, msgpack' 2>"$W/import.err"; then
	not_ok "python3-confluent-kafka, python3-nacl and python3-msgpack importable ($(tail -n1 "$W/import.err"); scripts/setup.sh installs them)"
	finish
fi

# 1. the client's encoding, key loading, signatures and partitioner against the vectors
"$PY" "$SRC/examples/python/check_vectors.py" "$SRC/fixtures/wire" >"$W/vectors.tap"
rc=$?
nv=$(grep -c '^ok' "$W/vectors.tap")
check "the Python client reproduces the wire vectors ($nv checks, exit $rc)" \
	test "$rc" -eq 0 -a "$nv" -ge 50
grep '^not ok' "$W/vectors.tap" | sed 's/^/# /'

# 2. whole orders through the dev broker and a processor
"$BCTL" devbroker --partitions 4 --bootstrap-file "$W/boot" >/dev/null 2>"$W/devbroker.log" &
pids+=($!)
for _ in $(seq 300); do [ -s "$W/boot" ] && break; sleep 0.1; done
check "dev broker started" test -s "$W/boot" || finish
"$BCTL" keygen --key-id py-test --roles buyer,provider,support,system --out "$W/py" \
	>"$W/keyring" 2>/dev/null
"$BCTL" keygen --key-id py-writer --roles system --types seal --out "$W/writer" \
	>"$W/writers" 2>/dev/null
export BOOKING_WRITER_KEY="$W/writer.sk" BOOKING_WRITER_KEY_ID=py-writer \
	BOOKING_WRITER_KEYRING="$W/writers"
"$PROC" --brokers-file "$W/boot" --keyring "$W/keyring" --archive-after 0 --group-id g-python \
	-X session.timeout.ms=6000 -X heartbeat.interval.ms=500 2>"$W/proc.log" &
pids+=($!)
for _ in $(seq 300); do grep -q 'msg="restore finished"' "$W/proc.log" && break; sleep 0.1; done
check "booking-commands restored and running" grep -q 'msg="restore finished"' "$W/proc.log" ||
	finish

t0=$(date +%s.%N)
"$PY" "$SRC/examples/python/drive_orders.py" --brokers-file "$W/boot" --key "$W/py.sk" \
	--key-id py-test --timeout 20 >"$W/drive.out" 2>"$W/drive.err"
rc=$?
t1=$(date +%s.%N)
check "drive_orders.py exits 0 (took $(echo "$t1 - $t0" | bc -l | cut -c1-4) s)" test "$rc" -eq 0
sed 's/^/# /' "$W/drive.err" | tail -n 5
steps=$(grep -c '"step"' "$W/drive.out")
check "22 commands answered ($steps)" test "$steps" -eq 22
while IFS= read -r line; do
	name=$(echo "$line" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(d.get("step", d.get("error")))')
	got=$(echo "$line" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(d.get("status"), d.get("code") or d.get("reason") or "")')
	if echo "$line" | grep -q '"ok": true'; then ok "$name: $got"; else not_ok "$name: $got"; fi
done <"$W/drive.out"
check "the forged command's DLQ record carries its command id" \
	grep -q '"step": "forged signature (found by command id)", "ok": true' "$W/drive.out"
check "the IB submit was accepted by the rule (order accepted at once)" \
	grep -q '"step": "ib submit (the rule accepts)", "ok": true' "$W/drive.out"

# 3. replay for analysts: every timestamp in one form, the append time beside business time
"$BCTL" replay --brokers-file "$W/boot" >"$W/replay.jsonl" 2>"$W/replay.err"
check "bookingctl replay prints the client's events ($(grep -c . "$W/replay.jsonl") lines)" \
	test "$(grep -c . "$W/replay.jsonl")" -ge 20
"$PY" - "$W/replay.jsonl" >"$W/replay.check" 2>&1 <<'PYEOF'
import json, re, sys
ts = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
bad = []
def walk(v, key=""):
    if isinstance(v, dict):
        for k, x in v.items():
            walk(x, k)
    elif isinstance(v, list):
        for x in v:
            walk(x, key)
    elif isinstance(v, str) and (key == "at" or key.endswith(("_at", "_ts"))):
        if not ts.match(v):
            bad.append((key, v))
n = 0
for line in open(sys.argv[1]):
    e = json.loads(line)
    n += 1
    if "appended_at" not in e or not ts.match(e["appended_at"] or ""):
        bad.append(("appended_at", e.get("appended_at")))
    walk(e)
print("events=%d bad=%s" % (n, bad[:5]))
sys.exit(1 if bad or n == 0 else 0)
PYEOF
check "replay: appended_at on every event, every timestamp RFC 3339 UTC with 6 digits ($(cat "$W/replay.check"))" \
	test $? -eq 0

# 4. what the client left verifies
"$BCTL" verify --brokers-file "$W/boot" >"$W/verify.out" 2>&1
check "bookingctl verify: the log the client wrote is sound (exit $?)" test $? -eq 0
finish
