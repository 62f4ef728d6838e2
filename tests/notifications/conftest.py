import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from notifications import services


class Receiver:
    """A webhook receiver on a free local port: answers each POST with the next status
    of `statuses` (the last one for the rest) and keeps every body it was sent."""

    def __init__(self, statuses=(200,)):
        self.statuses = list(statuses)
        self.requests = []  # (status answered, body)
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    status = receiver.statuses[min(len(receiver.requests), len(receiver.statuses) - 1)]
                    receiver.requests.append((status, body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/T000/secret-token-123"

    def accepted(self):
        with self.lock:
            return [body for status, body in self.requests if status < 300]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def start(statuses=(200,)):
        made.append(Receiver(statuses))
        return made[-1]

    yield start
    for r in made:
        r.close()


@pytest.fixture
def webhook(admin):
    def make(url, events="all", **kwargs):
        return services.create_channel(admin, name=kwargs.pop("name", "hook"), kind="webhook", target=url,
                                       events=events, **kwargs)

    return make
