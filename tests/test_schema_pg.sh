#!/usr/bin/env bash
# tests/test_schema_pg.sh - the C schema held against PostgreSQL's (issue #14 item 2): every
# enum the read model stores and every projected column, as the C tables say them
# (tests/schema_dump.c), compared with pg_enum, the CHECK constraints and pg_attribute of a
# database migrated with `bookingctl migrate`. A C enum value PostgreSQL would refuse, or a
# column the projector writes that is missing or of another type, fails here, not in
# production. Usage: test_schema_pg.sh BOOKINGCTL SCHEMA_DUMP MIGRATIONS_DIR (TAP)
set -uo pipefail
BK=${1:?usage} DUMP=${2:?usage} MIG=${3:?usage}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/harness.sh
. "$HERE/harness.sh"
T=$(mktemp -d /tmp/bk-test-schema.XXXXXX)
chmod 755 "$T"
DB=bkt_schema_$$
cleanup() {
	[ -n "${PGPORT:-}" ] && pg_dropdb "$DB"
	bk_pg_teardown "$T/pg"
	rm -rf "$T"
}
trap cleanup EXIT
n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() {
	n=$((n + 1)) failed=$((failed + 1))
	echo "not ok $n - $1"
	[ -n "${2:-}" ] && echo "$2" | sed 's/^/#   /'
}
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$DB" -c "$1"; }

if ! bk_pg_setup "$T/pg" 2>"$T/pg.err"; then
	echo "Bail out! cannot start PostgreSQL: $(tr '\n' ' ' <"$T/pg.err")"
	exit 1
fi
export PGHOST PGPORT PGUSER
pg_newdb "$DB" >/dev/null || { echo "Bail out! cannot create $DB"; exit 1; }
"$BK" migrate -q -d "dbname=$DB" --dir "$MIG" >"$T/migrate.out" 2>&1 ||
	{ echo "Bail out! migrate failed: $(tail -n 3 "$T/migrate.out")"; exit 1; }
"$DUMP" >"$T/c" || { echo "Bail out! schema_dump failed"; exit 1; }

enums=0 checks=0 cols=0
while read -r kind where rest; do
	case $kind in
	enum) # the PostgreSQL enum's labels in their order = the C enum's names in its order
		pg=$(q "select string_agg(enumlabel, ',' order by enumsortorder) from pg_enum
			where enumtypid = '$where'::regtype")
		if [ "$pg" = "$rest" ]; then ok "enum $where: $rest"; else
			not_ok "enum $where: C and PostgreSQL differ" "C:  $rest
PG: $pg"; fi
		enums=$((enums + 1)) ;;
	check) # the values the column's CHECK constraint allows = the C enum's names (as sets)
		tbl=${where%.*} col=${where##*.}
		pg=$(q "select string_agg(v, ',' order by v) from (select (regexp_matches(
			pg_get_constraintdef(c.oid), '''([^'']*)''', 'g'))[1] as v from pg_constraint c
			where c.conrelid = '$tbl'::regclass and c.contype = 'c'
			and pg_get_constraintdef(c.oid) ~ '\m$col\M') s")
		want=$(echo "$rest" | tr ',' '\n' | LC_ALL=C sort | paste -sd,)
		pg=$(echo "$pg" | tr ',' '\n' | LC_ALL=C sort | paste -sd,)
		if [ -n "$pg" ] && [ "$pg" = "$want" ]; then ok "check $where: $rest"; else
			not_ok "check $where: C and PostgreSQL differ" "C:  $want
PG: $pg"; fi
		checks=$((checks + 1)) ;;
	esac
done <"$T/c"
# the columns: one query over all of them (name, table, SQL type as the C tables say);
# prints each column PostgreSQL does not have with that type
col_mismatches() {
	local vals
	vals=$(awk '$1 == "col" { printf "%s(\x27%s\x27, \x27%s\x27, \x27%s\x27)", (n++ ? ", " : ""), $2, $3, $4 }' "$1")
	q "select v.t || '.' || v.c || ' (' || v.ty || '): ' || coalesce(format_type(a.atttypid, a.atttypmod), 'missing')
	from (values $vals) v(t, c, ty) left join pg_attribute a on a.attrelid = v.t::regclass
	and a.attname = v.c and not a.attisdropped
	where a.attname is null or format_type(a.atttypid, a.atttypmod) <> format_type(v.ty::regtype, null)" 2>&1
}
col_mismatches "$T/c" >"$T/colbad"
cols=$(($(grep -c '^col ' "$T/c") - $(grep -c . "$T/colbad")))
while read -r line; do not_ok "column $line"; done <"$T/colbad"
want_cols=$(grep -c '^col ' "$T/c")
if [ "$cols" -eq "$want_cols" ] && [ "$cols" -gt 0 ]; then
	ok "every projected column exists with its type ($cols columns of $(grep '^col ' "$T/c" | cut -d' ' -f2 | sort -u | wc -l) tables)"
else
	not_ok "projected columns: $cols of $want_cols match"
fi
[ "$enums" -ge 5 ] && [ "$checks" -ge 6 ] && ok "compared $enums enum types and $checks checked columns" ||
	not_ok "too few comparisons: $enums enums, $checks checks"

# the test can fail: a value the C side has and PostgreSQL does not is caught
sed 's/^enum ord.card_type \(.*\)$/enum ord.card_type \1,teleport/' "$T/c" >"$T/c.bad"
pg=$(q "select string_agg(enumlabel, ',' order by enumsortorder) from pg_enum where enumtypid = 'ord.card_type'::regtype")
bad=$(sed -n 's/^enum ord.card_type //p' "$T/c.bad")
[ "$pg" != "$bad" ] && ok "a planted extra C card type would be caught" || not_ok "planted difference not seen"
sed 's/^col booking.order city text$/col booking.order city integer/; s/^col ord.card type .*/col ord.card kind ord.card_type/' \
	"$T/c" >"$T/c.badcol"
[ "$(col_mismatches "$T/c.badcol" | grep -c .)" = 2 ] && ok "a planted wrong type and a planted missing column are caught" ||
	not_ok "planted column differences not seen" "$(col_mismatches "$T/c.badcol")"
echo "1..$n"
[ "$failed" -eq 0 ]
