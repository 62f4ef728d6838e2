from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from regions.charts import MAX_POINTS
from regions.models import (
    Application,
    Architecture,
    Component,
    ComponentKind,
    ErrorClass,
    HealthRollup,
    LagMethod,
    LagRollup,
    LagSample,
    ProbeTargetKind,
    Region,
    Stack,
)
from tests.regions.samples import add_stack_samples

# session, user, user perms, group perms, roles, stack, the status loader's six
# (applications, stacks, target states, lag, components with their observations, live
# drills), last failures, components, siblings, heartbeats (base.html's footer)
MAX_QUERIES = 16
# session, user, user perms, group perms, stack, the status loader's six, roles
MAX_NOW_QUERIES = 12
# session, user, user perms, group perms, stack, health series, lag series
MAX_SERIES_QUERIES = 8
LAMBDA_ARN = "arn:aws:lambda:us-east-1:123456789012:function:orders-api-handler"


@pytest.fixture
def stack(db):
    app = Application.objects.create(
        name="orders", display_name="Orders API", architecture=Architecture.DNS
    )
    east = Region.objects.create(code="us-east-1", account_id="123456789012")
    west = Region.objects.create(code="us-west-2")
    Stack.objects.create(application=app, region=west)
    return Stack.objects.create(
        application=app,
        region=east,
        health_url="https://api.us-east-1.orders.example.com/health",
        in_rotation=False,
        discovered_at=timezone.now(),
    )


def add_components(stack, count):
    kinds = list(ComponentKind)
    for i in range(count):
        Component.objects.create(
            stack=stack,
            kind=kinds[i % len(kinds)],
            identifier=f"{LAMBDA_ARN}-{i}",
            name=f"component-{i}",
            config={"MemorySize": 512, "ReservedConcurrency": None, "index": i},
        )


def url(stack):
    return reverse("regions:stack", args=[stack.application.name, stack.region.code])


def test_stack_page_shows_details_and_rotation(client_for, viewer, stack):
    response = client_for(viewer).get(url(stack))

    html = response.content.decode()
    assert response.status_code == 200
    assert "Orders API" in html
    assert "us-east-1" in html
    assert "https://api.us-east-1.orders.example.com/health" in html
    assert "out of rotation" in html
    assert "badge--gray" in html
    assert "HX-Request" in response["Vary"]


def test_stack_page_links_to_the_other_regions(client_for, viewer, stack):
    html = client_for(viewer).get(url(stack)).content.decode()

    assert reverse("regions:stack", args=["orders", "us-west-2"]) in html
    assert reverse("regions:application", args=["orders"]) in html


def test_components_table_shows_kind_name_arn_and_config(client_for, viewer, stack):
    Component.objects.create(
        stack=stack,
        kind=ComponentKind.LAMBDA_FUNCTION,
        identifier=LAMBDA_ARN,
        name="orders-api-handler",
        config={"MemorySize": 512, "Runtime": "python3.12"},
    )

    html = client_for(viewer).get(url(stack)).content.decode()

    assert "Lambda function" in html
    assert "orders-api-handler" in html
    assert LAMBDA_ARN in html
    assert "<details>" in html
    assert "&quot;MemorySize&quot;: 512" in html


def test_stack_without_components_says_so(client_for, viewer, stack):
    html = client_for(viewer).get(url(stack)).content.decode()

    assert "No component is known for this stack" in html


def test_unknown_application_or_region_is_404(client_for, viewer, stack):
    client = client_for(viewer)

    assert client.get(reverse("regions:stack", args=["nope", "us-east-1"])).status_code == 404
    assert client.get(reverse("regions:stack", args=["orders", "eu-west-9"])).status_code == 404


def test_404_page_uses_the_console_template(client_for, viewer, stack):
    response = client_for(viewer).get(reverse("regions:stack", args=["nope", "us-east-1"]))

    assert "Nothing here" in response.content.decode()


def test_outsider_gets_403(client_for, outsider, stack):
    response = client_for(outsider).get(url(stack))

    assert response.status_code == 403
    assert "Your role does not allow this" in response.content.decode()


def test_query_count_is_pinned(client_for, viewer, stack, django_assert_max_num_queries):
    add_components(stack, 5)
    client = client_for(viewer)

    with django_assert_max_num_queries(MAX_QUERIES):
        assert client.get(url(stack)).status_code == 200


def test_query_count_does_not_grow_with_the_number_of_components(client_for, viewer, stack):
    client = client_for(viewer)
    add_components(stack, 2)
    with CaptureQueriesContext(connection) as few:
        client.get(url(stack))

    Component.objects.filter(stack=stack).delete()
    add_components(stack, 40)
    with CaptureQueriesContext(connection) as many:
        response = client.get(url(stack))
    assert response.content.decode().count("<details>") == 40

    assert len(many) == len(few) <= MAX_QUERIES


# --- live status, last failures, charts -------------------------------------------


def series_url(stack, window=None):
    base = reverse("regions:series", args=[stack.application.name, stack.region.code])
    return f"{base}?window={window}" if window else base


def add_samples(stack, n, *, latency_ms=15.0, **kw):
    add_stack_samples(stack, n, latency_ms=latency_ms, **kw)


def test_stack_page_shows_status_reason_and_last_failures(client_for, viewer, stack):
    now = timezone.now()
    add_samples(stack, 2, ok=False, now=now, vantage="eu-west-1", latency_ms=2000.0,
                status_code=None, error_class=ErrorClass.TIMEOUT)
    add_samples(stack, 3, ok=False, now=now - timedelta(seconds=60))

    response = client_for(viewer).get(url(stack))

    html = response.content.decode()
    assert response.status_code == 200
    assert 'class="badge badge--red"' in html
    assert "2 consecutive timeouts on /health" in html
    assert "Last failures" in html
    assert html.count("timeout after 2.0 s on /health") == 2
    assert html.count("503 from /health") >= 3
    assert "eu-west-1" in html
    assert "2000 ms" in html


def test_stack_page_has_the_charts_and_the_window_links(client_for, viewer, stack):
    html = client_for(viewer).get(url(stack) + "?window=6h").content.decode()

    assert "vendor/uplot-1.6.32.min.js" in html
    assert "js/charts.js" in html
    assert f'data-series-url="{series_url(stack, "6h")}"' in html
    for window in ("15m", "1h", "6h", "24h", "7d"):
        assert f'href="?window={window}"' in html
    assert 'class="is-current" aria-current="true">6h<' in html
    assert "<script>" not in html and "style=" not in html  # strict CSP


def test_a_bad_window_gets_a_clear_message_not_a_500(client_for, viewer, stack):
    client = client_for(viewer)

    page = client.get(url(stack) + "?window=3y")
    data = client.get(series_url(stack, "3y"))

    assert page.status_code == 400
    assert "Unknown window &#x27;3y&#x27;: choose one of 15m, 1h, 6h, 24h, 7d." in page.content.decode()
    assert data.status_code == 400
    assert data.json()["error"] == "Unknown window '3y': choose one of 15m, 1h, 6h, 24h, 7d."


def test_htmx_poll_gets_only_the_live_partial(client_for, viewer, stack):
    response = client_for(viewer).get(url(stack), headers={"HX-Request": "true"})

    html = response.content.decode()
    assert html.lstrip().startswith('<section id="stack-live"')
    assert "<html" not in html
    assert "HX-Request" in response["Vary"]


def test_short_windows_read_raw_samples_per_vantage(client_for, viewer, stack):
    now = timezone.now()
    add_samples(stack, 30, now=now, vantage="us-east-1", latency_ms=20.0)
    add_samples(stack, 5, now=now, vantage="eu-west-1", ok=False)
    LagSample.objects.bulk_create([
        LagSample(application=stack.application, source_region="us-west-2",
                  receiving_region="us-east-1", at=now - timedelta(seconds=i * 10),
                  lag_ms=1500, method=LagMethod.METRIC)
        for i in range(6)
    ] + [
        LagSample(application=stack.application, source_region="eu-central-1",
                  receiving_region="us-east-1", at=now, lag_ms=30000,
                  method=LagMethod.CANARY, replicated=False),
        # into another region: not this stack's chart
        LagSample(application=stack.application, source_region="us-east-1",
                  receiving_region="us-west-2", at=now, lag_ms=900, method=LagMethod.METRIC),
    ])

    data = client_for(viewer).get(series_url(stack, "15m")).json()

    assert data["source"] == "raw"
    assert data["window"] == "15m"
    assert len(data["x"]) <= MAX_POINTS
    by_vantage = {s["vantage"]: s for s in data["health"]}
    assert set(by_vantage) == {"us-east-1", "eu-west-1"}
    east = by_vantage["us-east-1"]
    assert len(east["ok_ratio"]) == len(data["x"])
    assert {v for v in east["ok_ratio"] if v is not None} == {1.0}
    assert {v for v in east["latency_ms"] if v is not None} == {20.0}
    assert {v for v in by_vantage["eu-west-1"]["ok_ratio"] if v is not None} == {0.0}
    assert sum(v or 0 for v in by_vantage["eu-west-1"]["failed"]) == 5
    lags = {s["source_region"]: s for s in data["lag"]}
    assert set(lags) == {"us-west-2", "eu-central-1"}
    assert {v for v in lags["us-west-2"]["lag_seconds"] if v is not None} == {1.5}
    assert sum(v or 0 for v in lags["eu-central-1"]["not_replicated"]) == 1


@pytest.mark.parametrize("window", ["6h", "24h", "7d"])
def test_long_windows_read_the_rollups_with_a_bounded_number_of_points(client_for, viewer, stack, window):
    now = timezone.now()
    minute = now.replace(second=0, microsecond=0)
    HealthRollup.objects.bulk_create(
        HealthRollup(stack=stack, application_id=stack.application_id,
                     target=ProbeTargetKind.STACK_HEALTH, vantage="us-east-1",
                     minute=minute - timedelta(minutes=m), count=30, ok_count=27 if m % 2 else 30,
                     latency_p50_ms=10, latency_max_ms=50, latency_avg_ms=12)
        for m in range(1, 400)
    )
    LagRollup.objects.bulk_create(
        LagRollup(application=stack.application, source_region="us-west-2",
                  receiving_region="us-east-1", minute=minute - timedelta(minutes=m),
                  count=6, avg_lag_ms=800, max_lag_ms=1200)
        for m in range(1, 400)
    )
    add_samples(stack, 5, now=now)  # raw samples are not read for long windows

    data = client_for(viewer).get(series_url(stack, window)).json()

    assert data["source"] == "rollup"
    assert len(data["x"]) <= MAX_POINTS
    assert data["step_seconds"] >= 60
    (health,) = data["health"]
    ratios = [v for v in health["ok_ratio"] if v is not None]
    assert ratios and min(ratios) >= 0.9
    assert {v for v in health["latency_ms"] if v is not None} == {12.0}
    (lag,) = data["lag"]
    assert {v for v in lag["lag_seconds"] if v is not None} == {0.8}
    assert {v for v in lag["max_lag_seconds"] if v is not None} == {1.2}


def test_series_is_login_protected_and_get_only(client, client_for, viewer, outsider, stack):
    assert client.get(series_url(stack)).status_code == 302
    assert client_for(outsider).get(series_url(stack)).status_code == 403
    assert client_for(viewer).post(series_url(stack)).status_code == 405


def test_stack_page_query_count_does_not_grow_with_samples(client_for, viewer, stack):
    client = client_for(viewer)
    add_samples(stack, 3, ok=False)
    with CaptureQueriesContext(connection) as few:
        assert client.get(url(stack)).status_code == 200

    add_samples(stack, 300, ok=False, vantage="eu-west-1", now=timezone.now() - timedelta(seconds=1))
    with CaptureQueriesContext(connection) as many:
        assert client.get(url(stack)).status_code == 200

    assert len(many) == len(few) <= MAX_QUERIES


@pytest.mark.parametrize("window", ["1h", "7d"])
def test_series_query_count_is_pinned(client_for, viewer, stack, window, django_assert_max_num_queries):
    add_samples(stack, 200)
    client = client_for(viewer)

    with django_assert_max_num_queries(MAX_SERIES_QUERIES):
        assert client.get(series_url(stack, window)).status_code == 200


# --- the `now` partial alone (regions:now), which the drill page polls ----------------


def now_url(stack):
    return reverse("regions:now", args=[stack.application.name, stack.region.code])


def test_the_now_partial_alone_states_what_the_stack_page_states(
    client_for, viewer, operator, stack, django_assert_max_num_queries
):
    from experiments.models import DrillState
    from tests.regions.test_one_status import stated
    from tests.regions.test_overview import add_drill, add_lag

    add_samples(stack, 3)
    add_lag(stack.application, "us-west-2", "us-east-1", 700)
    drill = add_drill(stack.application, "us-east-1", DrillState.REVERTING, operator)
    client = client_for(viewer)

    with django_assert_max_num_queries(MAX_NOW_QUERIES):
        response = client.get(now_url(stack), headers={"HX-Request": "true"})

    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html and "Last failures" not in html
    assert set(stated(html)) == {"orders", "orders/us-east-1"}
    assert stated(html)["orders/us-east-1"] == ("healthy", None)
    assert '<span class="lag-figure">0.7 s</span>' in html
    drill_url = reverse("experiments:detail", args=[drill.pk])
    assert f'href="{drill_url}" data-drill="{drill.pk}">drill #{drill.pk} reverting</a>' in html
    page = client.get(url(stack)).content.decode()
    assert stated(page) == stated(html)
    assert html.strip() in page  # the same partial, inside the stack page's live section


def test_the_now_partial_is_404_for_an_unknown_stack_and_403_without_the_role(
    client_for, viewer, outsider, stack
):
    assert client_for(viewer).get(reverse("regions:now", args=["orders", "eu-west-3"])).status_code == 404
    assert client_for(outsider).get(now_url(stack)).status_code == 403
