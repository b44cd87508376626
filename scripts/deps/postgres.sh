#!/usr/bin/env bash
# PostgreSQL for stores/postgres and the examples that run on it: installs
# Debian's server if missing, starts a private cluster as the unprivileged
# user postgres in a temporary directory, listening on a unix socket there
# and on 127.0.0.1 at a free port (fsync off: test data need not survive a
# power loss), creates the database crossbus and records
# CROSSBUS_POSTGRES_URL. Tests give each test a schema of its own, so test
# packages share the database in parallel.
#
# Environment: CROSSBUS_POSTGRES_DIR (default: /tmp/crossbus-postgres-UID)
# keeps the cluster; running the script again reuses that cluster (starting
# it if it is not running), so repeated test runs share one server. Stop it
# with
#   pg_ctl -D "$CROSSBUS_POSTGRES_DIR/data" stop -m fast
# (as the postgres user when the script ran as root).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/lib.sh.inc"

pg_bindir() {
	local d
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
			echo "$d"
			return 0
		fi
	done
	return 1
}

bin=$(pg_bindir || true)
if [ -z "$bin" ]; then
	echo "installing PostgreSQL"
	if ! apt_install postgresql; then
		echo "PostgreSQL unavailable; its tests will skip" >&2
		exit 0
	fi
	bin=$(pg_bindir)
fi
echo "using $("$bin/postgres" --version)"

# The server refuses to run as root: run it as an unprivileged user.
run_as=()
if [ "$(id -u)" = 0 ]; then
	if ! id postgres >/dev/null 2>&1; then
		useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
	fi
	run_as=(runuser -u postgres --)
fi

dir=${CROSSBUS_POSTGRES_DIR:-${TMPDIR:-/tmp}/crossbus-postgres-$(id -u)}
mkdir -p "$dir"
chmod 755 "$dir"
[ "$(id -u)" = 0 ] && chown postgres: "$dir"

free_port() {
	local p
	for p in $(shuf -i 20000-40000 -n 50); do
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

if [ -f "$dir/port" ]; then
	port=$(cat "$dir/port")
else
	port=$(free_port)
	echo "$port" > "$dir/port"
fi

if [ ! -s "$dir/data/PG_VERSION" ]; then
	"${run_as[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
		"${run_as[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1
	cat >> "$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
shared_buffers = 256MB
log_min_messages = warning
EOF
fi

if ! "${run_as[@]}" "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
	"${run_as[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null
fi
wait_for "'$bin/pg_isready' -q -h '$dir' -p '$port' -U postgres" 60
if ! "${run_as[@]}" "$bin/psql" -h "$dir" -p "$port" -U postgres -Atqc "SELECT 1 FROM pg_database WHERE datname = 'crossbus'" | grep -q 1; then
	"${run_as[@]}" "$bin/createdb" -h "$dir" -p "$port" -U postgres crossbus
fi
export_test_env CROSSBUS_POSTGRES_URL "postgres://postgres@127.0.0.1:$port/crossbus?sslmode=disable"
export_test_env CROSSBUS_POSTGRES_DIR "$dir"
echo "PostgreSQL ready at 127.0.0.1:$port (socket in $dir), data in $dir/data"
