# shellcheck shell=bash
# tests/test_projector_lib.sh - shared by the projector tests: a dev broker with a control
# socket, per-case topics and databases, running the projector until it has caught up,
# and ordered dumps of the read model (what the goldens and the crash test compare).
# Source after harness.sh; needs BK (bookingctl), PROJ (booking-projector), FEED
# (test_projector_feed), SRC (source root) and T (a scratch directory).

# The read-model tables, each with the order its dump is sorted in.
PJ_TABLES=(
	"booking.order:order_id"
	"booking.line_item:order_id, list_pos, id"
	"booking.request:order_id, request_id"
	"booking.invite_recipient:invite_id, recipient_user_id"
	"booking.milestone:order_id, milestone_id"
	"booking.dispute:order_id, dispute_id"
	"booking.autoaccept_rule:service_profile_id, rule_id"
	"ord.order:order_id"
	"ord.timeline_event:order_id, seq"
	"ord.card:order_id, card_id"
	"ord.card_response:card_id, response_id"
	"ord.order_lock:order_id"
)

# pj_dump DB: every read-model table, sorted, one line per row (UTC times).
pj_dump() {
	local db=$1 spec t ord
	for spec in "${PJ_TABLES[@]}"; do
		t=${spec%%:*}
		ord=${spec#*:}
		echo "## $t"
		PGTZ=UTC psql -X -q -A -t -F '|' -v ON_ERROR_STOP=1 -d "$db" \
			-c "select * from $t order by $ord" || return 1
	done
}

# pj_broker PARTITIONS: start the dev broker (bootstrap in $T/bootstrap, control $T/ctl).
pj_broker() {
	"$BK" devbroker --partitions "${1:-4}" --bootstrap-file "$T/bootstrap" --control "$T/ctl" \
		>"$T/devbroker.out" 2>"$T/devbroker.err" &
	PJ_BROKER_PID=$!
	local i
	for i in $(seq 1 100); do
		[ -s "$T/bootstrap" ] && [ -S "$T/ctl" ] && return 0
		sleep 0.1
	done
	echo "devbroker did not start: $(cat "$T/devbroker.err")" >&2
	return 1
}

pj_broker_stop() {
	[ -n "${PJ_BROKER_PID:-}" ] && kill "$PJ_BROKER_PID" 2>/dev/null && wait "$PJ_BROKER_PID" 2>/dev/null
	PJ_BROKER_PID=
}

# pj_db NAME: a fresh database with the migrations applied.
pj_db() {
	pg_newdb "$1" >/dev/null || return 1
	unset PGDATABASE
	"$BK" migrate -q -d "dbname=$1" --dir "$SRC/migrations" >"$T/migrate.out" 2>&1
}

# pj_feed PREFIX PARTITIONS ARGS...: topics PREFIX.booking.* and records from fixtures.
pj_feed() {
	local prefix=$1 parts=$2
	shift 2
	"$FEED" --brokers-file "$T/bootstrap" --control "$T/ctl" --create-topics "$parts" \
		--topic-prefix "$prefix" "$@"
}

# pj_start DB PREFIX GROUP [ARGS...]: a projector in the background (pid in PJ_PID),
# its log in $T/proj.GROUP.log.
pj_start() {
	local db=$1 prefix=$2 group=$3
	shift 3
	"$PROJ" -d "dbname=$db" --brokers-file "$T/bootstrap" --topic-prefix "$prefix" \
		--group-id "$group" -X session.timeout.ms=6000 -X heartbeat.interval.ms=500 \
		--stats-s 0 --trust-unsealed "$@" >>"$T/proj.$group.log" 2>&1 &
	PJ_PID=$!
}

# pj_wait DB PREFIX SECONDS: until every partition's checkpoint is at its end.
pj_wait() {
	"$BK" status -d "dbname=$1" --brokers-file "$T/bootstrap" --topic-prefix "$2" \
		--wait --timeout-ms "$((${3:-60} * 1000))" >"$T/status.out" 2>&1
	local rc=$?
	# exit 1 with lag 0 means quarantined orders: still caught up
	grep -q '^total lag: 0 ' "$T/status.out" && return 0
	return "$rc"
}

# pj_stop PID: SIGTERM and wait; returns the projector's exit status.
pj_stop() {
	kill -TERM "$1" 2>/dev/null
	wait "$1"
}

# pj_project DB PREFIX GROUP [ARGS...]: project everything there is, then stop.
pj_project() {
	local db=$1 prefix=$2 group=$3 rc
	shift 3
	pj_start "$db" "$prefix" "$group" "$@"
	pj_wait "$db" "$prefix" 120
	rc=$?
	pj_stop "$PJ_PID" || rc=1
	return $rc
}

# pj_q DB SQL: one value.
pj_q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }
