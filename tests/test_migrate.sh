#!/usr/bin/env bash
# tests/test_migrate.sh - integration test of `bookingctl migrate` against a real PostgreSQL.
# Usage: test_migrate.sh BOOKINGCTL MIGRATIONS_DIR   (TAP on stdout)
# Starts a private server through harness.sh, or uses BK_TEST_PGHOST/BK_TEST_PGPORT when
# set; works in its own databases and on a copy of the migrations directory.
set -uo pipefail

BK=${1:?usage: test_migrate.sh BOOKINGCTL MIGRATIONS_DIR}
SRC_MIG=${2:?usage: test_migrate.sh BOOKINGCTL MIGRATIONS_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/harness.sh
. "$HERE/harness.sh"

T=$(mktemp -d /tmp/bk-test-migrate.XXXXXX)
chmod 755 "$T"
DB1=bkt_migrate_$$
DB2=bkt_migrate_race_$$
cleanup() {
	if [ -n "${PGPORT:-}" ]; then
		pg_dropdb "$DB1"
		pg_dropdb "$DB2"
	fi
	bk_pg_teardown "$T/pg"
	rm -rf "$T"
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
	if [ -s "$T/out" ] || [ -s "$T/err" ]; then
		sed 's/^/#   out: /' "$T/out" 2>/dev/null
		sed 's/^/#   err: /' "$T/err" 2>/dev/null
	fi
}
check() { # check DESCRIPTION COMMAND...: ok when the command succeeds
	local d=$1
	shift
	if "$@"; then ok "$d"; else not_ok "$d"; fi
}
# run EXPECTED_RC ARGS...: run bookingctl migrate, output in $T/out and $T/err.
run() {
	local want=$1 rc
	shift
	"$BK" migrate "$@" >"$T/out" 2>"$T/err"
	rc=$?
	if [ "$rc" -ne "$want" ]; then
		echo "# bookingctl migrate $*: exit $rc, expected $want" >>"$T/err"
		return 1
	fi
}
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$DB1" -c "$1"; }
out_has() { grep -q -- "$1" "$T/out"; }
err_has() { grep -q -- "$1" "$T/err"; }

if ! bk_pg_setup "$T/pg" 2>"$T/pg.err"; then
	echo "Bail out! cannot start PostgreSQL: $(tr '\n' ' ' <"$T/pg.err")"
	exit 1
fi
export PGHOST PGPORT PGUSER
pg_newdb "$DB1" >/dev/null || { echo "Bail out! cannot create database $DB1"; exit 1; }
pg_newdb "$DB2" >/dev/null || { echo "Bail out! cannot create database $DB2"; exit 1; }
unset PGDATABASE
MIG=$T/migrations
cp -r "$SRC_MIG" "$MIG"
C="dbname=$DB1"

# usage
check "--help exits 0 and documents --dry-run" \
	bash -c "'$BK' migrate --help | grep -q -- --dry-run"
check "an unknown option exits 2" run 2 --no-such-option
check "a missing directory exits 2" run 2 -d "$C" --dir "$T/nope"
check "an unreachable server exits 3" run 3 -d "host=127.0.0.1 port=1 dbname=x" --retries 2
check "a missing database exits 3 at once" run 3 -d "dbname=bkt_no_such_db_$$" --retries 5

# dry run on an empty database lists everything and writes nothing
check "dry run on an empty database exits 0" run 0 -d "$C" --dir "$MIG" --dry-run
check "dry run lists 013, 022 and 030 as pending" \
	bash -c "grep -q '^pending 013_booking_core.sql' '$T/out' &&
		grep -q '^pending 022_orders_cards.sql' '$T/out' &&
		grep -q '^pending 030_projection.sql' '$T/out'"
check "dry run creates no bookkeeping table" \
	test "$(q "select to_regclass('booking_proj.schema_migrations') is null")" = t

# apply everything
check "migrate on an empty database exits 0" run 0 -d "$C" --dir "$MIG"
check "each migration is reported applied" \
	bash -c "[ \$(grep -c '^applied ' '$T/out') -eq $(find "$MIG" -name '[0-9]*_*.sql' | wc -l) ]"
missing=""
for t in booking.order booking.line_item booking.request booking.invite_recipient \
	booking.milestone booking.dispute booking.autoaccept_rule ord.order ord.timeline_event \
	ord.card ord.card_response ord.order_lock booking_proj.checkpoint booking_proj.quarantine \
	booking_proj.schema_migrations; do
	[ "$(q "select to_regclass('$t') is not null")" = t ] || missing="$missing $t"
done
if [ -z "$missing" ]; then ok "all tables exist"; else not_ok "tables missing:$missing"; fi
check "enums live in schema booking" \
	test "$(q "select count(*) from pg_type t join pg_namespace n on n.oid = t.typnamespace
		where n.nspname = 'booking' and t.typname in ('booking_mode', 'booking_status')")" = 2
check "ord.timeline_event has seq, command_id, hash, prev_hash, schema" \
	test "$(q "select count(*) from information_schema.columns where table_schema = 'ord'
		and table_name = 'timeline_event'
		and column_name in ('seq','command_id','hash','prev_hash','schema')")" = 5
check "ord.order_lock cascades from ord.order and versions from 0" \
	q "insert into ord.order (order_id, buyer_user_id, provider_user_id, role_code, start_utc,
		end_utc, timezone, policy_snapshot, price_snapshot) values ('ord_t', 'u1', 'u2',
		'model', now(), now() + interval '1 hour', 'UTC', '{}', '{}');
	   insert into ord.order_lock (order_id) values ('ord_t');
	   do \$\$ begin
	     if (select version from ord.order_lock where order_id = 'ord_t') <> 0 then
	       raise exception 'version'; end if; end \$\$;
	   delete from ord.order where order_id = 'ord_t';
	   do \$\$ begin
	     if exists (select 1 from ord.order_lock) then raise exception 'cascade'; end if;
	   end \$\$;"
check "(order_id, seq) is unique in ord.timeline_event" \
	bash -c "! psql -X -q -d '$DB1' -v ON_ERROR_STOP=1 >/dev/null 2>&1 <<-'EOF'
		begin;
		insert into ord.order (order_id, buyer_user_id, provider_user_id, role_code, start_utc,
		  end_utc, timezone, policy_snapshot, price_snapshot)
		  values ('ord_u', 'u1', 'u2', 'model', now(), now(), 'UTC', '{}', '{}');
		insert into ord.timeline_event (event_id, order_id, kind, subtype, seq)
		  values ('tev_1', 'ord_u', 'system', 'order.created', 1),
		         ('tev_2', 'ord_u', 'system', 'order.created', 1);
		commit;
	EOF"
check "booking.order keeps the seed's location_kind check" \
	bash -c "! psql -X -q -d '$DB1' -c \"insert into booking.order (order_id, buyer_user_id,
		provider_user_id, service_profile_id, mode, start_ts, end_ts, location_kind)
		values ('o', 'b', 'p', 's', 'IB', now(), now(), 'moon')\" >/dev/null 2>&1"
applied_before=$(q "select string_agg(version || applied_at, ',' order by version)
	from booking_proj.schema_migrations")

# re-running is a no-op
check "a second run exits 0" run 0 -d "$C" --dir "$MIG"
check "a second run applies nothing" bash -c "! grep -q '^applied ' '$T/out' && grep -q 'up to date' '$T/out'"
check "a second run leaves the bookkeeping rows as they were" \
	test "$(q "select string_agg(version || applied_at, ',' order by version)
		from booking_proj.schema_migrations")" = "$applied_before"
check "dry run after migrating lists nothing" \
	bash -c "'$BK' migrate -d '$C' --dir '$MIG' --dry-run >'$T/out' 2>'$T/err' &&
		! grep -q '^pending' '$T/out' && grep -q '^0 pending' '$T/out'"
check "status lists every migration as applied" \
	bash -c "'$BK' migrate -d '$C' --dir '$MIG' --status >'$T/out' 2>'$T/err' &&
		grep -Eq '^013 +booking_core +applied' '$T/out' &&
		grep -Eq '^030 +projection +applied' '$T/out'"

# a new migration is pending, then applied
printf -- '-- test migration\ncreate table booking_proj.test_added (a int);\n' >"$MIG/900_test_added.sql"
check "dry run lists only the new migration" \
	bash -c "'$BK' migrate -d '$C' --dir '$MIG' --dry-run >'$T/out' 2>'$T/err' &&
		[ \"\$(grep '^pending' '$T/out')\" = 'pending 900_test_added.sql' ]"
check "dry run does not apply it" \
	test "$(q "select to_regclass('booking_proj.test_added') is null")" = t
check "migrate applies only the new migration" \
	bash -c "'$BK' migrate -d '$C' --dir '$MIG' >'$T/out' 2>'$T/err' &&
		[ \"\$(grep '^applied' '$T/out' | cut -d' ' -f2)\" = '900_test_added.sql' ]"
check "the new migration's SHA-256 is recorded" \
	test "$(q "select sha256 from booking_proj.schema_migrations where version = '900'")" = \
	"$(sha256sum "$MIG/900_test_added.sql" | cut -d' ' -f1)"

# a changed applied file is refused
cp "$MIG/013_booking_core.sql" "$T/013.orig"
printf -- '-- an innocent-looking edit\n' >>"$MIG/013_booking_core.sql"
printf -- 'create table booking_proj.never (a int);\n' >"$MIG/901_never.sql"
check "a changed applied migration is refused with exit 1" run 1 -d "$C" --dir "$MIG"
check "the refusal names the file and says it changed" \
	bash -c "grep -q '013_booking_core.sql' '$T/err' && grep -qi 'changed' '$T/err'"
check "nothing is applied when a migration changed" \
	test "$(q "select to_regclass('booking_proj.never') is null")" = t
check "dry run refuses the changed file too (exit 1)" run 1 -d "$C" --dir "$MIG" --dry-run
check "status marks it CHANGED (exit 1)" \
	bash -c "'$BK' migrate -d '$C' --dir '$MIG' --status >'$T/out' 2>'$T/err';
		[ \$? -eq 1 ] && grep -Eq '^013 +booking_core +CHANGED' '$T/out'"
cp "$T/013.orig" "$MIG/013_booking_core.sql"
rm -f "$MIG/901_never.sql"

# a missing applied file is refused
mv "$MIG/022_orders_cards.sql" "$T/022.sql"
check "a missing applied migration is refused with exit 1" run 1 -d "$C" --dir "$MIG"
check "the refusal names the missing migration" \
	bash -c "grep -q '022_orders_cards' '$T/err' && grep -qi 'missing' '$T/err'"
mv "$T/022.sql" "$MIG/022_orders_cards.sql"

# a failing migration is rolled back whole and not recorded
printf 'create table booking_proj.half (a int);\nselect 1;\ncreate tabel oops (a int);\n' \
	>"$MIG/902_broken.sql"
check "a failing migration exits 1" run 1 -d "$C" --dir "$MIG"
check "the error names the file and the line" \
	bash -c "grep -q '902_broken.sql line 3' '$T/err' && grep -q 'tabel' '$T/err'"
check "its first statement was rolled back" \
	test "$(q "select to_regclass('booking_proj.half') is null")" = t
check "it is not recorded" \
	test "$(q "select count(*) from booking_proj.schema_migrations where version = '902'")" = 0
rm -f "$MIG/902_broken.sql"

# a file with its own transaction statements is refused before it runs
printf 'begin;\ncreate table booking_proj.txn (a int);\ncommit;\n' >"$MIG/903_txn.sql"
check "a migration with begin/commit is refused with exit 1" run 1 -d "$C" --dir "$MIG"
check "... and not run" test "$(q "select to_regclass('booking_proj.txn') is null")" = t
rm -f "$MIG/903_txn.sql"

# two duplicate versions are a usage error
cp "$MIG/900_test_added.sql" "$MIG/900_again.sql"
check "two files with one version exit 2" run 2 -d "$C" --dir "$MIG"
rm -f "$MIG/900_again.sql"
check "after the fixes the database is up to date" run 0 -d "$C" --dir "$MIG"

# two concurrent runners: the advisory lock makes one apply and the other wait
"$BK" migrate -d "dbname=$DB2" --dir "$SRC_MIG" >"$T/r1.out" 2>"$T/r1.err" &
p1=$!
"$BK" migrate -d "dbname=$DB2" --dir "$SRC_MIG" >"$T/r2.out" 2>"$T/r2.err" &
p2=$!
wait "$p1"
rc1=$?
wait "$p2"
rc2=$?
cat "$T/r1.out" "$T/r2.out" >"$T/out"
cat "$T/r1.err" "$T/r2.err" >"$T/err"
check "two concurrent runs both exit 0" test "$rc1" -eq 0 -a "$rc2" -eq 0
check "two concurrent runs apply each migration once" \
	bash -c "[ \$(grep -c '^applied 013_booking_core.sql' '$T/out') -eq 1 ] &&
		[ \$(psql -X -A -t -d '$DB2' -c 'select count(*) from booking_proj.schema_migrations') -eq \
		  $(find "$SRC_MIG" -name '[0-9]*_*.sql' | wc -l) ]"

# the default directory: $BOOKING_MIGRATIONS
check "BOOKING_MIGRATIONS names the directory" \
	bash -c "BOOKING_MIGRATIONS='$MIG' '$BK' migrate -d '$C' --status >'$T/out' 2>'$T/err' &&
		grep -q '900 ' '$T/out'"

echo "1..$n"
[ "$failed" -eq 0 ]
