"""manage.py sandbox runs in the foreground, writes its state file, stops on SIGTERM."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sandbox_support import http, wait_for

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


def test_sandbox_reset_reverts_a_fault_made_by_hand_and_names_the_stack(sandbox, sandbox_aws, tmp_path):
    from io import StringIO

    from django.core.management import call_command

    lam = sandbox_aws("lambda", "us-west-2")
    lam.put_function_concurrency(FunctionName="orders-api", ReservedConcurrentExecutions=0)
    url = sandbox.state["applications"]["orders"]["regions"]["us-west-2"]
    wait_for(lambda: http("GET", f"{url}/items")[0] == 429, 5, "the fault to be honoured")
    state_file = tmp_path / "sandbox.json"
    state_file.write_text(json.dumps(sandbox.state))

    out = StringIO()
    call_command("sandbox_reset", state_file=str(state_file), stdout=out)

    assert "orders/us-west-2" in out.getvalue()
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName="orders-api")
    wait_for(lambda: http("GET", f"{url}/items")[0] == 200, 5, "orders-api to answer again")
    out = StringIO()
    call_command("sandbox_reset", state_file=str(state_file), stdout=out)
    assert out.getvalue().startswith("No fault was on")


def test_sandbox_reset_without_a_sandbox_says_so(tmp_path):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match=r"No running sandbox: cannot read .*missing\.json"):
        call_command("sandbox_reset", state_file=str(tmp_path / "missing.json"))
