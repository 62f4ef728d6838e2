"""GET /api/v1/status: every application's computed status, as JSON, by bearer token."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from controlplane.api import issue_token
from regions.models import (
    Application,
    Architecture,
    HealthSample,
    LagMethod,
    LagSample,
    ProbeTargetKind,
    Region,
    Stack,
)
from tests.regions.samples import add_stack_samples, store_samples

STATUS = reverse("api-status")
# token, token's last_used_at update, user perms, group perms, the status loader's seven
# (applications, stacks, target states, lag, components with their observations, live
# drills, last passed drills): the same loader as every console page
MAX_QUERIES = 11


def add_samples(stack, *, ok=True, count=3, now=None, vantage="us-east-1"):
    add_stack_samples(stack, count, ok=ok, now=now, vantage=vantage, latency_ms=11.0 if ok else 30.0)


def populate(n_apps=1, region_codes=("us-east-1", "us-west-2"), prefix="orders"):
    """Applications with stacks, health samples, global-endpoint samples and lag."""
    regions = [Region.objects.get_or_create(code=code)[0] for code in region_codes]
    now = timezone.now()
    apps = []
    for i in range(n_apps):
        app = Application.objects.create(
            name=f"{prefix}-{i}" if i else prefix,
            architecture=Architecture.DNS if i % 2 == 0 else Architecture.ANYCAST,
            global_endpoint_url="https://orders.example.com/",
        )
        for n, region in enumerate(regions):
            stack = Stack.objects.create(application=app, region=region, in_rotation=n == 0)
            add_samples(stack, ok=n == 0, now=now)
        store_samples(
            HealthSample(
                application=app, target=ProbeTargetKind.GLOBAL_ENDPOINT, vantage="us-east-1",
                at=now - timedelta(seconds=2 * k), ok=True, status_code=200, latency_ms=25.0,
                served_region=regions[0].code,
            )
            for k in range(3)
        )
        LagSample.objects.bulk_create([
            LagSample(application=app, source_region=regions[1].code,
                      receiving_region=regions[0].code, at=now - timedelta(seconds=30),
                      lag_ms=900, method=LagMethod.METRIC),
            LagSample(application=app, source_region=regions[1].code,
                      receiving_region=regions[0].code, at=now - timedelta(seconds=5),
                      lag_ms=1200, method=LagMethod.CANARY),
            LagSample(application=app, source_region=regions[0].code,
                      receiving_region=regions[1].code, at=now - timedelta(seconds=5),
                      lag_ms=30000, method=LagMethod.CANARY, replicated=False),
        ])
        apps.append(app)
    return apps


@pytest.fixture
def viewer_token(viewer):
    return issue_token(viewer)[1]


def get(client, token, path=STATUS):
    return client.get(path, headers={"Authorization": f"Bearer {token}"})


def test_status_reports_applications_regions_and_lag(client, viewer_token):
    populate()

    response = get(client, viewer_token)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    data = response.json()
    assert data["generated_at"]
    (app,) = data["applications"]
    assert app["name"] == "orders"
    assert app["architecture"] == "A"
    assert app["status"] == "degraded"
    assert "us-west-2 unhealthy: 3 consecutive 503 from /health" in app["reason"]
    assert app["served_region"] == "us-east-1"
    assert app["global_endpoint"]["status"] == "healthy"
    assert app["drift"] == []
    east, west = app["regions"]
    assert east["region"] == "us-east-1"
    assert east["status"] == "healthy"
    assert east["in_rotation"] is True
    assert east["health"]["status"] == "healthy"
    assert east["health"]["status_code"] == 200
    assert east["health"]["latency_ms"] == 11.0
    assert east["health"]["last_sample_at"]
    assert east["replication"] == {
        "status": "healthy", "reason": "lag ≤ 1.2 s", "lag_seconds": 1.2, "source_region": "us-west-2",
        "method": "canary", "at": east["replication"]["at"],
    }
    assert west["status"] == "unhealthy"
    assert west["in_rotation"] is False
    assert west["replication"]["status"] == "unhealthy"
    # the figure behind the outage: the age of the canary not replicated, now
    assert 35.0 <= west["replication"]["lag_seconds"] < 40.0
    assert west["replication"]["source_region"] == "us-east-1"
    assert west["health"]["status_code"] == 503
    assert app["drills"] == []
    # latest per pair, whatever the method; a canary not replicated 30 s old 5 s ago is
    # 35 s old now (the lag grows until measured again)
    outage = app["lag"][1].pop("lag_seconds")
    assert 35.0 <= outage < 40.0
    assert west["replication"]["lag_seconds"] == outage  # the region's figure is that lag
    assert app["lag"] == [
        {"source_region": "us-west-2", "receiving_region": "us-east-1", "lag_seconds": 1.2,
         "method": "canary", "at": app["lag"][0]["at"], "replicated": True},
        {"source_region": "us-east-1", "receiving_region": "us-west-2",
         "method": "canary", "at": app["lag"][1]["at"], "replicated": False},
    ]


def test_application_without_samples_is_unknown(client, viewer_token):
    app = Application.objects.create(name="carts", architecture=Architecture.ANYCAST)
    Stack.objects.create(application=app, region=Region.objects.create(code="eu-central-1"))

    (entry,) = get(client, viewer_token).json()["applications"]

    assert entry["status"] == "unknown"
    assert entry["served_region"] is None
    assert entry["global_endpoint"] is None
    assert entry["lag"] == []
    (region,) = entry["regions"]
    assert region["health"] == {
        "status": "unknown", "reason": "no samples yet", "last_sample_at": None,
        "status_code": None, "latency_ms": None,
    }


def test_console_session_also_reads_the_status(client_for, viewer):
    populate()

    assert client_for(viewer).get(STATUS).status_code == 200


def test_status_is_get_only(client, viewer_token):
    response = client.post(STATUS, headers={"Authorization": f"Bearer {viewer_token}"})

    assert response.status_code == 405
    assert response["Allow"] == "GET"


def test_query_count_does_not_grow_with_the_inventory(client, viewer_token, operator):
    from experiments.models import DrillState
    from tests.regions.test_overview import add_drill

    populate(1)
    get(client, viewer_token)  # the first use updates last_used_at
    with CaptureQueriesContext(connection) as small:
        assert get(client, viewer_token).status_code == 200

    apps = populate(10, ("us-east-1", "us-west-2", "eu-central-1", "ap-south-1"), prefix="svc")
    for app in apps[::2]:  # a live drill on every other application
        add_drill(app, "us-west-2", DrillState.RUNNING, operator)
    assert Stack.objects.count() == 42
    with CaptureQueriesContext(connection) as large:
        response = get(client, viewer_token)
    entries = response.json()["applications"]
    assert len(entries) == 11
    assert sum(len(entry["drills"]) for entry in entries) == 5
    for entry in entries:
        east = next(r for r in entry["regions"] if r["region"] == "us-east-1")
        assert east["replication"]["lag_seconds"] == 1.2

    assert len(large) == len(small) <= MAX_QUERIES


def test_query_count_is_pinned(client, viewer_token, django_assert_max_num_queries):
    populate(3)

    with django_assert_max_num_queries(MAX_QUERIES):
        assert get(client, viewer_token).status_code == 200


# --- routing and drift (regions/routing.py, regions/drift.py) -------------------------


def add_routing_components(app, *, inverted_region="us-west-2"):
    """Architecture A components with observations: each stack's record and health
    check (the one in `inverted_region` inverted and unhealthy in Route 53's eyes)."""
    from regions.models import AwsObservation, Component, ComponentKind, ObservationKind

    now = timezone.now()
    for stack in app.stacks.select_related("region"):
        code = stack.region.code
        inverted = code == inverted_region
        check = Component.objects.create(
            stack=stack, kind=ComponentKind.ROUTE53_HEALTH_CHECK, identifier=f"hc-{app.pk}-{code}",
            config={"Inverted": inverted, "Disabled": False},
        )
        Component.objects.create(
            stack=stack, kind=ComponentKind.ROUTE53_RECORD, identifier=f"Z/api/CNAME/{code}",
            config={"HealthCheckId": check.identifier, "Region": code, "SetIdentifier": code},
        )
        AwsObservation.objects.create(
            component=check, kind=ObservationKind.ROUTE53_HEALTH,
            state="unhealthy" if inverted else "healthy",
            detail={"checkers": {"us-east-1": "Failure: Inverted health check" if inverted else "Success"},
                    "healthy_checkers": 0 if inverted else 1, "checkers_total": 1},
            observed_at=now, changed_at=now,
        )


def test_status_reports_routing_and_drift(client, viewer_token):
    (app,) = populate()
    add_routing_components(app)

    (entry,) = get(client, viewer_token).json()["applications"]

    east, west = entry["regions"]
    # the clients (the global endpoint probed from us-east-1) are served by us-east-1;
    # us-west-2 serves none of them and its /health fails; AWS agrees with both
    assert (east["receives_traffic"], east["routing_source"]) == (True, "clients")
    assert east["routing_reason"].startswith("clients: served by us-east-1 from us-east-1, ")
    assert "; AWS: health check healthy, as of " in east["routing_reason"]
    assert (west["receives_traffic"], west["routing_source"]) == (False, "clients")
    assert west["routing_reason"].startswith(
        "clients: not serving any vantage (us-east-1 served by us-east-1), "
    )
    assert "; probes: /health 3 consecutive 503 from /health; AWS: health check inverted, as of " in (
        west["routing_reason"]
    )
    assert "behind" not in west["routing_reason"]
    assert entry["drift"] == [{
        "region": "us-west-2", "component_kind": "route53_health_check",
        "identifier": f"hc-{app.pk}-us-west-2", "what": f"health check hc-{app.pk}-us-west-2 is inverted",
        "undo": {"service": "route53", "region": "us-east-1", "operation": "UpdateHealthCheck",
                 "parameters": {"HealthCheckId": f"hc-{app.pk}-us-west-2", "Inverted": False}},
        "undo_text": (
            f"UpdateHealthCheck HealthCheckId=hc-{app.pk}-us-west-2 Inverted=false (route53 in us-east-1)"
        ),
        "applicable": True,
    }]
    assert "Route 53 health check" in west["reason"]


def test_regions_without_routing_components_nor_clients_say_so(client, viewer_token):
    (app,) = populate()

    (entry,) = get(client, viewer_token).json()["applications"]
    # no routing component: the clients' view alone (the global endpoint's probes)
    assert [r["receives_traffic"] for r in entry["regions"]] == [True, False]
    assert {r["routing_source"] for r in entry["regions"]} == {"clients"}

    Application.objects.filter(pk=app.pk).update(global_endpoint_url="")  # no clients' view either
    (entry,) = get(client, viewer_token).json()["applications"]

    assert entry["regions"][0]["receives_traffic"] is None
    assert entry["regions"][0]["routing_reason"] == "routing not observed yet"
    assert entry["regions"][0]["routing_source"] is None


def test_query_count_stays_constant_with_components_and_observations(client, viewer_token):
    (app,) = populate(1)
    add_routing_components(app)
    get(client, viewer_token)
    with CaptureQueriesContext(connection) as small:
        get(client, viewer_token)

    for other in populate(6, ("us-east-1", "us-west-2", "eu-central-1"), prefix="svc")[1:]:
        add_routing_components(other)
    with CaptureQueriesContext(connection) as large:
        assert len(get(client, viewer_token).json()["applications"]) == 7

    assert len(large) == len(small) <= MAX_QUERIES


@pytest.mark.sandbox
def test_status_returns_drift_and_routing_from_the_sandbox(client, viewer_token, sandbox_settings, settings):
    from regions import aws_health, drift
    from regions.discovery import run_discovery
    from tests.controlplane.test_openapi import validator_for

    sb = sandbox_settings
    settings.CONTROLPLANE_ROUTE53_STATUS_MIN_INTERVAL = 0
    run_discovery(actor="test", regions=["eu-central-1", "us-east-1", "us-west-2"])
    sb.client("globalaccelerator", "us-west-2").update_endpoint_group(
        EndpointGroupArn=sb.stack("payments", "eu-central-1").endpoint_group_arn, TrafficDialPercentage=0
    )
    drift.refresh_live_config()
    aws_health.poll()

    data = get(client, viewer_token).json()

    validator_for("Status").validate(data)
    apps = {a["name"]: a for a in data["applications"]}
    (finding,) = apps["payments"]["drift"]
    assert finding["region"] == "eu-central-1"
    assert finding["component_kind"] == "ga_endpoint_group"
    assert finding["undo"]["operation"] == "UpdateEndpointGroup"
    assert finding["undo"]["parameters"]["TrafficDialPercentage"] == 100
    regions = {r["region"]: r for r in apps["payments"]["regions"]}
    assert regions["eu-central-1"]["receives_traffic"] is False
    assert regions["eu-central-1"]["routing_reason"].startswith("AWS: traffic dial 0 %, as of ")
    assert regions["eu-central-1"]["routing_source"] == "aws"
    assert regions["us-west-2"]["receives_traffic"] is True
    assert apps["orders"]["drift"] == []
    assert all(r["receives_traffic"] for r in apps["orders"]["regions"])
