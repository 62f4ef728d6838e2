#!/usr/bin/env bash
# Sets up and runs the whole test suite (ruff, then pytest). Uses SQLite and the
# file broker (localfs://) unless DATABASE_URL / CONTROLPLANE_BROKER_URL say otherwise
# (.ci/run points them at PostgreSQL and Redis). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
ensure_venv requirements-dev.txt

# The browser tests drive Debian's Chromium (Playwright cannot download its own here);
# one drill test stops and starts a private redis-server to show a drill survives a
# broker outage.
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "==> installing ${missing[*]} (apt)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "The tests need: ${missing[*]}. Install them, e.g.: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
fi

export DJANGO_SETTINGS_MODULE=controlplane.settings
# Tests keep their own state (SQLite file, broker folder, secret) apart from a running demo.
export CONTROLPLANE_VAR_DIR="${CONTROLPLANE_VAR_DIR:-$PWD/var/test}"
mkdir -p "$CONTROLPLANE_VAR_DIR"

echo "==> ruff"
.venv/bin/ruff check .
echo "==> pytest (database: ${DATABASE_URL:-sqlite}, broker: ${CONTROLPLANE_BROKER_URL:-localfs})"
exec .venv/bin/python -m pytest "$@"
