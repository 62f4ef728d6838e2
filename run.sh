#!/usr/bin/env bash
# Sets everything up and runs the console, a Celery worker, Celery beat and the
# sandbox on the embedded defaults (SQLite, a filesystem broker, a local
# multi-region world). Console: http://127.0.0.1:${PORT:-8000}. Ctrl-C stops all.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
ensure_venv requirements.txt

export PORT="${PORT:-8000}"
export DJANGO_SETTINGS_MODULE=controlplane.settings
export PYTHONUNBUFFERED=1

.venv/bin/python manage.py migrate --no-input -v 0
.venv/bin/python manage.py import_inventory inventory/sample.yaml --actor setup
.venv/bin/python manage.py demo_users

echo "==> console on http://127.0.0.1:${PORT}  (Ctrl-C stops console, worker and beat)"
exec .venv/bin/honcho -f Procfile.dev start
