#!/usr/bin/env bash
# bench_rebuild.sh - `bookingctl rebuild` of a generated log (bookingctl gen through the
# core, produced as events records by tests/loggen) beside PostgreSQL loading the same
# final rows in the same run: COPY FROM into the same empty tables without keys or indexes,
# then the same keys, indexes and foreign keys created (the floor for any rebuild).
#   bench/bench_rebuild.sh [BUILD_DIR] [ORDERS]    (default build, 120000 orders ~ 1.2M events)
#   LOG=FILE bench/bench_rebuild.sh [BUILD_DIR]    only the --from-file rebuild of FILE (a
#       `bookingctl replay --format msgpack` file, e.g. one kept with KEEP_LOG=PATH) and the
#       baseline: no broker, no Kafka rebuild (the dev broker, librdkafka's mock, serves a long
#       partition slower and slower: at 120000 orders the Kafka runs measure the broker).
#   KEEP_LOG=PATH keeps the generated replay file there.
#   BATCH=large (default) writes the log in producer batches of up to 1 MB a partition;
#       BATCH=small keeps linger.ms=5 (a record or two a batch, as the processor writes).
#       The dev broker answers a fetch with one stored batch a partition, found by a walk
#       from the first (docs/devbroker.md), so a log of small batches measures the broker.
# The machine's load average is printed before each measured run: compare a rebuild with the
# baseline of the same run only.
set -euo pipefail
B=${1:-build} ORDERS=${2:-120000} LOG=${LOG:-} KEEP_LOG=${KEEP_LOG:-} BATCH=${BATCH:-large}
SRC=$(cd "$(dirname "$0")/.." && pwd)
BK=$B/cli/bookingctl
T=$(mktemp -d /tmp/bk-bench-rebuild.XXXXXX)
chmod 755 "$T"
# shellcheck source=tests/harness.sh
. "$SRC/tests/harness.sh"
BROKER=
cleanup() {
	[ -n "$BROKER" ] && kill "$BROKER" 2>/dev/null
	wait 2>/dev/null || true
	pg_stop "$T/pg"
	rm -rf "$T"
}
trap cleanup EXIT
now() { date +%s.%N; }
load() { echo "  load average: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)"; }
# timed_rebuild LOGFILE ARGS...: the load, then `bookingctl rebuild ARGS` into the bench
# database with its step lines; sets SECS to its wall time
timed_rebuild() {
	local log=$1 t0 t1
	shift
	load
	t0=$(now)
	"$BK" rebuild -d dbname=bench "$@" --trust-unsealed --migrations "$SRC/migrations" 2>"$log"
	t1=$(now)
	grep -E 'msg="rebuild (step|done)"' "$log" | sed 's/^/  /'
	SECS=$(echo "$t1 - $t0" | bc -l)
}

if [ -z "$LOG" ]; then
	# The dev broker keeps at most 5 MiB per partition: give the log room (docs/devbroker.md).
	"$BK" devbroker --partitions 256 --bootstrap-file "$T/bs" >/dev/null 2>"$T/broker.log" &
	BROKER=$!
	for _ in $(seq 600); do [ -s "$T/bs" ] && break; sleep 0.1; done
	"$BK" gen --orders "$ORDERS" --with-expect -o "$T/stream.jsonl" 2>/dev/null
	shape=()
	[ "$BATCH" = large ] && shape=(-X linger.ms=1000 -X batch.num.messages=100000 -X batch.size=1000000)
	"$B/tests/loggen" --brokers-file "$T/bs" "${shape[@]}" --topic booking.events "$T/stream.jsonl" \
		>/dev/null 2>"$T/loggen.log" || { cat "$T/loggen.log" >&2; exit 1; }
	echo "log: BATCH=$BATCH"
	cat "$T/loggen.log" >&2
fi

pg_start "$T/pg" 2>/dev/null
export PGHOST PGPORT PGUSER
for db in bench base; do
	pg_newdb "$db" >/dev/null
	"$BK" migrate -q -d "dbname=$db" --dir "$SRC/migrations" >/dev/null
done
unset PGDATABASE

rsec=
if [ -z "$LOG" ]; then
	echo "== bookingctl rebuild (Kafka, 256 partitions, empty live model)"
	timed_rebuild "$T/rebuild.log" --brokers-file "$T/bs"
	rsec=$SECS

	echo "== raw consume of the same log (lib/logread, records counted and dropped)"
	"$B/bench/bench_consume" --brokers-file "$T/bs" | sed 's/^/  /'
	"$BK" replay --trust-unsealed --brokers-file "$T/bs" --format msgpack -o "$T/log.mp" 2>/dev/null
	LOG=$T/log.mp
	[ -n "$KEEP_LOG" ] && cp "$LOG" "$KEEP_LOG"
	{ kill "$BROKER" && wait "$BROKER"; } 2>/dev/null || true
	BROKER=
fi
echo "== bookingctl rebuild --from-file ($(du -h "$LOG" | cut -f1) replay file; the live model is $([ -n "$rsec" ] && echo full || echo empty))"
timed_rebuild "$T/rebuild.f.log" --from-file "$LOG"
fsec=$SECS
events=$(sed -n 's/.*msg="rebuild done".* events=\([0-9]*\) .*/\1/p' "$T/rebuild.f.log")

# the final rows, dumped with COPY TO (text, as the rebuild sends them)
TABLES="booking.order booking.line_item booking.request booking.invite_recipient booking.milestone
booking.dispute ord.order ord.timeline_event ord.card ord.card_response ord.order_lock"
rows=0
for t in $TABLES; do
	psql -X -q -d bench -c "\\copy $t to '$T/$t.copy'"
	rows=$((rows + $(wc -l <"$T/$t.copy")))
done

# baseline: the same tables, empty, keys/indexes/foreign keys dropped as the rebuild does
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d base -c "$1"; }
IDX="select pg_get_indexdef(i.indexrelid) || ';' from pg_index i join pg_class c on c.oid = i.indrelid where c.relnamespace in ('booking'::regnamespace, 'ord'::regnamespace) and c.relname <> 'autoaccept_rule' and not exists (select 1 from pg_constraint k where k.conindid = i.indexrelid and k.contype in ('p','u','x'))"
CON="select format('alter table %s add constraint %I %s;', conrelid::regclass, conname, pg_get_constraintdef(oid)) from pg_constraint where connamespace in ('booking'::regnamespace, 'ord'::regnamespace) and contype in ('p','u','f') and conrelid <> 'booking.autoaccept_rule'::regclass"
{ q "$CON and contype <> 'f'"; q "$IDX"; q "$CON and contype = 'f'"; } >"$T/create.sql"
{
	q "select format('alter table %s drop constraint %I;', conrelid::regclass, conname) from pg_constraint where connamespace in ('booking'::regnamespace, 'ord'::regnamespace) and contype = 'f'"
	q "select format('drop index %s;', i.indexrelid::regclass) from pg_index i join pg_class c on c.oid = i.indrelid where c.relnamespace in ('booking'::regnamespace, 'ord'::regnamespace) and c.relname <> 'autoaccept_rule' and not exists (select 1 from pg_constraint k where k.conindid = i.indexrelid and k.contype in ('p','u','x'))"
	q "select format('alter table %s drop constraint %I;', conrelid::regclass, conname) from pg_constraint where connamespace in ('booking'::regnamespace, 'ord'::regnamespace) and contype in ('p','u') and conrelid <> 'booking.autoaccept_rule'::regclass"
} >"$T/drop.sql"
psql -X -q -v ON_ERROR_STOP=1 -d base -f "$T/drop.sql" >/dev/null
for t in $TABLES; do echo "\\copy $t from '$T/$t.copy'"; done >"$T/load.sql"
echo "== baseline: psql \\copy FROM of the same $rows rows, then keys, indexes, foreign keys"
load
t0=$(now)
psql -X -q -v ON_ERROR_STOP=1 -d base -f "$T/load.sql" >/dev/null
t1=$(now)
psql -X -q -v ON_ERROR_STOP=1 -d base -f "$T/create.sql" >/dev/null
t2=$(now)
csec=$(echo "$t1 - $t0" | bc -l)
isec=$(echo "$t2 - $t1" | bc -l)
bsec=$(echo "$t2 - $t0" | bc -l)
echo "  copy_s=$csec index_s=$isec"

printf '\n%-46s %10s %10s %14s\n' name events seconds "events/s"
[ -n "$rsec" ] && printf '%-46s %10d %10.2f %14.0f\n' "bookingctl rebuild (whole command)" "$events" \
	"$rsec" "$(echo "$events / $rsec" | bc -l)"
printf '%-46s %10d %10.2f %14.0f\n' "bookingctl rebuild --from-file (whole command)" "$events" "$fsec" \
	"$(echo "$events / $fsec" | bc -l)"
printf '%-46s %10d %10.2f %14.0f\n' "COPY FROM + keys/indexes (same final rows)" "$events" "$bsec" \
	"$(echo "$events / $bsec" | bc -l)"
echo "rows=$rows ratio to COPY-then-index (its seconds / rebuild seconds):$([ -n "$rsec" ] && echo " kafka $(echo "$bsec / $rsec" | bc -l | cut -c1-5),") file $(echo "$bsec / $fsec" | bc -l | cut -c1-5)"
load
echo "targets: rebuild >= 150000 events/s, ratio >= 0.6"
