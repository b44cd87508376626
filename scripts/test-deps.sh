#!/usr/bin/env bash
# Installs and starts what the integration tests need beyond Go, then writes
# the environment the tests read (which servers to use) to .test-env in the
# repository root. `make test` sources that file before running `go test`.
#
# Every emulator that can run in-process does (memory, pstest, nats-server,
# kfake, the AWS, Service Bus and Event Grid test servers, SQLite). Servers
# that cannot (PostgreSQL, Redis, dynalite, Azurite, Chromium) are set up by
# the scripts in scripts/deps/, one per dependency; each appends its
# variables to .test-env. Plain `go test ./...` without them skips the tests
# that need them, printing why.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export CROSSBUS_TEST_ENV="$root/.test-env"
: > "$CROSSBUS_TEST_ENV"
go mod download
# The SDK's side of the AMQP interop tests is a module of its own
# (interop/amqpsdk); interop's TestAMQP builds it.
(cd interop/amqpsdk && go mod download)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	export CROSSBUS_APT_UPDATED=
fi
for dep in scripts/deps/*.sh; do
	[ -e "$dep" ] || continue
	echo "== $(basename "$dep" .sh)"
	bash "$dep"
done
echo "== test environment ($CROSSBUS_TEST_ENV)"
cat "$CROSSBUS_TEST_ENV"
