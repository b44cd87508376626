#!/usr/bin/env bash
# Azurite for the claim-check tests on Azure Blob Storage: the npm package
# azurite (Microsoft's storage emulator), installed with npm under
# ~/.cache/crossbus (or $CROSSBUS_TOOLS); only its blob service runs, in
# memory, on 127.0.0.1 at a free port. Exports CROSSBUS_AZURITE_BLOB_URL
# (http://127.0.0.1:PORT/devstoreaccount1), the well-known development
# account and key (CROSSBUS_AZURITE_ACCOUNT, CROSSBUS_AZURITE_KEY) and a
# connection string (CROSSBUS_AZURITE_CONNECTION_STRING).
set -euo pipefail
. "$(dirname "$0")/lib.sh.inc"

version=3.37.0
tools=${CROSSBUS_TOOLS:-$HOME/.cache/crossbus}/azurite-$version
if ! command -v npm >/dev/null; then
	apt_install nodejs npm || exit 0
fi
if [ ! -x "$tools/node_modules/.bin/azurite-blob" ]; then
	mkdir -p "$tools"
	if ! (cd "$tools" && npm install --no-audit --no-fund --loglevel=error "azurite@$version" >/dev/null); then
		echo "npm install azurite@$version failed; the Azure Blob claim-check tests will skip" >&2
		exit 0
	fi
fi
port=$(free_port)
dir=$(mktemp -d /tmp/crossbus-azurite.XXXXXX)
# In memory: nothing is written but the log (and the debug log, off).
cd "$dir"
nohup "$tools/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 --blobPort "$port" \
	--inMemoryPersistence --skipApiVersionCheck --disableProductStyleUrl --silent \
	>"$dir/azurite.log" 2>&1 </dev/null &
pid=$!
disown "$pid" 2>/dev/null || true
wait_for "(exec 3<>/dev/tcp/127.0.0.1/$port)" 60
echo "azurite $version (blob) on 127.0.0.1:$port (pid $pid, log $dir/azurite.log)"
# The emulator's fixed development account (documented by Azurite; not a secret).
account=devstoreaccount1
key='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
export_test_env CROSSBUS_AZURITE_BLOB_URL "http://127.0.0.1:$port/$account"
export_test_env CROSSBUS_AZURITE_ACCOUNT "$account"
export_test_env CROSSBUS_AZURITE_KEY "$key"
export_test_env CROSSBUS_AZURITE_CONNECTION_STRING "DefaultEndpointsProtocol=http;AccountName=$account;AccountKey=$key;BlobEndpoint=http://127.0.0.1:$port/$account;"
