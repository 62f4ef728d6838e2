"""Fixtures for inventory and discovery tests: a moto server and a sample inventory."""

import shutil
import urllib.request
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

SAMPLE = Path(__file__).resolve().parents[2] / "inventory" / "sample.yaml"


@pytest.fixture(scope="session")
def moto_server():
    """One moto server on a free port for the session; `moto` resets it per test."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def moto(moto_server, settings, monkeypatch):
    """A clean moto server that every controlplane.aws client talks to."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    request = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).close()
    settings.AWS_ENDPOINT_URL = moto_server
    # moto answers services it does not have (Global Accelerator, ARC) with a 500;
    # one attempt keeps those warnings fast.
    settings.AWS_MAX_ATTEMPTS = 1
    yield moto_server


@pytest.fixture
def sample_path(tmp_path):
    """A copy of inventory/sample.yaml that a test may edit."""
    path = tmp_path / "inventory.yaml"
    shutil.copy(SAMPLE, path)
    return path
