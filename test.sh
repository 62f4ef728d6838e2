#!/usr/bin/env bash
# Sets up and runs the whole test suite (ruff, then pytest). Uses SQLite and the
# filesystem broker unless DATABASE_URL / CONTROLPLANE_BROKER_URL say otherwise
# (.ci/run points them at PostgreSQL and Redis). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
ensure_venv requirements-dev.txt

# The browser tests drive Debian's Chromium (Playwright cannot download its own here).
if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "==> installing chromium (apt)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "Chromium is needed for the browser tests: sudo apt-get install chromium" >&2
        exit 1
    fi
fi

export DJANGO_SETTINGS_MODULE=controlplane.settings
# Tests keep their own state (SQLite file, broker folder, secret) apart from a running demo.
export CONTROLPLANE_VAR_DIR="${CONTROLPLANE_VAR_DIR:-$PWD/var/test}"
mkdir -p "$CONTROLPLANE_VAR_DIR"

echo "==> ruff"
.venv/bin/ruff check .
echo "==> pytest (database: ${DATABASE_URL:-sqlite}, broker: ${CONTROLPLANE_BROKER_URL:-filesystem})"
exec .venv/bin/python -m pytest "$@"
