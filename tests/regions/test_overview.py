import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from kombu.exceptions import OperationalError

from controlplane.models import AuditEvent
from regions import tasks
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
from tests.processes import console_request
from tests.regions.samples import add_stack_samples, store_samples

OVERVIEW = reverse("regions:overview")
# session, user, user perms, group perms, roles (context processor), regions,
# applications, the status loader's seven (applications, stacks, target states, lag
# samples, components with their observations, live drills, last passed drills),
# heartbeats (base.html's footer; not in the htmx partial): a fixed budget whatever the
# inventory holds.
MAX_QUERIES = 15


def add_samples(stack, *, ok=True, count=5, **kw):
    """`count` samples of a stack's /health, 2 s apart, the newest at `now` (12 ms, or 40 ms
    when not ok)."""
    add_stack_samples(stack, count, ok=ok, latency_ms=12.0 if ok else 40.0, **kw)


def add_global_samples(app, served_region, now=None):
    now = now or timezone.now()
    store_samples(
        HealthSample(
            application=app,
            target=ProbeTargetKind.GLOBAL_ENDPOINT,
            vantage="us-east-1",
            at=now - timedelta(seconds=2 * i),
            ok=True,
            status_code=200,
            latency_ms=20.0,
            served_region=served_region,
        )
        for i in range(3)
    )


def make_inventory(n_apps, region_codes):
    regions = [Region.objects.create(code=code) for code in region_codes]
    apps = []
    for i in range(n_apps):
        app = Application.objects.create(
            name=f"app-{i:02d}",
            architecture=Architecture.DNS if i % 2 == 0 else Architecture.ANYCAST,
            owner_team="payments",
        )
        for region in regions:
            Stack.objects.create(application=app, region=region)
        apps.append(app)
    return apps, regions


@pytest.fixture
def inventory(db):
    orders = Application.objects.create(
        name="orders", display_name="Orders API", architecture=Architecture.DNS
    )
    carts = Application.objects.create(name="carts", architecture=Architecture.ANYCAST)
    east = Region.objects.create(code="us-east-1")
    west = Region.objects.create(code="us-west-2")
    eu = Region.objects.create(code="eu-central-1")
    Stack.objects.create(application=orders, region=east)
    Stack.objects.create(application=orders, region=west, in_rotation=False)
    Stack.objects.create(application=carts, region=eu)
    return orders, carts


def test_overview_shows_applications_regions_and_stack_state(client_for, viewer, inventory):
    response = client_for(viewer).get(OVERVIEW)

    assert response.status_code == 200
    html = response.content.decode()
    for text in ("Orders API", "carts", "us-east-1", "us-west-2", "eu-central-1"):
        assert text in html
    assert "badge--gray" in html
    assert "in rotation" in html
    assert "out of rotation" in html
    assert reverse("regions:stack", args=["orders", "us-west-2"]) in html
    assert reverse("regions:application", args=["orders"]) in html


def test_cells_without_a_stack_show_a_dash(client_for, viewer, inventory):
    html = client_for(viewer).get(OVERVIEW).content.decode()

    # orders has no stack in eu-central-1; carts none in the two US regions
    assert html.count('class="no-stack"') == 3


def test_the_grid_polls_the_same_url(client_for, viewer, inventory):
    html = client_for(viewer).get(OVERVIEW).content.decode()

    assert f'hx-get="{OVERVIEW}"' in html
    assert "every 2s" in html
    # console.js skips the polls of [data-poll] regions while the tab is hidden
    assert "data-poll" in html


def test_htmx_request_gets_only_the_grid_partial(client_for, viewer, inventory):
    response = client_for(viewer).get(OVERVIEW, headers={"HX-Request": "true"})

    html = response.content.decode()
    assert response.status_code == 200
    assert "HX-Request" in response["Vary"]
    assert html.lstrip().startswith('<section id="overview-grid"')
    assert "<html" not in html
    assert "Orders API" in html


def test_boosted_htmx_request_gets_the_whole_page(client_for, viewer, inventory):
    response = client_for(viewer).get(
        OVERVIEW, headers={"HX-Request": "true", "HX-Boosted": "true"}
    )

    assert "<html" in response.content.decode()
    assert "HX-Request" in response["Vary"]


def test_full_page_also_varies_on_hx_request(client_for, viewer, inventory):
    response = client_for(viewer).get(OVERVIEW)

    assert "HX-Request" in response["Vary"]


def test_empty_inventory_tells_how_to_load_it(client_for, viewer):
    html = client_for(viewer).get(OVERVIEW).content.decode()

    assert "python manage.py import_inventory inventory/sample.yaml" in html
    assert "discover stacks from aws" in html.lower()


def test_discover_button_is_shown_to_operators_and_admins(client_for, operator, admin, db):
    for user in (operator, admin):
        html = client_for(user).get(OVERVIEW).content.decode()
        assert reverse("regions:discover") in html
        assert "Discover now" in html


def test_discover_button_is_hidden_from_viewers_and_approvers(client_for, viewer, approver):
    for user in (viewer, approver):
        html = client_for(user).get(OVERVIEW).content.decode()
        assert reverse("regions:discover") not in html


def test_outsider_without_a_role_gets_403(client_for, outsider):
    assert client_for(outsider).get(OVERVIEW).status_code == 403


def test_anonymous_is_sent_to_login(client):
    response = client.get(OVERVIEW)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_cells_show_the_computed_status_and_its_reason(client_for, viewer, inventory):
    orders, _ = inventory
    east = Stack.objects.get(application=orders, region__code="us-east-1")
    west = Stack.objects.get(application=orders, region__code="us-west-2")
    add_samples(east, ok=True)
    add_samples(west, ok=False, count=3)

    html = client_for(viewer).get(OVERVIEW).content.decode()

    assert 'class="badge badge--green"' in html
    assert 'class="badge badge--red"' in html
    assert "3 consecutive 503 from /health" in html
    assert "200 from /health in 12 ms" in html
    # carts has no sample at all
    assert "no samples yet" in html
    label = "orders in us-west-2: unhealthy, 3 consecutive 503 from /health, out of rotation"
    assert f'aria-label="{label}"' in html


def test_rows_show_the_application_status_and_the_served_region(client_for, viewer, inventory):
    orders, _ = inventory
    orders.global_endpoint_url = "https://orders.example.com/"
    orders.save()
    for stack in orders.stacks.all():
        add_samples(stack, ok=True)
    add_global_samples(orders, "us-west-2")

    html = client_for(viewer).get(OVERVIEW).content.decode()

    assert 'class="app-state app-state--healthy"' in html
    assert "all 2 regions healthy" in html
    assert "global endpoint served by <span class=\"mono\">us-west-2</span>" in html


def test_a_stale_stack_reads_unknown_with_the_age_of_its_last_sample(client_for, viewer, inventory):
    orders, _ = inventory
    east = Stack.objects.get(application=orders, region__code="us-east-1")
    add_samples(east, ok=True, count=2, now=timezone.now() - timedelta(seconds=30))

    html = client_for(viewer).get(OVERVIEW).content.decode()

    assert "no sample for 3" in html  # "no sample for 30 s" (or 31 s on a slow run)


def test_replication_lag_degrades_a_healthy_region(client_for, viewer, inventory):
    orders, _ = inventory
    east = Stack.objects.get(application=orders, region__code="us-east-1")
    add_samples(east, ok=True)
    LagSample.objects.create(
        application=orders, source_region="us-west-2", receiving_region="us-east-1",
        at=timezone.now(), lag_ms=7500, method=LagMethod.METRIC,
    )

    html = client_for(viewer).get(OVERVIEW).content.decode()

    assert 'class="badge badge--orange"' in html
    assert "lag 7.5 s &gt; 2 s threshold from us-west-2" in html


def test_query_count_is_pinned(client_for, viewer, django_assert_max_num_queries):
    make_inventory(3, ["us-east-1", "us-west-2"])
    for stack in Stack.objects.all():
        add_samples(stack)
    client = client_for(viewer)

    with django_assert_max_num_queries(MAX_QUERIES):
        client.get(OVERVIEW)
    with django_assert_max_num_queries(MAX_QUERIES):
        client.get(OVERVIEW, headers={"HX-Request": "true"})


def add_lag(app, source, receiving, lag_ms, *, replicated=True, seconds_ago=5):
    LagSample.objects.create(
        application=app, source_region=source, receiving_region=receiving,
        at=timezone.now() - timedelta(seconds=seconds_ago), lag_ms=lag_ms, method=LagMethod.CANARY,
        replicated=replicated,
    )


def add_drill(app, region_code, state, requested_by):
    from experiments.models import Drill, Scenario
    from experiments.scenarios import ensure_builtin_scenarios

    ensure_builtin_scenarios()
    return Drill.objects.create(
        scenario=Scenario.objects.get(slug="fail-region-health-check"), application=app,
        region=Region.objects.get(code=region_code), requested_by=requested_by, state=state,
        plan={"calls": []}, plan_hash="0" * 64,
    )


def cell(html, app, region):
    """The overview's <td> of one application in one region."""
    start = html.index(f'data-status-of="{app}/{region}"')
    return html[start:html.index("</td>", start)]


def test_each_cell_shows_the_replication_lag_coloured_against_the_threshold(
    client_for, viewer, make_user, settings
):
    make_inventory(4, ["us-east-1", "us-west-2"])
    calm, slow, broken, unmeasured = Application.objects.order_by("name")
    for stack in Stack.objects.all():
        add_samples(stack)
    add_lag(calm, "us-west-2", "us-east-1", 400)
    add_lag(slow, "us-west-2", "us-east-1", 4200)
    add_lag(slow, "eu-central-1", "us-east-1", 300)
    add_lag(broken, "us-west-2", "us-east-1", 10000, replicated=False)
    add_lag(unmeasured, "us-west-2", "us-east-1", 300, seconds_ago=400)  # older than the stale limit
    client = client_for(viewer)

    html = client.get(OVERVIEW).content.decode()

    def lag(app):
        text = cell(html, app.name, "us-east-1")
        return text[text.index('<span class="lag '):]

    assert 'lag--green' in lag(calm) and '<span class="lag-figure">0.4 s</span>' in lag(calm)
    assert 'lag--orange' in lag(slow) and '<span class="lag-figure">4.2 s</span>' in lag(slow)
    assert 'title="lag 4.2 s &gt; 2 s threshold from us-west-2"' in lag(slow)
    # an outage grows: the canary 10.0 s late when measured 5 s ago is 15 s late now
    outage = re.search(r'<span class="lag-figure">≥ (\d+\.\d) s</span>', lag(broken))
    assert 'lag--red' in lag(broken) and 15.0 <= float(outage[1]) < 20.0
    assert f"replication outage: canary from us-west-2 not replicated for {outage[1]} s" in lag(broken)
    assert 'lag--gray' in lag(unmeasured) and "unknown: no lag sample for 6 min" in lag(unmeasured)
    # nothing measured at all into us-west-2: unknown, and why
    assert "unknown: no lag samples" in cell(html, calm.name, "us-west-2")
    # every figure links to its definition, which names the threshold
    assert html.count('<a class="def-link" href="#def-lag">lag</a>') == 8
    assert '<dt id="def-lag">Replication lag</dt>' in html
    assert "CONTROLPLANE_LAG_DEGRADED_SECONDS (2 s)" in html

    settings.CONTROLPLANE_LAG_DEGRADED_SECONDS = 5  # the colour follows the setting
    html = client.get(OVERVIEW).content.decode()
    assert 'lag--green' in lag(slow) and "CONTROLPLANE_LAG_DEGRADED_SECONDS (5 s)" in html


def test_a_live_drill_is_marked_on_its_application_and_region_and_links_to_it(
    client_for, viewer, operator
):
    from experiments.models import DrillState

    make_inventory(3, ["us-east-1", "us-west-2"])
    first, second, third = Application.objects.order_by("name")
    running = add_drill(first, "us-west-2", DrillState.RUNNING, operator)
    queued = add_drill(second, "us-east-1", DrillState.QUEUED, operator)
    add_drill(third, "us-east-1", DrillState.PASSED, operator)  # over: no marker
    add_drill(third, "us-west-2", DrillState.REQUESTED, operator)  # not approved: no marker

    html = client_for(viewer).get(OVERVIEW).content.decode()

    running_url = reverse("experiments:detail", args=[running.pk])
    queued_url = reverse("experiments:detail", args=[queued.pk])
    assert html.count('class="drill-marker') == 4  # on each application's row and its region's cell
    assert (
        f'<a class="drill-marker drill-marker--running" href="{running_url}" data-drill="{running.pk}">'
        f"drill #{running.pk} running in us-west-2</a>"
    ) in html
    assert f'href="{running_url}" data-drill="{running.pk}">drill #{running.pk} running</a>' in cell(
        html, first.name, "us-west-2"
    )
    assert "drill-marker" not in cell(html, first.name, "us-east-1")
    assert f'href="{queued_url}" data-drill="{queued.pk}">drill #{queued.pk} queued</a>' in cell(
        html, second.name, "us-east-1"
    )
    assert "drill-marker" not in html[html.index(f'data-status-of="{third.name}"'):]


def test_query_count_does_not_grow_with_the_number_of_stacks(client_for, viewer, operator):
    from experiments.models import DrillState

    client = client_for(viewer)
    (first,), _ = make_inventory(1, ["us-east-1", "us-west-2"])
    assert Stack.objects.count() == 2
    sampled = list(Stack.objects.values_list("pk", flat=True))
    for stack in Stack.objects.all():
        add_samples(stack, ok=stack.pk % 2 == 0)
    with CaptureQueriesContext(connection) as small:
        assert client.get(OVERVIEW).status_code == 200

    # 10 applications x 4 regions = 40 stacks
    new_regions = [Region.objects.create(code=c) for c in ("eu-central-1", "ap-south-1")]
    for region in new_regions:
        Stack.objects.create(application=first, region=region)
    for i in range(1, 10):
        app = Application.objects.create(name=f"svc-{i}", architecture=Architecture.DNS)
        for region in Region.objects.all():
            Stack.objects.create(application=app, region=region)
    assert Stack.objects.count() == 40
    for stack in Stack.objects.exclude(pk__in=sampled):
        add_samples(stack, ok=stack.pk % 3 != 0)
    assert HealthSample.objects.count() == 200
    # lag into every region and a live drill on every other application: no query per row
    for n, app in enumerate(Application.objects.order_by("name")):
        for region in Region.objects.all():
            add_lag(app, "us-east-1" if region.code != "us-east-1" else "us-west-2", region.code, 500 + n)
        if n % 2:
            add_drill(app, "us-east-1", DrillState.RUNNING, operator)
    with CaptureQueriesContext(connection) as large:
        response = client.get(OVERVIEW)
    html = response.content.decode()
    assert html.count('class="stack-cell"') == 40
    assert html.count('class="lag-figure"') == 40
    assert html.count('class="drill-marker') == 10
    assert "badge--gray" not in html

    assert len(large) == len(small) <= MAX_QUERIES


def test_operator_discover_records_audit_event_and_dispatches_on_commit(
    client_for, operator, django_capture_on_commit_callbacks
):
    client = client_for(operator)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("regions:discover"))

    assert response.status_code == 302
    assert response["Location"] == OVERVIEW
    event = AuditEvent.objects.get(action="inventory.discovery_requested")
    assert event.actor == operator.username
    assert event.source == "console"
    assert len(callbacks) == 1


def test_discover_message_is_shown_after_the_redirect(client_for, operator):
    response = client_for(operator).post(reverse("regions:discover"), follow=True)

    assert "Discovery queued" in response.content.decode()


def test_viewer_cannot_run_discovery(client_for, viewer, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client_for(viewer).post(reverse("regions:discover"))

    assert response.status_code == 403
    assert not AuditEvent.objects.filter(action="inventory.discovery_requested").exists()
    assert callbacks == []


NOT_STARTED = "Discovery was not started: the task broker is not answering."


@pytest.mark.django_db(transaction=True)
def test_discover_with_a_silent_redis_answers_within_seconds_with_a_clear_error(operator, silent_redis):
    result = console_request(
        operator.pk, "POST", reverse("regions:discover"), CONTROLPLANE_BROKER_URL=silent_redis.url(db=14)
    )

    assert silent_redis.connections >= 1
    assert result["seconds"] < 6  # 2 attempts x CONTROLPLANE_BROKER_TIMEOUT (2 s)
    assert result["status"] == 302
    assert result["location"] == OVERVIEW
    assert NOT_STARTED in result["page"]
    assert not AuditEvent.objects.filter(action="inventory.discovery_requested").exists()


@pytest.mark.django_db(transaction=True)
def test_discover_when_the_broker_refuses_says_so_instead_of_a_500(client_for, operator, monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.discover_inventory, "delay", refuse)

    response = client_for(operator).post(reverse("regions:discover"), follow=True)

    assert response.status_code == 200
    assert NOT_STARTED in response.content.decode()
    assert "Discovery queued" not in response.content.decode()
    assert not AuditEvent.objects.filter(action="inventory.discovery_requested").exists()


def test_discover_is_post_only(client_for, operator):
    assert client_for(operator).get(reverse("regions:discover")).status_code == 405


def test_grid_escapes_what_the_inventory_says(client_for, viewer, inventory):
    orders, _ = inventory
    orders.display_name = '<b>"Orders"</b>'
    orders.owner_team = "<script>x</script>"
    orders.save()

    html = client_for(viewer).get(OVERVIEW).content.decode()

    assert "<script>x</script>" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html
    assert "&lt;b&gt;&quot;Orders&quot;&lt;/b&gt;" in html
    assert html.count('class="stack-cell"') == 3
    assert html.count('class="badge badge--gray"') == 3
