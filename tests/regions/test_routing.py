"""Effective routing (regions/routing.py): pure rules, and the sandbox's faults seen
through the stored configuration and observations."""

import pytest
from django.utils import timezone

from regions import aws_health, drift, monitoring
from regions.aws_health import Obs
from regions.discovery import run_discovery
from regions.models import Application, Architecture, ComponentKind
from regions.routing import ComponentView, Routing, routing_state
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
    assert state["us-west-2"] == Routing(False, "failover secondary: the primary is healthy")

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

    assert verdict == Routing(True, "health check disabled (considered healthy)")


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
    assert state["eu-central-1"] == Routing(False, "traffic dial 0 %")
    assert state["us-west-2"] == Routing(False, "endpoint weight 0")
    assert state["ap-south-1"] == Routing(False, "endpoint unhealthy")
    assert state["sa-east-1"] == Routing(True, "traffic dial 50 %, endpoint healthy")

    components.append(view(5, "sa-east-1", ComponentKind.ARC_ROUTING_CONTROL,
                           routing_control_state=("Off", {})))
    state = routing_state(Architecture.ANYCAST, regions, components)
    assert state["sa-east-1"] == Routing(False, "routing control Off")


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
    assert routing["us-east-1"] == Routing(False, "health check inverted")
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
    assert routing["eu-central-1"] == Routing(False, "traffic dial 0 %")
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
    assert routing["us-west-2"] == Routing(False, "routing control Off")
    assert routing["us-east-1"].receives_traffic
