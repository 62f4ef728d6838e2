"""scripts/discover_sandbox.py: the run command fills the inventory from each sandbox that starts."""

import io
import json
import os
import subprocess
import sys

import pytest

from scripts import discover_sandbox
from scripts.discover_sandbox import discover_command, follow, read_state


def _state(pid=None, started_at="2026-01-01T00:00:00+00:00", port=4566):
    return {
        "aws_endpoint": f"http://127.0.0.1:{port}",
        "pid": os.getpid() if pid is None else pid,
        "started_at": started_at,
        "applications": {
            "orders": {"regions": {"us-east-1": "...", "us-west-2": "..."}},
            "payments": {"regions": {"eu-central-1": "...", "us-west-2": "..."}},
        },
    }


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_only_the_state_file_of_a_running_sandbox_counts(tmp_path):
    path = tmp_path / "sandbox.json"
    assert read_state(path) is None  # not up yet
    path.write_text('{"aws_endpoint": ')
    assert read_state(path) is None  # not JSON
    path.write_text(json.dumps(_state(pid=_dead_pid())))
    assert read_state(path) is None  # left behind by a sandbox that was killed
    path.write_text(json.dumps(_state()))
    assert read_state(path)["aws_endpoint"] == "http://127.0.0.1:4566"


def test_discovery_covers_every_region_of_the_sandbox_and_prunes_the_previous_world():
    command = discover_command(_state(), python="python")
    assert command[1].endswith("manage.py")
    assert command[2:] == [
        "discover", "--actor", "sandbox", "--prune",
        "--region", "eu-central-1", "--region", "us-east-1", "--region", "us-west-2",
    ]


class _Stop(Exception):
    pass


def test_each_sandbox_start_is_discovered_once_and_a_failed_discovery_is_tried_again(tmp_path):
    path = tmp_path / "sandbox.json"
    runs, statuses = [], [0, 1, 0]
    ticks = iter([
        lambda: None,  # no sandbox yet
        lambda: path.write_text(json.dumps(_state())),
        lambda: None,  # the same sandbox: nothing to do
        lambda: path.write_text(json.dumps(_state(started_at="2026-01-01T00:05:00+00:00", port=4567))),
        lambda: None,  # after the failed run: tried again
        lambda: None,
    ])
    sleeps = []

    def run(command, cwd, env):
        runs.append((command, env["CONTROLPLANE_AWS_ENDPOINT_URL"]))
        return subprocess.CompletedProcess(command, statuses[len(runs) - 1])

    def sleep(seconds):
        sleeps.append(seconds)
        try:
            next(ticks)()
        except StopIteration:
            raise _Stop from None

    out = io.StringIO()
    with pytest.raises(_Stop):
        follow(path, run=run, sleep=sleep, out=out)

    assert [endpoint for _, endpoint in runs] == [
        "http://127.0.0.1:4566", "http://127.0.0.1:4567", "http://127.0.0.1:4567"
    ]
    assert discover_sandbox.RETRY_SECONDS in sleeps
    said = out.getvalue()
    assert said.count("discovered the sandbox started at") == 2
    assert "discovery failed (exit status 1); trying again in 5 s" in said
