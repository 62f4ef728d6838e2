"""pytest fixtures and helpers for the sandbox (tests/conftest.py imports the fixtures):

    from tests.sandbox_support import sandbox, sandbox_aws, sandbox_session, sandbox_settings

- sandbox_session (session scope): a running sandbox at time scale 0.1, on free ports.
  By default it runs in a child process (`manage.py sandbox`), because moto keeps its
  state in process globals and other fixtures in the same test process (the `moto`
  fixture of tests/regions resets moto per test) would wipe an in-process sandbox.
  SANDBOX_FIXTURE=inprocess runs it in the test process instead (faster to start,
  and `sb.registry` etc. are then available).
- sandbox: the same sandbox for one test; afterwards every fault is reverted through
  the AWS APIs and the test waits until the stacks it touched are healthy again.
- sandbox_aws: `sandbox_aws("route53", "us-east-1")` -> a cached boto3 client on the
  sandbox, made by controlplane.aws.client.
- sandbox_settings: also points settings.AWS_ENDPOINT_URL at the sandbox, so code under
  test that calls controlplane.aws.client() without an endpoint reaches it.

Both kinds of sandbox offer: .state (sandbox.json), .aws_endpoint, .time_scale,
.startup_seconds, .stack(app, region) (ids and ports), .client(service, region),
.stop(). After each test the `sandbox` fixture reverts every fault through the AWS APIs
(sandbox.faults, as `manage.py sandbox_reset` does) and waits for health.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from sandbox import faults, world
from sandbox.remote import RemoteSandbox

# Health-check intervals shrink by this factor: RequestInterval 10 s -> 1 s.
TEST_TIME_SCALE = float(os.environ.get("SANDBOX_TEST_TIME_SCALE", "0.1"))
FIXTURE_MODE = os.environ.get("SANDBOX_FIXTURE", "process")


class SandboxProcess(RemoteSandbox):
    """`manage.py sandbox` in a child process, driven through its state file and APIs."""

    def __init__(self, time_scale=TEST_TIME_SCALE, topology_path=None, timeout=60):
        self.workdir = Path(tempfile.mkdtemp(prefix="sandbox-"))
        self.state_file = self.workdir / "sandbox.json"
        self.log_file = self.workdir / "sandbox.log"
        args = [
            sys.executable,
            "manage.py",
            "sandbox",
            "--aws-port",
            "0",
            "--base-port",
            "0",
            "--time-scale",
            str(time_scale),
            "--state-file",
            str(self.state_file),
        ]
        if topology_path:
            args += ["--topology", str(topology_path)]
        for key, value in world.SANDBOX_CREDENTIALS.items():
            os.environ.setdefault(key, value)  # our own boto3 clients sign with these
        started = time.monotonic()
        with open(self.log_file, "wb") as log:
            self.proc = subprocess.Popen(
                args,
                cwd=django_settings.BASE_DIR,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "CONTROLPLANE_VAR_DIR": str(self.workdir)},
            )
        try:
            wait_for(
                lambda: self.state_file.exists() or self.proc.poll() is not None,
                timeout,
                "the sandbox process to write its state file",
            )
            if self.proc.poll() is not None:
                raise RuntimeError(f"the sandbox exited: {self.log_file.read_text()[-2000:]}")
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started  # includes Python and Django
        super().__init__(self.state_file)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_for_tests(mode=FIXTURE_MODE, time_scale=TEST_TIME_SCALE):
    if mode == "inprocess":
        return world.start(time_scale=time_scale)
    return SandboxProcess(time_scale)


@pytest.fixture(scope="session")
def sandbox_session():
    sb = start_for_tests()
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture
def sandbox(sandbox_session):
    yield sandbox_session
    touched = faults.reset_faults(sandbox_session)
    faults.wait_until_healthy(sandbox_session, 30, touched)


@pytest.fixture
def sandbox_aws(sandbox):
    return sandbox.client


@pytest.fixture
def sandbox_settings(sandbox, settings):
    settings.AWS_ENDPOINT_URL = sandbox.aws_endpoint
    yield sandbox


def wait_for(predicate, timeout, what="condition", interval=0.05):
    """Poll `predicate` until it returns a truthy value (returned) or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def http(method, url, payload=None, timeout=10, headers=None):
    """A real HTTP request -> (status, headers, parsed JSON body or text)."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            status, headers, body = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        status, headers, body = exc.code, exc.headers, exc.read()
    try:
        return status, headers, json.loads(body)
    except ValueError:
        return status, headers, body.decode(errors="replace")
