"""The runner's preflight health check of the other regions, against a real local HTTP
server: a failing region is probed again before the drill is aborted."""

import pytest
from aiohttp import web

from experiments import runner
from regions import probes
from tests.regions.test_probes import LocalServer


class ScriptedHealth(LocalServer):
    """The probe tests' local server with one more route, /scripted-health, that answers
    the given status codes in turn (the last one from then on) and counts the requests."""

    def __init__(self, codes):
        super().__init__()
        self.codes = list(codes)
        self.requests = 0

    async def scripted(self, request):
        code = self.codes[min(self.requests, len(self.codes) - 1)]
        self.requests += 1
        return web.json_response({"status": "healthy" if code == 200 else "unhealthy"}, status=code)

    def _app(self):
        app = super()._app()
        app.router.add_get("/scripted-health", self.scripted)
        return app


@pytest.fixture
def scripted():
    servers = []

    def start(*codes):
        servers.append(ScriptedHealth(codes).start())
        return servers[-1].url("/scripted-health"), servers[-1]

    yield start
    for server in servers:
        server.stop()
    probes.close_engine()


def test_a_region_that_fails_once_and_then_answers_passes(scripted):
    url, health = scripted(503, 200)
    ok, detail = runner._healthy_confirmed(url, attempts=2, pause=0.01)
    assert ok is True
    assert detail.startswith("200 from /health in ")
    assert health.requests == 2


def test_a_region_that_keeps_failing_is_unhealthy_after_every_attempt(scripted):
    url, health = scripted(503)
    ok, detail = runner._healthy_confirmed(url, attempts=3, pause=0.01)
    assert (ok, detail) == (False, "503 from /health")
    assert health.requests == 3


def test_a_healthy_region_is_probed_once(scripted):
    url, health = scripted(200)
    assert runner._healthy_confirmed(url, attempts=2, pause=0.01)[0] is True
    assert health.requests == 1
