# shellcheck shell=bash
# tests/harness.sh - shell functions for tests and scripts: a private, throw-away PostgreSQL.
# Source it, then: pg_start DIR (initdb on first use, reuse when already running), pg_newdb
# NAME, pg_stop DIR. The server listens on 127.0.0.1 and a unix socket inside DIR only, with
# fsync off; as root it runs as user postgres. Tests can share one server: bk_pg_setup
# reuses BK_TEST_PGHOST/BK_TEST_PGPORT/BK_TEST_PGUSER when set.

# The newest PostgreSQL server binaries: /usr/lib/postgresql/<ver>/bin, else pg_config, else PATH.
pg_bindir() {
	local d best=""
	for d in /usr/lib/postgresql/*/bin; do
		[ -x "$d/initdb" ] || continue
		if [ -z "$best" ] || [ "$(printf '%s\n%s\n' "$best" "$d" | sort -V | tail -n1)" = "$d" ]; then
			best=$d
		fi
	done
	if [ -z "$best" ] && command -v pg_config >/dev/null 2>&1; then
		d=$(pg_config --bindir 2>/dev/null || true)
		[ -n "$d" ] && [ -x "$d/initdb" ] && best=$d
	fi
	if [ -z "$best" ] && command -v initdb >/dev/null 2>&1; then
		best=$(dirname "$(command -v initdb)")
	fi
	if [ -z "$best" ]; then
		echo "harness: no PostgreSQL server binaries (initdb) found; install package postgresql" >&2
		return 1
	fi
	printf '%s\n' "$best"
}

# Run a server binary as the cluster owner: user postgres when we are root (PostgreSQL
# refuses to run as root), else ourselves.
_pg_as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		if command -v runuser >/dev/null 2>&1; then
			runuser -u postgres -- "$@"
		else
			local q
			q=$(printf '%q ' "$@")
			su postgres -s /bin/sh -c "$q"
		fi
	else
		"$@"
	fi
}

# A TCP port on 127.0.0.1 that nothing listens on (random in 20000-59999).
_pg_free_port() {
	local _ port
	for _ in $(seq 1 50); do
		port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			printf '%s\n' "$port"
			return 0
		fi
	done
	echo "harness: no free TCP port found" >&2
	return 1
}

# Export PGHOST/PGPORT/PGUSER for the cluster in DIR (written by pg_start to DIR/env).
pg_env() {
	local dir=${1:?usage: pg_env DIR}
	if [ ! -f "$dir/env" ]; then
		echo "harness: $dir/env missing: no cluster started in $dir" >&2
		return 1
	fi
	# shellcheck disable=SC1091
	. "$dir/env"
}

_pg_running() {
	local dir=$1 bindir=$2
	[ -f "$dir/data/postmaster.pid" ] || return 1
	_pg_as_owner "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1
}

# pg_start DIR: start (after initdb on first use) a private cluster in DIR/data, socket in
# DIR (or a short /tmp directory when DIR's path is too long for a socket), log in DIR/log.
# Idempotent: a cluster already running in DIR is reused. Exports PGHOST (socket directory),
# PGPORT, PGUSER (postgres, trust auth) and prints them.
pg_start() {
	local dir=${1:?usage: pg_start DIR} bindir port sockdir tries
	bindir=$(pg_bindir) || return 1
	mkdir -p "$dir" || return 1
	dir=$(cd "$dir" && pwd -P) || return 1
	if [ "$(id -u)" -eq 0 ]; then
		if ! id postgres >/dev/null 2>&1; then
			echo "harness: running as root needs user postgres (package postgresql creates it)" >&2
			return 1
		fi
		chown postgres: "$dir" || return 1
		if ! runuser -u postgres -- test -x "$dir"; then
			echo "harness: user postgres cannot reach $dir (a parent directory is not searchable)" >&2
			return 1
		fi
	fi

	if _pg_running "$dir" "$bindir"; then
		pg_env "$dir" || return 1
		echo "harness: reusing PostgreSQL in $dir: PGHOST=$PGHOST PGPORT=$PGPORT PGUSER=$PGUSER" >&2
		return 0
	fi

	if [ ! -f "$dir/data/PG_VERSION" ] || [ ! -f "$dir/data/postgresql.conf" ]; then
		rm -rf "$dir/data"
		if [ "$(id -u)" -eq 0 ]; then
			install -d -o postgres -m 700 "$dir/data" || return 1
		else
			mkdir -m 700 "$dir/data" || return 1
		fi
		if ! (cd "$dir" && _pg_as_owner "$bindir/initdb" -D "$dir/data" -U postgres \
			--auth=trust -E UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1); then
			# Older releases or images without the C.UTF-8 locale.
			rm -rf "$dir/data"
			[ "$(id -u)" -eq 0 ] && install -d -o postgres -m 700 "$dir/data"
			if ! (cd "$dir" && _pg_as_owner "$bindir/initdb" -D "$dir/data" -U postgres \
				--auth=trust -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1); then
				echo "harness: initdb failed; see $dir/initdb.log:" >&2
				tail -n 20 "$dir/initdb.log" >&2
				return 1
			fi
		fi
	fi

	sockdir=$dir
	# A unix socket path is at most 107 bytes: "<dir>/.s.PGSQL.<port>" must fit.
	if [ ${#dir} -gt 80 ]; then
		sockdir=$(cat "$dir/sockdir" 2>/dev/null || true)
		if [ -z "$sockdir" ] || [ ! -d "$sockdir" ]; then
			sockdir=$(mktemp -d /tmp/bkpg.XXXXXX) || return 1
			[ "$(id -u)" -eq 0 ] && chown postgres: "$sockdir"
		fi
	fi
	printf '%s\n' "$sockdir" >"$dir/sockdir"

	for tries in 1 2 3 4 5; do
		port=$(_pg_free_port) || return 1
		cat >"$dir/data/postgresql.auto.conf" <<-EOF
			# written by tests/harness.sh pg_start; rewritten on every start
			listen_addresses = '127.0.0.1'
			port = $port
			unix_socket_directories = '$sockdir'
			fsync = off
			synchronous_commit = off
			full_page_writes = off
			max_connections = 100
			shared_buffers = '64MB'
			max_locks_per_transaction = 256
			log_min_messages = warning
			log_statement = 'none'
		EOF
		[ "$(id -u)" -eq 0 ] && chown postgres: "$dir/data/postgresql.auto.conf"
		if [ "$(id -u)" -eq 0 ]; then
			touch "$dir/log" && chown postgres: "$dir/log"
		fi
		if (cd "$dir" && _pg_as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 \
			start >/dev/null 2>&1); then
			break
		fi
		if [ "$tries" -eq 5 ]; then
			echo "harness: PostgreSQL did not start in $dir; last lines of $dir/log:" >&2
			tail -n 20 "$dir/log" >&2
			return 1
		fi
		sleep 0.2
	done

	cat >"$dir/env" <<-EOF
		export PGHOST='$sockdir'
		export PGPORT='$port'
		export PGUSER='postgres'
	EOF
	pg_env "$dir" || return 1
	echo "harness: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') in $dir:" \
		"PGHOST=$PGHOST PGPORT=$PGPORT PGUSER=$PGUSER (also on 127.0.0.1:$PGPORT)" >&2
}

# pg_stop DIR: stop the cluster in DIR if it runs; never fails when there is none.
pg_stop() {
	local dir=${1:?usage: pg_stop DIR} bindir sockdir
	[ -d "$dir" ] || return 0
	dir=$(cd "$dir" && pwd) # pg_ctl runs from inside it: a relative DIR would not resolve
	bindir=$(pg_bindir) || return 0
	if _pg_running "$dir" "$bindir"; then
		(cd "$dir" && _pg_as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop \
			>/dev/null 2>&1) || echo "harness: pg_ctl stop failed for $dir" >&2
	fi
	sockdir=$(cat "$dir/sockdir" 2>/dev/null || true)
	case $sockdir in
	/tmp/bkpg.*) rm -rf "$sockdir" ;;
	esac
	return 0
}

# pg_newdb NAME: (re)create an empty database NAME on the server in PGHOST/PGPORT/PGUSER,
# export PGDATABASE=NAME and print NAME. An existing NAME is dropped first.
pg_newdb() {
	local name=${1:?usage: pg_newdb NAME}
	case $name in
	*[!A-Za-z0-9_]* | [0-9]*)
		echo "harness: pg_newdb: database name must be [A-Za-z_][A-Za-z0-9_]*: $name" >&2
		return 1
		;;
	esac
	psql -X -q -v ON_ERROR_STOP=1 -d postgres >/dev/null <<-EOF || return 1
		set client_min_messages = warning;
		select pg_terminate_backend(pid) from pg_stat_activity
		 where datname = '$name' and pid <> pg_backend_pid();
		drop database if exists "$name";
		create database "$name";
	EOF
	export PGDATABASE=$name
	printf '%s\n' "$name"
}

# pg_dropdb NAME: drop database NAME if it exists.
pg_dropdb() {
	local name=${1:?usage: pg_dropdb NAME}
	psql -X -q -d postgres -c "drop database if exists \"$name\"" >/dev/null 2>&1 || true
}

# bk_pg_setup DIR: for tests. Use the server named by BK_TEST_PGHOST/BK_TEST_PGPORT
# (BK_TEST_PGUSER, default postgres) when set, else pg_start DIR. bk_pg_teardown DIR stops
# the server only when bk_pg_setup started it.
bk_pg_setup() {
	local dir=${1:?usage: bk_pg_setup DIR}
	if [ -n "${BK_TEST_PGHOST:-}" ]; then
		export PGHOST=$BK_TEST_PGHOST
		export PGPORT=${BK_TEST_PGPORT:-5432}
		export PGUSER=${BK_TEST_PGUSER:-postgres}
		BK_PG_STARTED=0
		return 0
	fi
	pg_start "$dir" || return 1
	BK_PG_STARTED=1
}

bk_pg_teardown() {
	local dir=${1:?usage: bk_pg_teardown DIR}
	if [ "${BK_PG_STARTED:-0}" = 1 ]; then
		pg_stop "$dir"
	fi
}
