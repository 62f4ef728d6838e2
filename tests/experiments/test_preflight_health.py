"""The runner's preflight health check of the other regions, against a real local HTTP
server: a failing region is probed again before the drill is aborted. And its check of
replication lag, against the sandbox: it reads the lag the status shows, no other."""

from datetime import timedelta

import pytest
from aiohttp import web
from django.utils import timezone

from experiments import runner, services
from experiments.models import Drill, DrillStep, Scenario
from experiments.scenarios import ensure_builtin_scenarios
from regions import monitoring, probes
from regions.models import Application, LagSample, Region
from regions.status import HealthStatus
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


# --- the replication lag: the preflight reads the lag the status shows -----------------


@pytest.fixture
def approved(inventory, operator, approver, settings):
    """A drill on orders/us-east-1, requested and approved (never dispatched: the test's
    transaction is rolled back, so nothing is sent on commit), its DrillRun."""
    ensure_builtin_scenarios()
    drill = services.request(
        user=operator, scenario=Scenario.objects.get(slug="fail-region-health-check"),
        application=Application.objects.get(name="orders"), region=Region.objects.get(code="us-east-1"),
    )
    services.approve(drill, approver, comment="go")
    yield runner.DrillRun(Drill.objects.select_related("scenario", "application", "region").get(pk=drill.pk))
    probes.close_engine()


def _lag(app, seconds_ago, lag_ms, method="canary", replicated=True):
    return LagSample.objects.create(
        application=app, source_region="us-east-1", receiving_region="us-west-2",
        at=timezone.now() - timedelta(seconds=seconds_ago), lag_ms=lag_ms, method=method,
        replicated=replicated,
    )


def _status_of_replication(app):
    status = monitoring.load_picture(application_ids=[app.pk], aws_view=False)[app.pk].status
    return next(r for r in status.regions if r.region == "us-west-2").replication


@pytest.mark.sandbox
@pytest.mark.django_db
def test_a_lag_of_minutes_ago_that_the_status_no_longer_shows_does_not_stop_the_preflight(approved):
    app = approved.application
    # 66.8 s measured while replication was paused (the period's maximum), then the
    # canary after the resume: 0.3 s. The preflight used to abort on the 66.8 s.
    _lag(app, 90, 66800, method="metric")
    _lag(app, 60, 300)
    assert (_status_of_replication(app).status, _status_of_replication(app).reason) == (
        HealthStatus.HEALTHY, "lag ≤ 0.3 s"
    )

    approved.preflight()

    step = DrillStep.objects.filter(drill=approved.drill).latest("pk")
    assert step.message.startswith("Preflight passed: us-west-2 healthy")


@pytest.mark.sandbox
@pytest.mark.django_db
@pytest.mark.parametrize("lag_ms, replicated", [(4200, True), (10000, False)])
def test_the_preflight_stops_on_the_lag_the_status_shows_in_its_words(approved, lag_ms, replicated):
    app = approved.application
    _lag(app, 60, 300)
    _lag(app, 0, lag_ms, replicated=replicated)
    verdict = _status_of_replication(app)
    assert verdict.status == (HealthStatus.DEGRADED if replicated else HealthStatus.UNHEALTHY)

    with pytest.raises(runner.Stop) as stop:
        approved.preflight()

    assert stop.value.state == "aborted"
    if replicated:
        assert stop.value.reason == f"Preflight: replication into us-west-2: {verdict.reason}"
        assert verdict.reason == "lag 4.2 s > 2 s threshold from us-east-1"
    else:  # an outage's lag grows between the two reads: the same words, a later figure
        assert stop.value.reason.startswith("Preflight: replication into us-west-2: replication outage: ")
        assert verdict.reason.startswith("replication outage: canary from us-east-1 not replicated for 10.")
        assert stop.value.reason[len("Preflight: replication into us-west-2: "):][:60] == verdict.reason[:60]
