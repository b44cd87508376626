#!/usr/bin/env bash
# Installs and starts what the integration tests need beyond Go. Every
# emulator the tests use today runs in-process (memory, pstest, nats-server,
# kfake, the AWS, Service Bus and Event Grid test servers), so this only
# downloads modules; tests that need something else skip with a reason when it
# is absent.
set -euo pipefail
go mod download
