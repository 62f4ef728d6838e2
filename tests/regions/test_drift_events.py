"""Drift told to the notification channels (regions.drift_events.report_drift, run by the
beat task refresh_live_config): a fault left on is told once however many passes see it,
again when it clears and comes back, never when a drill's own fault; constant queries
per pass."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from controlplane.events import EventKind, event_happened
from regions import drift_events, tasks
from regions.discovery import run_discovery
from regions.models import Application, Component, ComponentKind, Region, ReportedDrift, Stack
from tests.regions.test_drift import REGIONS, _concurrency, _drill, _group


@pytest.fixture
def told():
    """The DRIFT_FOUND events sent (once their transaction commits), as (summary, payload)."""
    events = []

    def receiver(sender, kind, summary, payload, **kwargs):
        if kind == EventKind.DRIFT_FOUND:
            events.append((summary, payload))

    event_happened.connect(receiver)
    yield events
    event_happened.disconnect(receiver)


@pytest.fixture
def beat(django_capture_on_commit_callbacks):
    """One beat pass (the task: the live configuration read again, then drift reported),
    or with `report_only` the report alone; as committed (test transactions never are)."""

    def run(report_only=False):
        with django_capture_on_commit_callbacks(execute=True):
            if report_only:
                drift_events.report_drift()
            else:
                tasks.refresh_live_config()

    return run


@pytest.mark.sandbox
@pytest.mark.django_db
def test_a_fault_left_on_is_told_once_and_again_after_it_clears_and_comes_back(
    sandbox_settings, told, beat
):
    sb = sandbox_settings
    run_discovery(actor="test", regions=REGIONS)
    beat()
    assert told == []  # a clean world tells nothing

    _concurrency(sb)  # reserved concurrency 0 on orders-api, us-east-1, through boto3
    beat()
    beat()

    (event,) = told
    summary, payload = event
    assert summary == (
        "drift in orders us-east-1: Lambda orders-api has reserved concurrency 0 "
        "(undo: DeleteFunctionConcurrency)"
    )
    assert payload["application"] == "orders"
    assert payload["region"] == "us-east-1"
    component = Component.objects.select_related("stack__application", "stack__region").get(
        pk=payload["component"]
    )
    assert (component.kind, component.config["FunctionName"]) == (ComponentKind.LAMBDA_FUNCTION, "orders-api")
    assert (component.stack.application.name, component.stack.region.code) == ("orders", "us-east-1")
    assert payload["undo"] == {
        "service": "lambda", "region": "us-east-1", "operation": "DeleteFunctionConcurrency",
        "parameters": {"FunctionName": "orders-api"},
    }
    (row,) = ReportedDrift.objects.all()
    assert row.cleared_at is None and row.last_seen > row.first_seen

    sb.client("lambda", "us-east-1").delete_function_concurrency(FunctionName="orders-api")
    beat()
    row.refresh_from_db()
    assert row.cleared_at is not None
    assert len(told) == 1  # nothing told on clear

    _concurrency(sb)
    beat()
    beat()

    assert [s for s, _ in told] == [summary, summary]
    assert ReportedDrift.objects.filter(cleared_at__isnull=True).count() == 1
    assert ReportedDrift.objects.count() == 2


@pytest.mark.sandbox
@pytest.mark.django_db
def test_a_drill_s_own_fault_is_not_told(sandbox_settings, told, operator, beat):
    from experiments import ledger
    from experiments.faults import REGISTRY, Target
    from experiments.models import DrillState, FaultKind

    sb = sandbox_settings
    run_discovery(actor="test", regions=REGIONS)
    app = Application.objects.get(name="payments")
    group = Component.objects.select_related("stack__region", "stack__application").get(
        kind=ComponentKind.GA_ENDPOINT_GROUP, stack__application=app, stack__region__code="eu-central-1"
    )
    drill = _drill(operator, app, group.stack.region, DrillState.RUNNING)
    compensation = ledger.inject(
        drill, REGISTRY[FaultKind.GA_TRAFFIC_DIAL], Target.from_component(group),
        deadline=timezone.now() + timedelta(minutes=5),
    )
    assert _group(sb)["TrafficDialPercentage"] == 0  # on in AWS (boto3)
    beat()
    beat()

    assert ledger.revert(compensation) == ""
    type(drill).objects.filter(pk=drill.pk).update(state=DrillState.PASSED, finished_at=timezone.now())
    beat(report_only=True)  # the evidence still shows the dial at 0, read before the revert
    beat()

    assert told == []
    assert not ReportedDrift.objects.exists()


def _inverted_checks(count):
    """`count` applications, each with one inverted health check in its last-seen
    configuration (no AWS behind them: only the reporting is under test)."""
    region, _ = Region.objects.get_or_create(code="us-east-1")
    checks = []
    for n in range(count):
        app = Application.objects.create(name=f"app-{count}-{n}", architecture="A")
        checks.append(Component.objects.create(
            stack=Stack.objects.create(application=app, region=region),
            kind=ComponentKind.ROUTE53_HEALTH_CHECK, identifier=f"hc-{count}-{n}",
            config={"Inverted": True}, config_read_at=timezone.now(),
        ))
    return checks


def _queries_of_three_passes(checks, django_capture_on_commit_callbacks):
    """Queries of a pass that tells, one that sees the findings again, one that clears."""
    counts = []
    for change in (None, None, {"Inverted": False}):
        if change:
            Component.objects.filter(pk__in=[c.pk for c in checks]).update(config=change)
        # the listeners run on commit, after the count: their queries are not the pass's
        with django_capture_on_commit_callbacks(execute=True), CaptureQueriesContext(connection) as queries:
            drift_events.report_drift()
        counts.append(len(queries))
    return counts


@pytest.mark.django_db
def test_a_pass_costs_the_same_queries_for_one_application_as_for_twelve(
    told, django_capture_on_commit_callbacks
):
    one = _queries_of_three_passes(_inverted_checks(1), django_capture_on_commit_callbacks)
    assert len(told) == 1
    assert ReportedDrift.objects.filter(cleared_at__isnull=False).count() == 1
    ReportedDrift.objects.all().delete()
    Application.objects.all().delete()

    twelve = _queries_of_three_passes(_inverted_checks(12), django_capture_on_commit_callbacks)

    assert len(told) == 13
    assert ReportedDrift.objects.filter(cleared_at__isnull=False).count() == 12
    assert twelve == one
    assert max(one) <= 12, one


@pytest.mark.django_db
def test_a_fault_left_on_before_a_drill_is_neither_told_again_nor_cleared_by_it(told, operator, beat):
    from experiments.models import DrillState

    (check,) = _inverted_checks(1)
    beat(report_only=True)
    assert len(told) == 1
    drill = _drill(operator, check.stack.application, check.stack.region, DrillState.RUNNING)

    beat(report_only=True)  # the application is being drilled: its faults are deliberate
    assert ReportedDrift.objects.get().cleared_at is None

    type(drill).objects.filter(pk=drill.pk).update(state=DrillState.PASSED, finished_at=timezone.now())
    beat(report_only=True)

    assert len(told) == 1
    assert ReportedDrift.objects.get().cleared_at is None
