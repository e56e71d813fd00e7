#!/usr/bin/env bash
# test_log_cli.sh - `bookingctl replay` and `bookingctl verify` on real data in the dev
# broker: every fixture's events produced by tests/loggen (as the processor would), then
# each filter must select exactly the right events, verify must pass the clean log and
# catch a tampered payload, a missing seq, a fork and an illegal transition (each planted
# in its own topic), and bad arguments must fail with exit 2. TAP output.
#   test_log_cli.sh BOOKINGCTL LOGGEN SRCDIR
set -u
BK=$1 LOGGEN=$2 SRC=$3
T=$(mktemp -d)
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else not_ok "$what"; fi; }
cleanup() { [ -n "${BROKER_PID:-}" ] && kill "$BROKER_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT

PLANTS="tamper gap fork illegal duplicate garbage"
extra="v1.booking.events:4,"
for p in $PLANTS; do extra+="$p.booking.events:4,"; done
# the tamper log also gets the other topics: bookingctl seal reads them too
extra+="tamper.booking.command-results:4,tamper.booking.rules:4,"
"$BK" devbroker --partitions 4 --bootstrap-file "$T/bootstrap" --topics "${extra%,}" \
	>"$T/broker.out" 2>"$T/broker.log" &
BROKER_PID=$!
for _ in $(seq 100); do [ -s "$T/bootstrap" ] && break; sleep 0.1; done
check "dev broker is up" test -s "$T/bootstrap"
K=(--brokers-file "$T/bootstrap")

"$LOGGEN" "${K[@]}" --topic booking.events "$SRC"/fixtures/*.jsonl >/dev/null 2>"$T/loggen.log"
check "loggen produced the fixtures' events" test $? -eq 0

# verify: the clean log is sound
"$BK" verify "${K[@]}" --unsealed-ok >"$T/verify.out" 2>/dev/null
rc=$?
check "verify passes the clean log (exit 0)" test $rc -eq 0
total=$(sed -n 's/.* events=\([0-9]*\) .*/\1/p' "$T/verify.out")
check "verify counted the events ($total)" test "${total:-0}" -gt 100

# replay: everything, then each filter
"$BK" replay "${K[@]}" --trust-unsealed >"$T/all.jsonl" 2>/dev/null
check "replay prints every event once" test "$(wc -l <"$T/all.jsonl")" -eq "$total"
check "every line has partition, offset, seq, subtype, hash" \
	test "$(jq -c 'select(.partition>=0 and .offset>=0 and .seq>=1 and (.subtype|length)>0 and (.hash|length)==64)' "$T/all.jsonl" | wc -l)" -eq "$total"

"$BK" replay "${K[@]}" --trust-unsealed --order ord_ibh_1 >"$T/order.jsonl" 2>/dev/null
want=$(jq -c 'select(.order_id=="ord_ibh_1")' "$T/all.jsonl" | wc -l)
check "--order selects exactly that order's events ($want)" \
	test "$(wc -l <"$T/order.jsonl")" -eq "$want" -a "$(jq -r .order_id "$T/order.jsonl" | sort -u)" = ord_ibh_1
check "--order gives seq 1..n in order" test "$(jq -r .seq "$T/order.jsonl" | tr '\n' ' ')" = "$(seq -s ' ' 1 "$want") "

"$BK" replay "${K[@]}" --trust-unsealed --type 'card.*' >"$T/cards.jsonl" 2>/dev/null
want=$(jq -c 'select(.subtype|startswith("card."))' "$T/all.jsonl" | wc -l)
check "--type 'card.*' selects exactly the card events ($want)" \
	test "$(wc -l <"$T/cards.jsonl")" -eq "$want" -a "$want" -gt 0 -a \
	"$(jq -c 'select(.subtype|startswith("card.")|not)' "$T/cards.jsonl" | wc -l)" -eq 0

"$BK" replay "${K[@]}" --trust-unsealed --since 2026-11-03T00:00:00Z --until 2026-11-20T00:00:00Z >"$T/time.jsonl" 2>/dev/null
want=$(jq -c 'select(.created_at >= "2026-11-03T00:00:00Z" and .created_at < "2026-11-20T00:00:00Z")' "$T/all.jsonl" | wc -l)
check "--since/--until select exactly the events in the range ($want)" \
	test "$(wc -l <"$T/time.jsonl")" -eq "$want" -a "$want" -gt 0

"$BK" replay "${K[@]}" --trust-unsealed --partition 1 --from-offset 2 --to-offset 6 >"$T/range.jsonl" 2>/dev/null
want=$(jq -c 'select(.partition==1 and .offset>=2 and .offset<6)' "$T/all.jsonl" | wc -l)
check "--partition/--from-offset/--to-offset select exactly that range ($want)" \
	test "$(wc -l <"$T/range.jsonl")" -eq "$want" -a "$want" -gt 0

"$BK" replay "${K[@]}" --trust-unsealed --format msgpack -o "$T/log.msgpack" 2>/dev/null
check "--format msgpack writes the records" test -s "$T/log.msgpack"

# threads: the writer formats batches on a pool; the output must not depend on it
"$BK" replay "${K[@]}" --trust-unsealed --threads 1 >"$T/t1.jsonl" 2>/dev/null
"$BK" replay "${K[@]}" --trust-unsealed --threads 3 >"$T/t3.jsonl" 2>/dev/null
check "--threads 1 and --threads 3 give the same events as the default" \
	test "$(sort "$T/t1.jsonl" | md5sum)" = "$(sort "$T/all.jsonl" | md5sum)" -a \
	"$(sort "$T/t3.jsonl" | md5sum)" = "$(sort "$T/all.jsonl" | md5sum)"
"$BK" replay "${K[@]}" --trust-unsealed --partition 2 --threads 1 >"$T/p2t1.jsonl" 2>/dev/null
"$BK" replay "${K[@]}" --trust-unsealed --partition 2 --threads 4 >"$T/p2t4.jsonl" 2>/dev/null
same_bytes() { test -s "$1" && cmp -s "$1" "$2"; }
check "one partition: --threads 1 and 4 write the same bytes" \
	same_bytes "$T/p2t1.jsonl" "$T/p2t4.jsonl"
check "one partition: offsets never go back" \
	test "$(jq -r .offset "$T/p2t4.jsonl" | sort -n -c 2>&1 | wc -l)" -eq 0
"$BK" replay "${K[@]}" --trust-unsealed --partition 2 --format msgpack --threads 1 -o "$T/p2t1.msgpack" 2>/dev/null
"$BK" replay "${K[@]}" --trust-unsealed --partition 2 --format msgpack --threads 4 -o "$T/p2t4.msgpack" 2>/dev/null
check "one partition, msgpack: --threads 1 and 4 write the same bytes" \
	same_bytes "$T/p2t1.msgpack" "$T/p2t4.msgpack"

# --follow: what is written shows up while replay keeps running, and SIGTERM ends it
want0=$(jq -c 'select(.partition==0)' "$T/all.jsonl" | wc -l)
"$BK" replay "${K[@]}" --trust-unsealed --partition 0 --follow -o "$T/follow.jsonl" 2>"$T/follow.log" &
fpid=$!
for _ in $(seq 100); do [ "$(wc -l <"$T/follow.jsonl" 2>/dev/null || echo 0)" -ge "$want0" ] && break; sleep 0.1; done
check "--follow writes the partition's $want0 events while it runs" \
	test "$(wc -l <"$T/follow.jsonl")" -eq "$want0" -a "$want0" -gt 0
check "--follow is still running" kill -0 "$fpid"
kill -TERM "$fpid"
wait "$fpid"
check "--follow exits 0 on SIGTERM" test $? -eq 0

"$BK" verify "${K[@]}" --unsealed-ok --order ord_rtc_1 >"$T/v1.out" 2>/dev/null
check "verify --order checks one order" grep -q "verify: ok: .* orders=1 " "$T/v1.out"

# planted defects, each in its own topic
for p in $PLANTS; do
	order=$("$LOGGEN" "${K[@]}" --topic "$p.booking.events" --plant "$p" \
		"$SRC"/fixtures/rtb_counter_accepted.jsonl "$SRC"/fixtures/card_extras.jsonl 2>>"$T/loggen.log")
	"$BK" verify "${K[@]}" --unsealed-ok --topic-prefix "$p." >"$T/$p.out" 2>/dev/null
	rc=$?
	case $p in
	tamper) what="bad_hash" ;;
	gap) what="bad_link" ;;
	fork) what="fork" ;;
	illegal) what="illegal transition" ;;
	garbage) what="garbage" ;;
	esac
	if [ "$p" = duplicate ]; then
		check "verify accepts a duplicate record (exit 0, skipped once)" \
			grep -q "verify: ok: .* duplicates_skipped=[1-9]" "$T/$p.out"
	else
		check "verify catches a planted $p (exit 1, '$what' on order $order)" \
			test $rc -eq 1 -a "$(grep -c "^$what: .*order_id=$order" "$T/$p.out")" -ge 1
	fi
done

# replay goes past a record that is no events record: a warning, counted, every other
# event still out (the same fixtures without it: the tamper topic has every event)
"$BK" replay "${K[@]}" --trust-unsealed --topic-prefix garbage. >"$T/garbage.jsonl" 2>"$T/garbage.log"
rc=$?
"$BK" replay "${K[@]}" --trust-unsealed --topic-prefix tamper. >"$T/tamper.jsonl" 2>/dev/null
check "replay skips an undecodable record with a warning and goes on (exit 0)" \
	test $rc -eq 0 -a "$(grep -c 'undecodable record skipped' "$T/garbage.log")" -eq 1
check "replay counts it (undecodable=1) and prints every other event" \
	test "$(grep -c 'replay done.* undecodable=1 ' "$T/garbage.log")" -eq 1 -a \
	"$(wc -l <"$T/garbage.jsonl")" -eq "$(wc -l <"$T/tamper.jsonl")" -a -s "$T/garbage.jsonl"

# bookingctl seal: the one-time migration of a log written before seals (loggen writes
# no seals, as the processor did before them)
"$BK" keygen --key-id w1 --roles system --types seal --out "$T/w1" >"$T/writers" 2>/dev/null
W=(--writer-key "$T/w1.sk" --writer-key-id w1 --writer-keyring "$T/writers")
"$BK" verify "${K[@]}" --writer-keyring "$T/writers" --await-seal-ms 0 >"$T/pre.out" 2>/dev/null
check "before sealing, verify with the writer keyring finds every record unsealed (exit 1)" \
	test $? -eq 1 -a "$(grep -c '^unsealed: ' "$T/pre.out")" -eq "${total:-0}"
"$BK" verify "${K[@]}" --writer-keyring "$T/writers" >"$T/young.out" 2>/dev/null
check "... records younger than --await-seal-ms (60 s) are awaiting a seal, not problems (exit 0)" \
	test $? -eq 0 -a "$(grep -c '^awaiting seal: ' "$T/young.out")" -eq "${total:-0}"
"$BK" keygen --key-id w2 --roles system --types seal --out "$T/w2" >"$T/other" 2>/dev/null
"$BK" seal "${K[@]}" >/dev/null 2>"$T/err"
check "seal without a writer key: exit 2 with a message" test $? -eq 2 -a -s "$T/err"
"$BK" seal "${K[@]}" --topic-prefix tamper. "${W[@]}" >"$T/seal.tamper" 2>&1
check "seal refuses a log with a problem (exit 1), writes nothing" \
	test $? -eq 1 -a "$(grep -c 'nothing written' "$T/seal.tamper")" -eq 1
"$BK" verify "${K[@]}" --topic-prefix tamper. --writer-keyring "$T/writers" >"$T/tamper.v" 2>/dev/null
check "... the refused log has no seal" grep -q ' seals=0 ' "$T/tamper.v"
"$BK" seal "${K[@]}" "${W[@]}" --dry-run >"$T/seal.dry" 2>&1
check "seal --dry-run checks and counts (exit 0)" grep -q "problems=0 .*(dry run)" "$T/seal.dry"
"$BK" seal "${K[@]}" "${W[@]}" >"$T/seal.out" 2>&1
check "seal seals the clean log (exit 0)" test $? -eq 0 -a "$(grep -c '^seal: sealed ' "$T/seal.out")" -eq 1
"$BK" verify "${K[@]}" --writer-keyring "$T/writers" >"$T/post.out" 2>/dev/null
check "after sealing, verify with the writer keyring passes (exit 0, every event)" \
	test $? -eq 0 -a "$(sed -n 's/.* events=\([0-9]*\) .*/\1/p' "$T/post.out")" = "${total:-0}"
"$BK" replay "${K[@]}" --writer-keyring "$T/writers" >"$T/sealed.jsonl" 2>"$T/sealed.err"
check "after sealing, replay with the writer keyring prints every event, rejects nothing" \
	test "$(sort "$T/sealed.jsonl" | md5sum)" = "$(sort "$T/all.jsonl" | md5sum)" -a \
	"$(grep -c 'msg="replay done" .* seals=checked .* rejected=0 ' "$T/sealed.err")" -eq 1
"$BK" replay "${K[@]}" --writer-keyring "$T/other" >"$T/other.jsonl" 2>"$T/other.err"
check "replay with another writer keyring prints nothing, reports the records unsealed and the seal garbage" \
	test ! -s "$T/other.jsonl" -a "$(grep -c 'msg="record rejected" .* verdict=unsealed ' "$T/other.err")" -gt 0 -a \
	"$(grep -c 'msg="record rejected" .* verdict=garbage ' "$T/other.err")" -ge 1
"$BK" seal "${K[@]}" "${W[@]}" >"$T/seal.again" 2>&1
check "sealing twice is refused (exit 1)" test $? -eq 1
"$BK" verify "${K[@]}" --writer-keyring "$T/other" --await-seal-ms 0 >"$T/other.out" 2>/dev/null
check "with another writer keyring the same log is all unsealed (exit 1)" \
	test $? -eq 1 -a "$(grep -c '^unsealed: ' "$T/other.out")" -eq "${total:-0}"

# a full disk: a clear message and exit 1, not a Kafka error
if [ -w /dev/full ]; then
	"$BK" replay "${K[@]}" --trust-unsealed -o /dev/full >/dev/null 2>"$T/err"
	rc=$?
	check "replay to a full disk: exit 1, 'write failed'" \
		test $rc -eq 1 -a "$(grep -c 'replay: write failed' "$T/err")" -ge 1
fi

# bad arguments
"$BK" replay --format xml >/dev/null 2>"$T/err"
check "replay --format xml: exit 2 with a message" test $? -eq 2 -a -s "$T/err"
"$BK" replay --threads 0 >/dev/null 2>"$T/err"
check "replay --threads 0: exit 2 with a message" test $? -eq 2 -a -s "$T/err"
"$BK" replay --since yesterday >/dev/null 2>"$T/err"
check "replay --since yesterday: exit 2 with a message" test $? -eq 2 -a -s "$T/err"
"$BK" verify --bogus >/dev/null 2>"$T/err"
check "verify --bogus: exit 2 with a message" test $? -eq 2 -a -s "$T/err"
"$BK" verify >/dev/null 2>"$T/err"
check "verify without brokers: exit 2 with a message" test $? -eq 2 -a -s "$T/err"

# --- schema 1 (issue #14): the fixtures as the code before schema 2 wrote them (money
# events without currency, chains hashed over those bytes) verify, and replay prints
# them upcast: the events of today's log but for their hashes
"$LOGGEN" "${K[@]}" --topic v1.booking.events --schema1 "$SRC"/fixtures/*.jsonl >/dev/null 2>"$T/loggen.v1"
check "loggen --schema1 wrote the fixtures at schema 1" test $? -eq 0
"$BK" verify "${K[@]}" --unsealed-ok --topic-prefix v1. >"$T/v1.verify" 2>/dev/null
check "verify passes the schema-1 log (exit 0, $total events)" \
	test $? -eq 0 -a "$(sed -n 's/.* events=\([0-9]*\) .*/\1/p' "$T/v1.verify")" = "$total"
"$BK" replay "${K[@]}" --trust-unsealed --topic-prefix v1. --format msgpack -o "$T/v1.msgpack" 2>/dev/null
check "the schema-1 log holds schema-1 money events (msgpack: the stored bytes)" \
	test "$(grep -c 'payment.captured' "$T/v1.msgpack")" -gt 0
"$BK" replay "${K[@]}" --trust-unsealed --topic-prefix v1. >"$T/v1.jsonl" 2>/dev/null
money='select(.subtype|test("^(payment[.](captured|refunded)|tip[.]added|card[.](extras|expense)[.]accepted)$"))'
check "replay prints the schema-1 money events upcast: schema 2, the order's currency" \
	test "$(jq -c "$money | select(.schema == 2 and (.payload.currency|length) == 3)" "$T/v1.jsonl" | wc -l)" -eq \
	"$(jq -c "$money" "$T/all.jsonl" | wc -l)" -a "$(jq -c "$money" "$T/all.jsonl" | wc -l)" -gt 0
# the events without where they are in the log (the two logs interleave their partitions
# differently) and without their hashes, sorted
strip() { jq -c 'del(.partition, .offset, .appended_at, .hash, .prev_hash)' "$1" | sort; }
check "... and every event as today's log prints it, hashes aside" \
	test "$(strip "$T/v1.jsonl" | md5sum)" = "$(strip "$T/all.jsonl" | md5sum)"
check "... with the hashes of the stored bytes (they differ from today's)" \
	test "$(jq -r .hash "$T/v1.jsonl" | sort | md5sum)" != "$(jq -r .hash "$T/all.jsonl" | sort | md5sum)"
"$BK" replay "${K[@]}" --trust-unsealed --topic-prefix v1. --order ord_cex_1 >"$T/v1.order.jsonl" 2>/dev/null
check "replay --order upcasts too (the order's order.created is in its partition)" \
	test "$(strip "$T/v1.order.jsonl" | md5sum)" = "$(jq -c 'select(.order_id == "ord_cex_1")' "$T/all.jsonl" >"$T/cex.jsonl" && strip "$T/cex.jsonl" | md5sum)" -a \
	"$(jq -c 'select(.subtype == "card.extras.accepted") | .schema' "$T/v1.order.jsonl")" = 2
"$BK" replay "${K[@]}" --trust-unsealed --topic-prefix v1. --partition "$(jq -r 'select(.order_id == "ord_cex_1" and .subtype == "card.extras.accepted") | .partition' "$T/v1.jsonl")" \
	--from-offset "$(jq -r 'select(.order_id == "ord_cex_1" and .subtype == "card.extras.accepted") | .offset' "$T/v1.jsonl")" >"$T/v1.late.jsonl" 2>/dev/null
check "an event whose order.created replay did not read is printed as stored (schema 1)" \
	test "$(jq -c 'select(.subtype == "card.extras.accepted") | [.schema, (.payload.currency == null)]' "$T/v1.late.jsonl" | head -n 1)" = "[1,true]"

echo "1..$n"
[ "$failed" -eq 0 ]
