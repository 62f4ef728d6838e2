"""manage.py sandbox runs in the foreground, writes its state file, stops on SIGTERM."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.testing import http, wait_for

pytestmark = pytest.mark.sandbox
ROOT = Path(__file__).resolve().parents[2]


def test_command_writes_the_state_file_and_stops_on_sigterm(tmp_path):
    state_file = tmp_path / "sandbox.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "sandbox",
            "--aws-port",
            "0",
            "--base-port",
            "0",
            "--time-scale",
            "0.1",
            "--state-file",
            str(state_file),
        ],
        cwd=ROOT,
        env={**os.environ, "CONTROLPLANE_VAR_DIR": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: state_file.exists() or proc.poll() is not None, 30, "sandbox.json")
        assert proc.poll() is None, proc.stdout.read().decode()
        state = json.loads(state_file.read_text())
        assert state["aws_endpoint"].startswith("http://127.0.0.1:")
        orders = state["applications"]["orders"]
        assert set(orders["regions"]) == {"us-east-1", "us-west-2"}
        status, headers, _ = http("GET", f"{orders['global_endpoint']}health")
        assert status == 200 and headers["X-Served-By-Region"] == "us-east-1"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert not state_file.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
