#!/usr/bin/env bash
# dynalite for stores/dynamodb: a DynamoDB-compatible server (npm package
# dynalite, on LevelDB in memory) on 127.0.0.1 at a free port. Tables are
# created and deleted at once (no CREATING/DELETING delay), so every test
# can make its own. Exports CROSSBUS_DYNAMODB_ENDPOINT. The package is
# installed with npm under ~/.cache/crossbus (or $CROSSBUS_TOOLS).
set -euo pipefail
. "$(dirname "$0")/lib.sh.inc"

version=4.0.0
tools=${CROSSBUS_TOOLS:-$HOME/.cache/crossbus}/dynalite-$version
if ! command -v npm >/dev/null; then
	apt_install nodejs npm || exit 0
fi
if [ ! -x "$tools/node_modules/.bin/dynalite" ]; then
	mkdir -p "$tools"
	if ! (cd "$tools" && npm install --no-audit --no-fund --loglevel=error "dynalite@$version" >/dev/null); then
		echo "npm install dynalite@$version failed; the DynamoDB store tests will skip" >&2
		exit 0
	fi
fi
port=$(free_port)
log=$(mktemp /tmp/crossbus-dynalite.XXXXXX.log)
nohup "$tools/node_modules/.bin/dynalite" --host 127.0.0.1 --port "$port" \
	--createTableMs 0 --deleteTableMs 0 --updateTableMs 0 >"$log" 2>&1 &
pid=$!
disown "$pid" 2>/dev/null || true
# Wait until it accepts connections.
wait_for "(exec 3<>/dev/tcp/127.0.0.1/$port)" 30
echo "dynalite $version on 127.0.0.1:$port (pid $pid, log $log)"
export_test_env CROSSBUS_DYNAMODB_ENDPOINT "http://127.0.0.1:$port"
# The binary, for tests that start (and kill) a server of their own.
export_test_env CROSSBUS_DYNALITE "$tools/node_modules/.bin/dynalite"
