#!/usr/bin/env bash
# tests/test_install.sh - the installed programs (TAP): `meson install --destdir` into a
# scratch root, then from an unrelated directory the installed bookingctl finds the
# installed migrations and migrates a private PostgreSQL database; versions, man pages,
# docs; the systemd units pass `systemd-analyze verify` (a loud SKIP when it cannot run
# here).
# Usage: test_install.sh SRCDIR BUILDDIR
set -uo pipefail

SRC=${1:?usage} BUILD=${2:?usage}
# shellcheck source=tests/harness.sh
. "$SRC/tests/harness.sh"

T=$(mktemp -d /tmp/bk-test-install.XXXXXX)
chmod 755 "$T"
DB=bkt_install_$$
n=0
failed=0
started_pg=0
cleanup() {
	if [ "$started_pg" = 1 ]; then
		pg_dropdb "$DB"
		bk_pg_teardown "$T/pg"
	fi
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
	[ -s "$T/check.out" ] && tail -n 25 "$T/check.out" | sed 's/^/#   /'
}
check() { # check DESCRIPTION COMMAND...
	local d=$1
	shift
	if "$@" >"$T/check.out" 2>&1; then ok "$d"; else not_ok "$d"; fi
}
skip() {
	n=$((n + 1))
	echo "ok $n - # SKIP $1"
	echo "# ************ SKIPPED: $1 ************" >&2
}

R=$T/root
prefix=$(meson introspect --buildoptions "$BUILD" | jq -r '.[] | select(.name == "prefix") | .value')
check "meson install --destdir installs the build" \
	meson install -C "$BUILD" --no-rebuild --destdir "$R"
P=$R$prefix
ver=$(sed -n "s/^ *version : '\(.*\)',/\1/p" "$SRC/meson.build")
for prog in bookingctl booking-commands booking-projector; do
	check "installed $prog --version is $ver" \
		bash -c '[ "$("$1" --version)" = "$2 $3" ]' _ "$P/bin/$prog" "$prog" "$ver"
done
check "the migrations are installed in share/booking-log/migrations" \
	bash -c 'diff <(cd "$1/migrations" && ls) <(cd "$2/share/booking-log/migrations" && ls)' _ "$SRC" "$P"
check "the docs the programs point to are installed" \
	bash -c 'for f in operations.md commands.md projector.md rebuild.md ops/metrics.md ops/alerts.yml; do
		test -s "$1/share/doc/booking-log/$f" || { echo "missing $f"; exit 1; }; done' _ "$P"
for m in man1/bookingctl.1 man8/booking-commands.8 man8/booking-projector.8; do
	prog=$(basename "$m" | sed 's/\.[0-9]$//')
	check "man page $m is installed and names $prog" \
		bash -c 'grep -q "^\.SH NAME" "$1" && grep -A1 "^\.SH NAME" "$1" | grep -q "$2"' \
		_ "$P/share/man/$m" "$prog"
done
check "the man pages carry the options (--metrics-addr in booking-commands.8)" \
	grep -q 'metrics\\-addr' "$P/share/man/man8/booking-commands.8"

# ---- the installed bookingctl migrates from another directory -----------------------
mkdir -p "$T/elsewhere"
if ! bk_pg_setup "$T/pg" 2>"$T/pg.err"; then
	echo "Bail out! cannot start PostgreSQL: $(tr '\n' ' ' <"$T/pg.err")"
	exit 1
fi
started_pg=1
export PGHOST PGPORT PGUSER
pg_newdb "$DB" >/dev/null || { echo "Bail out! cannot create $DB"; exit 1; }
unset PGDATABASE BOOKING_MIGRATIONS
check "the installed bookingctl migrate, run from $T/elsewhere, applies the installed migrations" \
	bash -c 'cd "$1" && "$2/bin/bookingctl" migrate -d "dbname=$3"' _ "$T/elsewhere" "$P" "$DB"
check "the tables exist afterwards" \
	psql -X -q -At -d "$DB" -c "select 1 from booking_proj.checkpoint limit 0"
check "a second run finds nothing to do (the recorded checksums match the installed files)" \
	bash -c 'cd "$1" && "$2/bin/bookingctl" migrate -d "dbname=$3"' _ "$T/elsewhere" "$P" "$DB"
check "without installed migrations it says so and exits 2" \
	bash -c 'mv "$2/share/booking-log/migrations" "$2/share/booking-log/m.away"
		cd "$1" && "$2/bin/bookingctl" migrate -d "dbname=$3"; rc=$?
		mv "$2/share/booking-log/m.away" "$2/share/booking-log/migrations"; [ $rc = 2 ]' \
	_ "$T/elsewhere" "$P" "$DB"

# ---- systemd units -------------------------------------------------------------------
if ! command -v systemd-analyze >/dev/null 2>&1; then
	skip "systemd-analyze not installed (Debian package systemd): units NOT verified"
else
	# can it run here at all? a known-good unit first
	mkdir -p "$T/units"
	printf '[Service]\nType=oneshot\nExecStart=/bin/true\n' >"$T/units/probe.service"
	if ! systemd-analyze verify "$T/units/probe.service" >"$T/probe.out" 2>&1; then
		skip "systemd-analyze verify cannot run in this container ($(head -c 200 "$T/probe.out" | tr '\n' ' ')): units NOT verified"
	else
		for u in booking-commands booking-projector; do
			sed "s#$prefix/bin/#$P/bin/#g" "$P/lib/systemd/system/$u.service" >"$T/units/$u.service"
			check "systemd-analyze verify accepts $u.service (Type=notify, ExecStart installed)" \
				bash -c 'grep -q "^Type=notify$" "$1" && grep -q "^WatchdogSec=" "$1" &&
					MANPATH="$2" systemd-analyze verify "$1"' _ "$T/units/$u.service" "$P/share/man"
		done
		printf '[Service]\nType=notify\nExecStart=%s/bin/no-such-program\n' "$P" >"$T/units/bad.service"
		check "systemd-analyze verify rejects a unit whose program is missing (the check can fail)" \
			bash -c '! systemd-analyze verify "$1"' _ "$T/units/bad.service"
	fi
fi

echo "1..$n"
[ "$failed" -eq 0 ]
