"""Routing follows what clients see, end to end: the sandbox, Celery beat, a probe
worker and a worker for the AWS reads, as in production; an independent client polls
the global endpoint over real HTTP every 0.1 s, the fault is put on and taken off with
boto3, and the console's routing (regions.monitoring.load_picture) must follow the
client within the bounds docs/MONITORING.md states:

- a region the clients come back to (or that serves them): one probe interval + 2 s
  (SLACK: beat's tick, the broker, the probe and its storing, on a busy box);
- a region the clients leave while its /health fails: failures x interval + 2 s;
- AWS's own view (Route 53's status, polled every 30 s otherwise) is read again once the
  clients' routing changed: within one probe interval +
  CONTROLPLANE_ROUTE53_STATUS_CHANGE_INTERVAL + 2 s (the task's queue and the calls).
"""

import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from regions import monitoring
from regions.discovery import run_discovery
from regions.models import Application, AwsObservation, Component, ComponentKind, ObservationKind
from tests.processes import CeleryProcess, child_env, start_worker, wait_for

pytestmark = [pytest.mark.sandbox, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

REGIONS = ["eu-central-1", "us-east-1", "us-west-2"]
INTERVAL = 2  # CONTROLPLANE_PROBE_INTERVAL of the processes and of this test process
FAILURES = 2
SLACK = 2.0  # seconds: see the module docstring
FUNCTIONS = ("orders-api", "orders-health")  # the region's functions: /items and /health


class Client(threading.Thread):
    """An independent client of the global endpoint: GET every 0.1 s, over HTTP, and
    note which region answered (X-Served-By-Region, set by every regional app server)."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url, self.seen, self.stopped = url, [], threading.Event()

    def run(self):
        while not self.stopped.wait(0.1):
            try:
                with urllib.request.urlopen(self.url, timeout=2) as response:
                    region = response.headers.get("X-Served-By-Region", "")
            except urllib.error.HTTPError as error:
                region = error.headers.get("X-Served-By-Region", "")
            except OSError:
                region = ""
            self.seen.append((time.monotonic(), region))

    def first(self, region, after):
        """When this client was first answered by `region` after `after` (monotonic)."""
        return wait_for(
            lambda: next((t for t, r in self.seen if t > after and r == region), None),
            30, message=f"the client to be served by {region}",
        )


def routing_of(app):
    close_old_connections()
    return monitoring.load_picture(application_ids=[app.pk])[app.pk].routing


def _console_says(app, region, receives, after):
    """When the console's routing first says `region` receives (or not) traffic, by the
    clients' view, polled every 0.1 s from `after` on -> (monotonic, Routing)."""
    def check():
        routing = routing_of(app).get(region)
        if routing is not None and routing.receives_traffic is receives and routing.source == "clients":
            return time.monotonic(), routing
        return None

    return wait_for(check, 40, interval=0.1, message=f"the console: {region} receives traffic {receives}")


@pytest.fixture
def pipeline(sandbox_settings, settings, tmp_path):
    """beat + a probe worker (its own vantage label) + a worker on the default queue."""
    vantage = f"rt-{uuid.uuid4().hex[:6]}"
    settings.CONTROLPLANE_PROBE_INTERVAL = INTERVAL
    settings.CONTROLPLANE_STATUS_FAILURES = FAILURES
    report = run_discovery(actor="test", regions=REGIONS)
    assert report.warnings == []
    env = {
        "CONTROLPLANE_VANTAGE": vantage, "CONTROLPLANE_PROBE_VANTAGES": vantage,
        "CONTROLPLANE_PROBE_INTERVAL": INTERVAL, "CONTROLPLANE_STATUS_FAILURES": FAILURES,
    }
    processes = [
        start_worker(f"probes.{vantage}", tmp_path, concurrency=1, **env),
        start_worker("celery", tmp_path, concurrency=2, **env),
        CeleryProcess(
            ["beat", "-s", str(tmp_path / "beat-schedule")], child_env(**env), tmp_path / "beat.log"
        ),
    ]
    try:
        yield sandbox_settings
    except BaseException:
        for process in processes:
            print(f"--- {process.log_path}:\n{process.log()[-3000:]}")
        raise
    finally:
        for process in processes:
            process.stop()


def test_the_routing_follows_the_clients_through_a_lambda_throttle_and_back(pipeline):
    sb = pipeline
    orders = Application.objects.get(name="orders")
    lam = sb.client("lambda", "us-east-1")
    # Up and probed: the clients of this vantage are served by us-east-1 (nearest).
    _console_says(orders, "us-east-1", True, time.monotonic())
    client = Client(orders.global_endpoint_url)
    client.start()
    try:
        injected = time.monotonic()
        for function in FUNCTIONS:  # the scenario "throttle-region-functions", by hand
            lam.put_function_concurrency(FunctionName=function, ReservedConcurrentExecutions=0)

        left = client.first("us-west-2", injected)
        seen_out, routing = _console_says(orders, "us-east-1", False, injected)
        assert seen_out - left <= FAILURES * INTERVAL + SLACK, (seen_out - left, routing)
        assert "clients: not serving any vantage" in routing.reason
        assert "probes: /health" in routing.reason and "429" in routing.reason
        west = routing_of(orders)["us-west-2"]
        assert (west.receives_traffic, west.source) == (True, "clients")
        assert west.reason.startswith("clients: served by us-west-2 from ")

        reverted = time.monotonic()
        reverted_at = timezone.now()
        for function in FUNCTIONS:
            lam.delete_function_concurrency(FunctionName=function)

        back = client.first("us-east-1", reverted)
        seen_back, routing = _console_says(orders, "us-east-1", True, reverted)
        assert seen_back - back <= INTERVAL + SLACK, (seen_back - back, routing)
        assert routing.reason.startswith("clients: served by us-east-1 from ")
    finally:
        client.stopped.set()
        client.join(5)

    # AWS's own view is read again once the clients came back, long before Route 53's
    # 30 s polling interval would have: the check's status observed after the return.
    check = Component.objects.get(
        kind=ComponentKind.ROUTE53_HEALTH_CHECK, stack__application=orders, stack__region__code="us-east-1"
    )
    bound = INTERVAL + settings.CONTROLPLANE_ROUTE53_STATUS_CHANGE_INTERVAL + SLACK

    def reread():
        close_old_connections()
        obs = AwsObservation.objects.filter(component=check, kind=ObservationKind.ROUTE53_HEALTH).first()
        return obs if obs and obs.observed_at > reverted_at + timedelta(seconds=back - reverted) else None

    obs = wait_for(reread, bound + 5, interval=0.1, message="Route 53's status to be read again")
    assert obs.state == "healthy"
    assert (obs.observed_at - reverted_at).total_seconds() - (back - reverted) <= bound
    region = next(r for r in monitoring.load_picture(application_ids=[orders.pk])[orders.pk].status.regions
                  if r.region == "us-east-1")
    assert "unhealthy in AWS" not in region.reason
