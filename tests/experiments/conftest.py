from datetime import timedelta

import pytest
from django.utils import timezone

from experiments import plans
from experiments.models import Drill, Scenario
from experiments.scenarios import ensure_builtin_scenarios
from regions.discovery import run_discovery
from regions.models import Application, Architecture, Region, Stack
from tests.experiments.test_views import PLAN
from tests.processes import unique_queue

REGIONS = ["eu-central-1", "us-east-1", "us-west-2"]


@pytest.fixture
def inventory(sandbox_settings, db):
    """The inventory filled from the sandbox, as discovery does it."""
    report = run_discovery(actor="test", regions=REGIONS)
    assert report.warnings == []
    return sandbox_settings


@pytest.fixture
def drill_queue_prefix():
    """What the world's drill queue is named after: by default a queue nobody listens
    on, the test process runs the drills (`runner.run`) itself. A module whose tests
    start a worker on settings.DRILL_QUEUE overrides this fixture."""
    return "nobody-listens"


@pytest.fixture
def world(sandbox_settings, settings, operator, approver, inventory, drill_queue_prefix):
    """The sandbox's inventory discovered, the built-in scenarios, an operator and an
    approver, and a drill queue of this test's own (settings.DRILL_QUEUE) -> the
    sandbox (sandbox_settings)."""
    ensure_builtin_scenarios()
    settings.DRILL_QUEUE = unique_queue(drill_queue_prefix)
    return inventory


@pytest.fixture
def make_drill(operator):
    """A drill row (no plan needed) to hang ledger rows and approvals on."""

    def make(app="orders", region="us-east-1", scenario="throttle-region-functions", **fields):
        application = Application.objects.filter(name=app).first() or Application.objects.create(
            name=app, architecture=Architecture.DNS
        )
        region_row, _ = Region.objects.get_or_create(code=region)
        ensure_builtin_scenarios()  # a transactional test before this one flushed them
        values = {"plan": {"calls": []}, "plan_hash": "0" * 64, "requested_by": operator, **fields}
        return Drill.objects.create(
            scenario=Scenario.objects.get(slug=scenario), application=application, region=region_row,
            **values,
        )

    return make


@pytest.fixture
def plannable(db, monkeypatch):
    """orders (architecture A) has a stack in us-east-1 and any plan can be made (the
    fault library is not under test), so a request reaches the window checks and the
    database without the sandbox."""
    ensure_builtin_scenarios()
    app = Application.objects.create(name="orders", architecture=Architecture.DNS)
    Stack.objects.create(application=app, region=Region.objects.create(code="us-east-1"))
    monkeypatch.setattr(plans, "make_plan", lambda *args: (PLAN, "a" * 64))


@pytest.fixture
def deadline():
    return timezone.now() + timedelta(minutes=10)

