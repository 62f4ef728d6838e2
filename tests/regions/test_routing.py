"""Effective routing (regions/routing.py): pure rules, and the sandbox's faults seen
through the stored configuration and observations."""

from datetime import timedelta

import pytest
from django.utils import timezone

from regions import aws_health, drift, monitoring
from regions.aws_health import Obs
from regions.discovery import run_discovery
from regions.models import Application, Architecture, ComponentKind
from regions.routing import ComponentView, Routing, follow_clients, routing_state
from regions.status import HealthStatus, Sample, Thresholds, Track, Verdict
from tests.sandbox_support import wait_for

REGIONS = ["eu-central-1", "us-east-1", "us-west-2"]
NOW = timezone.now()


def view(pk, region, kind, identifier="", config=None, **observations):
    obs = {k: Obs(k, state, detail, NOW) for k, (state, detail) in observations.items()}
    return ComponentView(pk, 1, pk, region, kind, identifier or str(pk), "", config or {}, obs)


def record(pk, region, check_id, **config):
    return view(pk, region, ComponentKind.ROUTE53_RECORD, config={"HealthCheckId": check_id, **config})


def check(pk, region, check_id, state, **config):
    return view(pk, region, ComponentKind.ROUTE53_HEALTH_CHECK, check_id, config,
                route53_health=(state, {"checkers": {"us-east-1": "Failure: x"}}))


# --- pure ------------------------------------------------------------------------


def test_failover_secondary_receives_traffic_only_while_the_primary_is_unhealthy():
    components = [
        record(1, "us-east-1", "a", Failover="PRIMARY"), check(2, "us-east-1", "a", "healthy"),
        record(3, "us-west-2", "b", Failover="SECONDARY"), check(4, "us-west-2", "b", "healthy"),
    ]
    state = routing_state(Architecture.DNS, ["us-east-1", "us-west-2"], components)
    assert state["us-east-1"].receives_traffic
    assert state["us-west-2"][:2] == (False, "failover secondary: the primary is healthy")
    assert state["us-west-2"].at == NOW  # when AWS said so: the check's observation

    components[1] = check(2, "us-east-1", "a", "unhealthy")
    state = routing_state(Architecture.DNS, ["us-east-1", "us-west-2"], components)
    assert state["us-east-1"].receives_traffic is False
    assert state["us-west-2"].receives_traffic


def test_weight_zero_and_fail_open():
    components = [
        record(1, "us-east-1", "a", Weight=0), check(2, "us-east-1", "a", "healthy"),
        record(3, "us-west-2", "b", Weight=100), check(4, "us-west-2", "b", "healthy"),
    ]
    state = routing_state(Architecture.DNS, ["us-east-1", "us-west-2"], components)
    assert state["us-east-1"] == Routing(False, "record weight 0")

    unhealthy = [
        record(1, "us-east-1", "a"), check(2, "us-east-1", "a", "unhealthy"),
        record(3, "us-west-2", "b"), check(4, "us-west-2", "b", "unhealthy"),
    ]
    state = routing_state(Architecture.DNS, ["us-east-1", "us-west-2"], unhealthy)
    assert all(r.receives_traffic for r in state.values())
    assert "fails open" in state["us-east-1"].reason


def test_a_disabled_check_counts_as_healthy():
    components = [record(1, "us-east-1", "a"), check(2, "us-east-1", "a", "unhealthy", Disabled=True)]

    (verdict,) = routing_state(Architecture.DNS, ["us-east-1"], components).values()

    assert verdict[:2] == (True, "health check disabled (considered healthy)")


def test_anycast_dial_weight_health_and_routing_control():
    def group(pk, region, dial=100, weight=128, health="HEALTHY"):
        return view(pk, region, ComponentKind.GA_ENDPOINT_GROUP, ga_endpoint_health=(
            "x", {"TrafficDialPercentage": dial, "endpoints": [{"Weight": weight, "HealthState": health}]}
        ))

    regions = ["eu-central-1", "us-west-2", "ap-south-1", "sa-east-1"]
    components = [
        group(1, "eu-central-1", dial=0), group(2, "us-west-2", weight=0),
        group(3, "ap-south-1", health="UNHEALTHY"), group(4, "sa-east-1", dial=50),
    ]
    state = routing_state(Architecture.ANYCAST, regions, components)
    assert state["eu-central-1"] == Routing(False, "traffic dial 0 %", "aws", NOW)
    assert state["us-west-2"] == Routing(False, "endpoint weight 0", "aws", NOW)
    assert state["ap-south-1"] == Routing(False, "endpoint unhealthy", "aws", NOW)
    assert state["sa-east-1"] == Routing(True, "traffic dial 50 %, endpoint healthy", "aws", NOW)

    components.append(view(5, "sa-east-1", ComponentKind.ARC_ROUTING_CONTROL,
                           routing_control_state=("Off", {})))
    state = routing_state(Architecture.ANYCAST, regions, components)
    assert state["sa-east-1"] == Routing(False, "routing control Off", "aws", NOW)


# --- pure: the clients' view first ------------------------------------------------

T = Thresholds()  # stale after 3 x 2 s
HEALTHY = Verdict(HealthStatus.HEALTHY, "200 from /health in 3 ms")
FAILING = Verdict(HealthStatus.UNHEALTHY, "3 consecutive 429 from /health")


def clients(*served, ago=1.0, code=200):
    """{vantage: Track} of the global endpoint: the latest probe from each vantage."""
    at = NOW - timedelta(seconds=ago)
    return {
        f"v{i}": Track(HealthStatus.HEALTHY, 1, None, Sample(at, code < 400, code, 20.0, "", region))
        for i, region in enumerate(served)
    }


def test_the_region_serving_the_clients_receives_traffic_whatever_aws_still_says():
    aws = {"us-east-1": Routing(False, "Route 53 health check unhealthy (0 of 3 checkers healthy)",
                                at=NOW - timedelta(seconds=20)),
           "us-west-2": Routing(True, "health check healthy", at=NOW - timedelta(seconds=20))}

    state = follow_clients(aws, {"us-east-1": HEALTHY, "us-west-2": HEALTHY},
                           clients("us-east-1", "us-east-1"), T, NOW)

    east = state["us-east-1"]
    assert (east.receives_traffic, east.source, east.at) == (True, "clients", NOW - timedelta(seconds=1))
    assert east.reason == (
        "clients: served by us-east-1 from 2 vantages (v0, v1), 1.0 s ago; AWS: Route 53 health check "
        "unhealthy (0 of 3 checkers healthy), as of 20 s ago (behind the clients)"
    )
    # us-west-2 serves none of these clients but is healthy: AWS decides, both facts said
    west = state["us-west-2"]
    assert (west.receives_traffic, west.source) == (True, "aws")
    assert west.reason == (
        "AWS: health check healthy, as of 20 s ago; clients: not serving any vantage "
        "(2 vantages (v0, v1) served by us-east-1), 1.0 s ago"
    )


def test_a_failing_region_the_clients_have_left_receives_no_traffic_before_aws_says_so():
    aws = {"us-east-1": Routing(True, "health check healthy", at=NOW - timedelta(seconds=25))}

    state = follow_clients(aws, {"us-east-1": FAILING, "us-west-2": HEALTHY}, clients("us-west-2"), T, NOW)

    east = state["us-east-1"]
    assert (east.receives_traffic, east.source) == (False, "clients")
    assert east.reason == (
        "clients: not serving any vantage (v0 served by us-west-2), 1.0 s ago; probes: /health 3 "
        "consecutive 429 from /health; AWS: health check healthy, as of 25 s ago (behind the clients)"
    )
    assert state["us-west-2"][:3] == (True, "clients: served by us-west-2 from v0, 1.0 s ago", "clients")


def test_clients_sent_to_a_failing_region_still_count_as_its_traffic():
    state = follow_clients({}, {"us-east-1": FAILING}, clients("us-east-1", code=429), T, NOW)

    reason = "clients: sent to us-east-1 from v0, answered 429, 1.0 s ago"
    assert state["us-east-1"][:3] == (True, reason, "clients")


def test_stale_client_probes_say_nothing_and_a_region_nobody_knows_of_is_left_out():
    aws = {"us-east-1": Routing(False, "traffic dial 0 %", at=NOW)}
    health = {"us-east-1": HEALTHY, "us-west-2": FAILING}

    state = follow_clients(aws, health, clients("us-east-1", ago=7), T, NOW)

    assert state == {"us-east-1": Routing(False, "AWS: traffic dial 0 %, as of 0.0 s ago", "aws", NOW)}


# --- against the sandbox -----------------------------------------------------------


def refreshed_routing(app, settings):
    settings.CONTROLPLANE_ROUTE53_STATUS_MIN_INTERVAL = 0
    drift.refresh_live_config(application_ids=[app.pk])
    aws_health.poll(application_ids=[app.pk])
    return monitoring.load_picture(application_ids=[app.pk])[app.pk].routing


@pytest.mark.sandbox
@pytest.mark.django_db
def test_an_inverted_health_check_takes_us_east_1_of_orders_out(sandbox_settings, settings):
    sb = sandbox_settings
    run_discovery(actor="test", regions=REGIONS)
    orders = Application.objects.get(name="orders")
    assert all(r.receives_traffic for r in refreshed_routing(orders, settings).values())

    sb.client("route53", "us-east-1").update_health_check(
        HealthCheckId=sb.stack("orders", "us-east-1").health_check_id, Inverted=True
    )

    routing = wait_for(
        lambda: (r := refreshed_routing(orders, settings))["us-east-1"].receives_traffic is False and r,
        20, "Route 53's checkers to see the inverted check", interval=0.2,
    )
    assert routing["us-east-1"][::2] == (False, "aws")
    assert routing["us-east-1"].reason.startswith("AWS: health check inverted, as of ")
    assert routing["us-west-2"].receives_traffic


@pytest.mark.sandbox
@pytest.mark.django_db
def test_a_traffic_dial_of_zero_takes_the_payments_region_out(sandbox_settings, settings):
    sb = sandbox_settings
    run_discovery(actor="test", regions=REGIONS)
    payments = Application.objects.get(name="payments")

    sb.client("globalaccelerator", "us-west-2").update_endpoint_group(
        EndpointGroupArn=sb.stack("payments", "eu-central-1").endpoint_group_arn, TrafficDialPercentage=0
    )

    routing = refreshed_routing(payments, settings)
    assert routing["eu-central-1"].receives_traffic is False
    assert routing["eu-central-1"].reason.startswith("AWS: traffic dial 0 %, as of ")
    assert routing["us-west-2"].receives_traffic


@pytest.mark.sandbox
@pytest.mark.django_db
def test_a_routing_control_off_takes_the_region_out(sandbox_settings, settings):
    sb = sandbox_settings
    run_discovery(actor="test", regions=REGIONS)
    orders = Application.objects.get(name="orders")

    sb.client("route53-recovery-cluster", "us-west-2").update_routing_control_state(
        RoutingControlArn=sb.stack("orders", "us-west-2").routing_control_arn, RoutingControlState="Off"
    )

    routing = refreshed_routing(orders, settings)
    assert routing["us-west-2"].receives_traffic is False
    assert routing["us-west-2"].reason.startswith("AWS: routing control Off, as of ")
    assert routing["us-east-1"].receives_traffic
