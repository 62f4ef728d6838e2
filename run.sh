#!/usr/bin/env bash
# Sets everything up and runs the console, a Celery worker, Celery beat and the
# sandbox (a local multi-region AWS world) on the embedded defaults: SQLite and a
# filesystem broker under var/. Console: http://127.0.0.1:${PORT:-8000}. Ctrl-C stops all.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
ensure_venv requirements.txt

export PORT="${PORT:-8000}"
# The console's port, under a name of its own (PORT means the console to run.sh only).
export CONSOLE_PORT="$PORT"
export SANDBOX_AWS_PORT="${SANDBOX_AWS_PORT:-4566}"
export SANDBOX_BASE_PORT="${SANDBOX_BASE_PORT:-4600}"
# Health checks every 10 s x 0.2 = 2 s in the demo, so a drill fails over in seconds.
export SANDBOX_TIME_SCALE="${SANDBOX_TIME_SCALE:-0.2}"
export DJANGO_SETTINGS_MODULE=controlplane.settings
export PYTHONUNBUFFERED=1
# Every process talks to the sandbox instead of AWS; boto3 needs some credentials to sign.
export CONTROLPLANE_AWS_ENDPOINT_URL="http://127.0.0.1:${SANDBOX_AWS_PORT}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-sandbox}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-sandbox}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
# Three vantages, one per sandbox region: the sandbox routes each as a client there, so a
# drill of any region is measured from the vantage it serves. One probe worker acts for
# all three (the locations are simulated); the drill worker observes as us-east-1 itself.
export CONTROLPLANE_PROBE_VANTAGES="${CONTROLPLANE_PROBE_VANTAGES:-us-east-1,us-west-2,eu-central-1}"
export CONTROLPLANE_VANTAGE="${CONTROLPLANE_VANTAGE:-${CONTROLPLANE_PROBE_VANTAGES%%,*}}"
export CONTROLPLANE_WORKER_VANTAGES="${CONTROLPLANE_WORKER_VANTAGES:-$CONTROLPLANE_PROBE_VANTAGES}"
CONTROLPLANE_PROBE_QUEUES="probes.${CONTROLPLANE_WORKER_VANTAGES//,/,probes.}"
export CONTROLPLANE_PROBE_QUEUES

for port in "$PORT" "$SANDBOX_AWS_PORT"; do
    if .venv/bin/python -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $port)) != 0)"; then
        echo "Port $port is already in use (another ./run.sh?). Stop it or set PORT / SANDBOX_AWS_PORT." >&2
        exit 1
    fi
done

.venv/bin/python manage.py migrate --no-input -v 0
.venv/bin/python manage.py demo_users

echo "==> console on http://127.0.0.1:${PORT}  (Ctrl-C stops console, workers, beat and sandbox)"
echo "    discovery fills the inventory from the sandbox once it is up (a few seconds)"
echo "    each process's output: var/log/<name>.log; a process that dies is restarted"
exec .venv/bin/python scripts/supervise.py Procfile.dev
