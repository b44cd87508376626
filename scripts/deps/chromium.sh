#!/usr/bin/env bash
# Chromium for the web console's browser tests (ops, with chromedp): Debian's
# chromium package, run headless by the tests. Exports CROSSBUS_CHROMIUM.
# Installs it when it is missing (root only).
set -euo pipefail
. "$(dirname "$0")/lib.sh.inc"

if ! command -v chromium >/dev/null; then
	apt_install chromium || exit 0
fi
echo "chromium: $(chromium --version 2>/dev/null || echo 'version unknown')"
export_test_env CROSSBUS_CHROMIUM "$(command -v chromium)"
