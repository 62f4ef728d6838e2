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
    ErrorClass,
    HealthSample,
    LagMethod,
    LagSample,
    ProbeTargetKind,
    Region,
    Stack,
)

STATUS = reverse("api-status")
# token, token's last_used_at update, user perms, group perms, the status loader's
# four, applications, latest lag per pair
MAX_QUERIES = 10


def add_samples(stack, *, ok=True, count=3, now=None, vantage="us-east-1"):
    now = now or timezone.now()
    HealthSample.objects.bulk_create(
        HealthSample(
            stack=stack,
            application_id=stack.application_id,
            target=ProbeTargetKind.STACK_HEALTH,
            vantage=vantage,
            at=now - timedelta(seconds=2 * i),
            ok=ok,
            status_code=200 if ok else 503,
            latency_ms=11.0 if ok else 30.0,
            error_class="" if ok else ErrorClass.HTTP_5XX,
        )
        for i in range(count)
    )


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
        HealthSample.objects.bulk_create(
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
    assert east["replication"] == {"status": "healthy", "reason": "lag ≤ 1.2 s"}
    assert west["status"] == "unhealthy"
    assert west["in_rotation"] is False
    assert west["replication"]["status"] == "unhealthy"
    assert west["health"]["status_code"] == 503
    # latest per pair, whatever the method
    assert app["lag"] == [
        {"source_region": "us-west-2", "receiving_region": "us-east-1", "lag_seconds": 1.2,
         "method": "canary", "at": app["lag"][0]["at"], "replicated": True},
        {"source_region": "us-east-1", "receiving_region": "us-west-2", "lag_seconds": 30.0,
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
        "status": "unknown", "reason": "no sample for over 1 min", "last_sample_at": None,
        "status_code": None, "latency_ms": None,
    }


def test_console_session_also_reads_the_status(client_for, viewer):
    populate()

    assert client_for(viewer).get(STATUS).status_code == 200


def test_status_is_get_only(client, viewer_token):
    response = client.post(STATUS, headers={"Authorization": f"Bearer {viewer_token}"})

    assert response.status_code == 405
    assert response["Allow"] == "GET"


def test_query_count_does_not_grow_with_the_inventory(client, viewer_token):
    populate(1)
    get(client, viewer_token)  # the first use updates last_used_at
    with CaptureQueriesContext(connection) as small:
        assert get(client, viewer_token).status_code == 200

    populate(10, ("us-east-1", "us-west-2", "eu-central-1", "ap-south-1"), prefix="svc")
    assert Stack.objects.count() == 42
    with CaptureQueriesContext(connection) as large:
        response = get(client, viewer_token)
    assert len(response.json()["applications"]) == 11

    assert len(large) == len(small) <= MAX_QUERIES


def test_query_count_is_pinned(client, viewer_token, django_assert_max_num_queries):
    populate(3)

    with django_assert_max_num_queries(MAX_QUERIES):
        assert get(client, viewer_token).status_code == 200
