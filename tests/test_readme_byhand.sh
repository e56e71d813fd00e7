#!/usr/bin/env bash
# tests/test_readme_byhand.sh - README.md's "Run it by hand" block, run literally (TAP): the
# shell code between the by-hand markers, in a fresh directory that links the source's
# build, migrations, fixtures, tests and examples. Then: every step succeeded, the dev
# broker answered on its control socket, the Python client's orders got their expected
# answers, the projector caught up and PostgreSQL holds the orders.
# usage: test_readme_byhand.sh SRCDIR BUILDDIR
set -uo pipefail

SRC=$1 BUILD=$2
W=$(mktemp -d /tmp/bk-test-byhand.XXXXXX)
chmod 755 "$W" # PostgreSQL runs as user postgres when we are root
n=0
fails=0
cleanup() {
	if [ -s "$W/.run/pids" ]; then
		# shellcheck disable=SC2046
		kill $(cat "$W/.run/pids") 2>/dev/null
		sleep 0.5
	fi
	(cd "$W" && . "$SRC/tests/harness.sh" && pg_stop .run/pg) >/dev/null 2>&1
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

awk '/^<!-- by-hand:begin -->$/ { on = 1; next } /^<!-- by-hand:end -->$/ { on = 0 }
	on && !/^```/ { print }' "$SRC/README.md" >"$W/byhand.sh"
check "README.md has the by-hand block ($(grep -c . "$W/byhand.sh") lines)" \
	test "$(grep -c . "$W/byhand.sh")" -ge 15
for d in migrations fixtures tests examples; do ln -s "$SRC/$d" "$W/$d"; done
ln -s "$(cd "$BUILD" && pwd)" "$W/build"

(cd "$W" && timeout 240 bash -e byhand.sh) >"$W/out" 2>"$W/err"
rc=$?
check "the block runs to its end (exit $rc)" test "$rc" -eq 0
if [ "$rc" -ne 0 ]; then tail -n 15 "$W/err" | sed 's/^/# /'; fi
check "the dev broker answers on its control socket (devbroker ctl ping)" grep -qx 'ok pong' "$W/out"
check "the bootstrap file carries the consumers' group timeouts" \
	grep -qx 'consumer session.timeout.ms=6000' "$W/.run/boot"
answered=$(grep -c '"ok": true' "$W/out")
check "the Python client's 22 commands got their expected answers ($answered)" test "$answered" -eq 22
check "no unexpected answer" test "$(grep -c '"ok": false' "$W/out")" -eq 0
check "the projector caught up and PostgreSQL holds the RTB order, completed" \
	grep -Eq 'ord_py_rtb_[0-9a-f]+ +\| +RTB +\| +completed' "$W/out"
check "and the IB order, confirmed" grep -Eq 'ord_py_ib_[0-9a-f]+ +\| +IB +\| +confirmed' "$W/out"
echo "1..$n"
[ "$fails" -eq 0 ]
