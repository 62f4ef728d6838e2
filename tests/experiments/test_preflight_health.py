"""The runner's preflight health check of the other regions, against a real local HTTP
server: a failing region is probed again before the drill is aborted."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from experiments import runner
from regions import probes


class ScriptedHealth:
    """A /health server on a free loopback port that answers the given status codes in
    turn (the last one from then on) and counts the requests."""

    def __init__(self, codes):
        self.codes = list(codes)
        self.requests = 0
        script = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                code = script.codes[min(script.requests, len(script.codes) - 1)]
                script.requests += 1
                body = json.dumps({"status": "healthy" if code == 200 else "unhealthy"}).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/health"

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def scripted():
    servers = []

    def start(*codes):
        servers.append(ScriptedHealth(codes))
        return servers[-1]

    yield start
    for server in servers:
        server.close()
    probes.close_engine()


def test_a_region_that_fails_once_and_then_answers_passes(scripted):
    health = scripted(503, 200)
    ok, detail = runner._healthy_confirmed(health.url, attempts=2, pause=0.01)
    assert ok is True
    assert detail.startswith("200 from /health in ")
    assert health.requests == 2


def test_a_region_that_keeps_failing_is_unhealthy_after_every_attempt(scripted):
    health = scripted(503)
    ok, detail = runner._healthy_confirmed(health.url, attempts=3, pause=0.01)
    assert (ok, detail) == (False, "503 from /health")
    assert health.requests == 3


def test_a_healthy_region_is_probed_once(scripted):
    health = scripted(200)
    assert runner._healthy_confirmed(health.url, attempts=2, pause=0.01)[0] is True
    assert health.requests == 1
