#!/usr/bin/env bash
# tests/test_gen.sh - `bookingctl gen` end to end: same seed same bytes, another seed other
# bytes, -o equals stdout, every JSON line and msgpack map decodes as a command, a
# --with-expect stream of 2000 orders gets exactly its planned outcomes from the engine
# (test_gen --run-jsonl), bad usage exits 2. Usage: test_gen.sh BOOKINGCTL TEST_GEN (TAP)
set -uo pipefail

BK=${1:?usage: test_gen.sh BOOKINGCTL TEST_GEN}
TG=${2:?usage: test_gen.sh BOOKINGCTL TEST_GEN}

T=$(mktemp -d /tmp/bk-test-gen.XXXXXX)
trap 'rm -rf "$T"' EXIT

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
	for f in "$T/out" "$T/err"; do
		[ -s "$f" ] && head -n 10 "$f" | cut -c1-300 | sed "s|^|#   $(basename "$f"): |"
	done
	return 0
}
check() { # check DESCRIPTION COMMAND...: ok when COMMAND succeeds
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}
gen() { # gen ARGS...: bookingctl gen ARGS, stdout in $T/out, stderr in $T/err, status in $rc
	"$BK" gen "$@" >"$T/out" 2>"$T/err"
	rc=$?
}

# --- determinism ---------------------------------------------------------------------
gen --orders 300 --seed 5 && cp "$T/out" "$T/a.jsonl"
check "json: exit 0" test "$rc" = 0
check "json: output is not empty" test -s "$T/a.jsonl"
gen --orders 300 --seed 5 && cp "$T/out" "$T/b.jsonl"
check "json: same seed, byte-identical output" cmp -s "$T/a.jsonl" "$T/b.jsonl"
gen --orders 300 --seed 6 && cp "$T/out" "$T/c.jsonl"
check "json: another seed, other output" test "$rc" = 0 -a -s "$T/c.jsonl"
check "json: another seed, other output (differs)" bash -c "! cmp -s '$T/a.jsonl' '$T/c.jsonl'"
gen --orders 300 --seed 5 -o "$T/o.jsonl"
check "-o FILE: exit 0, nothing on stdout" test "$rc" = 0 -a ! -s "$T/out"
check "-o FILE: the same bytes as stdout" cmp -s "$T/a.jsonl" "$T/o.jsonl"
check "a summary line on stderr" grep -q 'msg="gen done" orders=300 seed=5' "$T/err"
gen --orders 300 --seed 5 --format msgpack && cp "$T/out" "$T/a.mp"
gen --orders 300 --seed 5 --format msgpack && cp "$T/out" "$T/b.mp"
check "msgpack: same seed, byte-identical output" cmp -s "$T/a.mp" "$T/b.mp"

# --- every command decodes -----------------------------------------------------------
lines=$(wc -l <"$T/a.jsonl")
maps=$("$TG" --count-msgpack "$T/a.mp" 2>"$T/err")
check "msgpack: every map decodes as a command" test "$?" = 0
check "msgpack: as many commands as JSON lines ($maps, $lines)" test "$maps" = "$lines"
check "json: one JSON object per line" bash -c "! grep -qv '^{\"id\":\"cmd_.*}\$' '$T/a.jsonl'"

# --- a stream of 2000 orders through the engine -------------------------------------
gen --orders 2000 --seed 11 --with-expect && cp "$T/out" "$T/x.jsonl"
check "--with-expect: exit 0" test "$rc" = 0
check "--with-expect: lines carry an expect object" grep -q '"expect":{"status":"rejected","code":"forbidden"}}$' "$T/x.jsonl"
"$TG" --run-jsonl "$T/x.jsonl" >"$T/out" 2>"$T/err"
check "2000 orders: every command decodes and gets its planned outcome and code" test "$?" = 0
gen --orders 2000 --seed 11 && cp "$T/out" "$T/y.jsonl"
sed 's/,"expect":{[^}]*}}$/}/' "$T/x.jsonl" >"$T/x-stripped.jsonl"
check "without --with-expect: the same lines without expect" cmp -s "$T/x-stripped.jsonl" "$T/y.jsonl"
gen --orders 500 --seed 3 --window 7 --duplicates 300 --wrong-actor 200 --stale 200 \
	--start 2027-05-04T13:14:15Z --with-expect && cp "$T/out" "$T/k.jsonl"
check "knobs and --start: exit 0" test "$rc" = 0
head -n 1 "$T/k.jsonl" >"$T/first.jsonl"
check "--start: the first command is at the start" grep -q '"at":"2027-05-04T13:14:15.000000Z"' "$T/first.jsonl"
"$TG" --run-jsonl "$T/k.jsonl" >"$T/out" 2>"$T/err"
check "knobs: every command gets its planned outcome and code" test "$?" = 0

# --- usage -----------------------------------------------------------------------------
gen --help
check "--help: exit 0 with the usage on stdout" test "$rc" = 0 -a -s "$T/out"
check "--help: documents the msgpack framing" grep -q 'back to back' "$T/out"
bad() { # bad DESCRIPTION ARGS...: exit 2, a message naming the problem, nothing on stdout
	local what=$1
	shift
	gen "$@"
	if [ "$rc" = 2 ] && grep -q '^bookingctl gen: ' "$T/err" && [ ! -s "$T/out" ]; then
		ok "bad usage: $what (exit 2)"
	else
		not_ok "bad usage: $what (exit 2, got $rc)"
	fi
}
bad "--orders 0" --orders 0
bad "--orders abc" --orders abc
bad "--orders -5" --orders -5
bad "--orders too many" --orders 50000001
bad "--seed without a value" --seed
bad "--seed past 2^64" --seed 18446744073709551616
bad "--window 0" --window 0
bad "--window 65537" --window 65537
bad "--duplicates 1001" --duplicates 1001
bad "--format xml" --format xml
bad "--with-expect with msgpack" --with-expect --format msgpack
bad "--start not a time" --start yesterday
bad "unknown argument" --frobnicate
bad "-o into a missing directory" -o "$T/no/such/dir/out"

echo "1..$n"
[ "$failed" = 0 ]
