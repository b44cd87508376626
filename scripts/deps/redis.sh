#!/usr/bin/env bash
# Redis for stores/redis: a private redis-server on 127.0.0.1 at a free port,
# without persistence, in a temporary directory. Exports CROSSBUS_REDIS_URL.
# Installs Debian's redis-server when it is missing (root only).
set -euo pipefail
. "$(dirname "$0")/lib.sh.inc"

if ! command -v redis-server >/dev/null; then
	apt_install redis-server || exit 0
fi
dir=$(mktemp -d /tmp/crossbus-redis.XXXXXX)
port=$(free_port)
redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" \
	--save '' --appendonly no --daemonize yes \
	--pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
wait_for "redis-cli -h 127.0.0.1 -p $port ping | grep -q PONG" 30
echo "redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') on 127.0.0.1:$port (pid $(cat "$dir/redis.pid"), dir $dir)"
export_test_env CROSSBUS_REDIS_URL "redis://127.0.0.1:$port/0"
