"""Fill the inventory from the sandbox each time it starts: the `discover` process of
Procfile.dev (what ./run.sh runs).

    python scripts/discover_sandbox.py [--state-file PATH]

The sandbox (`manage.py sandbox`) writes its state file once it is up (docs/SANDBOX.md).
This waits for it, then runs ``manage.py discover --actor sandbox --prune --region R ...``
over the sandbox's regions, against the AWS endpoint the file names: discovery runs the
code that runs against AWS. It then stays up, watching the file: a sandbox that
supervisor restarts writes a new one (another pid, new resource ids), and discovery runs
again, pruning the components of the previous world. A discovery that fails (exit status
not 0) is tried again after RETRY_SECONDS.

The sandbox knows nothing of the control plane's inventory, and the control plane
nothing of the sandbox: joining them is the run command's business, like supervise.py.
STATE is ``$CONTROLPLANE_VAR_DIR/sandbox.json`` (default ``var/sandbox.json``), where the
sandbox writes it (settings.SANDBOX_STATE_FILE).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
POLL_SECONDS = 0.5
RETRY_SECONDS = 5.0


def default_state_file():
    return Path(os.environ.get("CONTROLPLANE_VAR_DIR", BASE_DIR / "var")) / "sandbox.json"


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_state(path):
    """The running sandbox's state, or None: no file yet, not JSON, or left behind by a
    sandbox whose process is gone (a SIGKILLed sandbox does not remove its file)."""
    try:
        state = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    pid = state.get("pid") if isinstance(state, dict) else None
    if not isinstance(pid, int) or not _alive(pid):
        return None
    return state


def sandbox_regions(state):
    return sorted({code for app in state.get("applications", {}).values() for code in app["regions"]})


def discover_command(state, python=sys.executable):
    """`manage.py discover` over the sandbox's regions; --prune: a restarted sandbox has
    new resource ids, so the previous world's components go."""
    command = [python, str(BASE_DIR / "manage.py"), "discover", "--actor", "sandbox", "--prune"]
    for code in sandbox_regions(state):
        command += ["--region", code]
    return command


def follow(state_file, *, run=subprocess.run, sleep=time.sleep, out=sys.stdout):
    """Discover each sandbox that starts, until stopped (SIGTERM from supervisor)."""
    done = None  # (pid, started_at) of the sandbox last discovered
    while True:
        state = read_state(state_file)
        started = state and (state["pid"], state.get("started_at"))
        if state and started != done:
            endpoint = state["aws_endpoint"]
            out.write(f"sandbox up (pid {state['pid']}, {endpoint}): discovering "
                      f"{', '.join(sandbox_regions(state))}\n")
            out.flush()
            env = {**os.environ, "CONTROLPLANE_AWS_ENDPOINT_URL": endpoint}
            status = run(discover_command(state), cwd=BASE_DIR, env=env).returncode
            if status != 0:
                out.write(f"discovery failed (exit status {status}); trying again in {RETRY_SECONDS:.0f} s\n")
                out.flush()
                sleep(RETRY_SECONDS)
                continue
            done = started
            out.write(f"discovered the sandbox started at {state.get('started_at')} (pid {state['pid']})\n")
            out.flush()
        sleep(POLL_SECONDS)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--state-file", default=str(default_state_file()), help="the sandbox's state file")
    args = parser.parse_args(argv)
    follow(args.state_file)


if __name__ == "__main__":
    main()
