"""AWS's own view (regions/aws_health.py): polled from the sandbox, stored, folded into
the status; Route 53 GetHealthCheckStatus at most every 30 s per healthy check, at every
poll for one seen unhealthy."""

from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane import aws
from regions import aws_health, monitoring
from regions.aws_health import Obs
from regions.discovery import run_discovery
from regions.models import Application, AwsObservation, ComponentKind, ObservationKind
from regions.routing import ComponentView
from regions.status import HealthStatus, RegionStatus, Verdict, rollup_regions
from tests.sandbox_support import wait_for

REGIONS = ["eu-central-1", "us-east-1", "us-west-2"]


def count_calls(service, operation, region="us-east-1"):
    """A list that grows by one per `operation` call made by clients created afterwards
    (a botocore event hook on the factory's session, not a mock)."""
    calls = []
    aws.session_for(region).events.register(
        f"provide-client-params.{service}.{operation}", lambda **kwargs: calls.append(kwargs.get("params"))
    )
    return calls


# --- pure ------------------------------------------------------------------------


def region(stack_id, name, status=HealthStatus.HEALTHY, reason="200 from /health"):
    verdict = Verdict(status, reason)
    return RegionStatus(stack_id, name, status, reason, verdict, Verdict(HealthStatus.HEALTHY, "ok"))


def test_an_alarm_in_alarm_makes_a_healthy_region_degraded_with_its_name():
    now = timezone.now()
    regions = [region(1, "us-east-1"), region(2, "us-west-2")]
    status, reason = rollup_regions(regions)
    from regions.status import ApplicationStatus

    app = ApplicationStatus(7, status, reason, regions)
    alarm = ComponentView(
        10, 7, 1, "us-east-1", ComponentKind.CLOUDWATCH_ALARM, "arn:alarm", "orders-5xx", {},
        {ObservationKind.ALARM_STATE: Obs(ObservationKind.ALARM_STATE, "ALARM", {}, now)},
    )

    result = aws_health.apply_observations(app, aws_health.observation_reasons([alarm], now))

    east, west = result.regions
    assert east.status == HealthStatus.DEGRADED
    assert east.reason == "alarm orders-5xx in ALARM"
    assert west.status == HealthStatus.HEALTHY
    assert result.status == HealthStatus.DEGRADED
    assert "us-east-1 degraded: alarm orders-5xx in ALARM" in result.reason


def test_stale_observations_say_nothing():
    now = timezone.now()
    check = ComponentView(
        10, 7, 1, "us-east-1", ComponentKind.ROUTE53_HEALTH_CHECK, "hc-1", "", {},
        {ObservationKind.ROUTE53_HEALTH: Obs(
            ObservationKind.ROUTE53_HEALTH, "unhealthy", {}, now - timedelta(minutes=5)
        )},
    )

    assert aws_health.observation_reasons([check], now, timedelta(seconds=60)) == {}
    assert aws_health.observation_reasons([check], now)[1][0].startswith("Route 53 health check hc-1")


# --- against the sandbox -----------------------------------------------------------

@pytest.mark.sandbox
@pytest.mark.django_db
def test_poll_stores_every_source_from_the_sandbox(sandbox_settings):
    run_discovery(actor="test", regions=REGIONS)

    counts = aws_health.poll()

    assert counts[ObservationKind.ROUTE53_HEALTH] == 2  # orders: two regions
    assert counts[ObservationKind.GA_ENDPOINT_HEALTH] == 2  # payments: two groups
    assert counts[ObservationKind.ROUTING_CONTROL_STATE] == 4
    assert counts[ObservationKind.REPLICA_STATUS] == 4
    assert counts[ObservationKind.ALARM_STATE] >= 4
    states = dict(
        AwsObservation.objects.filter(
            component__stack__application__name="orders", component__stack__region__code="us-east-1"
        ).values_list("kind", "state")
    )
    assert states[ObservationKind.ROUTE53_HEALTH] == "healthy"
    assert states[ObservationKind.ROUTING_CONTROL_STATE] == "On"
    assert states[ObservationKind.REPLICA_STATUS] == "ACTIVE"
    check = AwsObservation.objects.filter(kind=ObservationKind.ROUTE53_HEALTH).first()
    assert set(check.detail["checkers"]) == {"us-east-1", "us-west-2", "eu-west-1"}
    assert AwsObservation.objects.get(
        kind=ObservationKind.GA_ENDPOINT_HEALTH, component__stack__region__code="eu-central-1"
    ).state in ("healthy", "initial")


@pytest.mark.sandbox
@pytest.mark.django_db
def test_route53_status_is_asked_at_most_every_30_seconds(sandbox_settings, settings):
    run_discovery(actor="test", regions=REGIONS)
    calls = count_calls("route53", "GetHealthCheckStatus")

    aws_health.poll()
    assert len(calls) == 2
    aws_health.poll()  # within the 30 s window: served from the stored observation
    assert len(calls) == 2
    aws_health.poll(now=timezone.now() + timedelta(seconds=31))
    assert len(calls) == 4

    settings.CONTROLPLANE_ROUTE53_STATUS_MIN_INTERVAL = 0  # a setting: every poll asks
    aws_health.poll(now=timezone.now() + timedelta(seconds=32))
    assert len(calls) == 6


@pytest.mark.sandbox
@pytest.mark.django_db
def test_a_check_seen_unhealthy_is_asked_at_every_poll_so_its_recovery_shows_at_the_next(sandbox_settings):
    from regions.models import Component

    run_discovery(actor="test", regions=REGIONS)
    orders = Application.objects.get(name="orders")
    check = Component.objects.get(
        stack__application=orders, stack__region__code="us-east-1", kind=ComponentKind.ROUTE53_HEALTH_CHECK
    )
    aws_health.poll(application_ids=[orders.pk])
    # As stored while a fault was on: Route 53 said unhealthy at the last poll.
    stored = AwsObservation.objects.filter(component=check, kind=ObservationKind.ROUTE53_HEALTH)
    stored.update(state="unhealthy")
    calls = count_calls("route53", "GetHealthCheckStatus")

    aws_health.poll(application_ids=[orders.pk])  # well within 30 s of the last ask

    assert [call["HealthCheckId"] for call in calls] == [check.identifier]  # not the healthy ones
    assert stored.get().state == "healthy"
    aws_health.poll(application_ids=[orders.pk])
    assert len(calls) == 1  # healthy again: asked at most every 30 s


@pytest.mark.sandbox
@pytest.mark.django_db
def test_an_inverted_check_degrades_the_region_with_route53s_reason(sandbox_settings, settings):
    sb = sandbox_settings
    settings.CONTROLPLANE_ROUTE53_STATUS_MIN_INTERVAL = 0
    run_discovery(actor="test", regions=REGIONS)
    orders = Application.objects.get(name="orders")
    check_id = sb.stack("orders", "us-east-1").health_check_id

    sb.client("route53", "us-east-1").update_health_check(HealthCheckId=check_id, Inverted=True)

    def east_region():
        aws_health.poll(application_ids=[orders.pk])
        picture = monitoring.load_picture(application_ids=[orders.pk])[orders.pk]
        east = next(r for r in picture.status.regions if r.region == "us-east-1")
        return east if "Route 53 health check" in east.reason else None

    east = wait_for(east_region, 20, "Route 53 to see the inverted check", interval=0.2)
    assert east.status in (HealthStatus.DEGRADED, HealthStatus.UNHEALTHY)
    assert f"Route 53 health check {check_id} (inverted) unhealthy in AWS" in east.reason


def test_route53_verdict_applies_route53_s_share_of_healthy_checkers():
    from regions.aws_health import route53_verdict

    def obs(*statuses):
        return [{"Region": f"r{i}", "StatusReport": {"Status": s}} for i, s in enumerate(statuses)]

    # healthy while more than 18 % of the checkers report success
    assert route53_verdict(obs("Success: 200", *["Failure: 503"] * 4))[0] == "healthy"  # 20 %
    state, detail = route53_verdict(obs("Success: 200", *["Failure: 503"] * 5))  # 16.7 %
    assert (state, detail["healthy_checkers"], detail["checkers_total"]) == ("unhealthy", 1, 6)
    assert route53_verdict([])[0] == "unknown"
