"""Every console page shows the background processes in its footer, and a banner when a
worker or beat is not running (controlplane.context_processors.console, base.html)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from controlplane.background import DRILL_CONSEQUENCE, probe_consequence
from controlplane.models import ServiceHeartbeat
from experiments.models import Drill, Scenario
from experiments.scenarios import ensure_builtin_scenarios
from regions.models import Application, Architecture, Region, Stack

HEARTBEAT_TABLE = ServiceHeartbeat._meta.db_table


@pytest.fixture(autouse=True)
def _queues(settings):
    settings.DRILL_QUEUE = "celery"
    settings.CONTROLPLANE_PROBE_VANTAGES = ["local"]
    settings.CONTROLPLANE_HEARTBEAT_TIMEOUT_SECONDS = 30.0


@pytest.fixture
def pages(db, operator):
    """Every console page, as URLs."""
    app = Application.objects.create(name="orders", architecture=Architecture.DNS)
    region = Region.objects.create(code="us-east-1")
    Stack.objects.create(application=app, region=region)
    ensure_builtin_scenarios()
    scenario = Scenario.objects.order_by("slug").first()
    drill = Drill.objects.create(
        scenario=scenario, application=app, region=region, plan={"calls": []}, plan_hash="0" * 64,
        requested_by=operator,
    )
    return [
        reverse("regions:overview"),
        reverse("regions:application", args=["orders"]),
        reverse("regions:stack", args=["orders", "us-east-1"]),
        reverse("experiments:list"),
        reverse("experiments:detail", args=[drill.pk]),
        reverse("experiments:approval", args=[drill.pk]),
        reverse("experiments:scorecard", args=["orders"]),
        reverse("experiments:scenarios"),
        reverse("experiments:scenario", args=[scenario.slug]),
        reverse("audit"),
    ]


def heartbeat(kind, name, seconds_ago, *queues):
    ServiceHeartbeat.objects.update_or_create(
        kind=kind,
        hostname=name,
        defaults={
            "queues": list(queues),
            "pid": 1234,
            "started_at": timezone.now() - timedelta(hours=1),
            "last_seen": timezone.now() - timedelta(seconds=seconds_ago),
        },
    )


@pytest.fixture
def all_fresh(db):
    heartbeat(ServiceHeartbeat.Kind.BEAT, "beat@host", 1)
    heartbeat(ServiceHeartbeat.Kind.WORKER, "worker@host", 2, "celery")
    heartbeat(ServiceHeartbeat.Kind.WORKER, "probes@host", 3, "probes.local")


def banner(html):
    return 'class="background-banner"' in html


def test_every_page_lists_the_processes_and_shows_no_banner_when_all_are_fresh(
    client_for, admin, pages, all_fresh
):
    client = client_for(admin)
    for url in pages:
        response = client.get(url)
        html = response.content.decode()

        assert response.status_code == 200, url
        assert 'id="background-processes"' in html, url
        assert "Beat <span class=\"mono\">beat@host</span>" in html, url
        assert "Worker <span class=\"mono\">worker@host</span> (celery)" in html, url
        assert "Worker <span class=\"mono\">probes@host</span> (probes.local)" in html, url
        assert "seen 2 s ago" in html, url
        assert "not shown on this page" not in html, url
        assert 'id="background-banner"' in html, url  # polling, empty
        assert not banner(html), url


def test_every_page_shows_the_banner_when_the_worker_is_stale(client_for, admin, pages, all_fresh):
    heartbeat(ServiceHeartbeat.Kind.WORKER, "worker@host", 300, "celery")
    seen = ServiceHeartbeat.objects.get(hostname="worker@host").last_seen
    client = client_for(admin)
    for url in pages:
        html = client.get(url).content.decode()

        assert banner(html), url
        assert 'role="alert"' in html
        assert (
            "No live worker consumes “celery” (<span class=\"mono\">worker@host</span> not seen "
            f"since {seen:%Y-%m-%d %H:%M:%S} UTC)"
        ) in html, url
        assert DRILL_CONSEQUENCE in html, url
        assert "heartbeat heartbeat--stale" in html, url
        assert "not running, seen 5 min ago" in html, url


def test_a_missing_worker_is_a_problem_and_beat_alone_does_not_hide_it(client_for, viewer, pages):
    heartbeat(ServiceHeartbeat.Kind.BEAT, "beat@host", 1)

    html = client_for(viewer).get(reverse("regions:overview")).content.decode()

    assert banner(html)
    assert "No live worker consumes “celery” (none seen in the last day)" in html
    assert probe_consequence("local") in html
    assert "No live beat" not in html


def test_a_dead_beat_does_not_make_the_worker_look_dead(client_for, viewer, pages, all_fresh):
    heartbeat(ServiceHeartbeat.Kind.BEAT, "beat@host", 90)

    html = client_for(viewer).get(reverse("experiments:list")).content.decode()

    assert "No live beat (<span class=\"mono\">beat@host</span> not seen since" in html
    assert "approved drills whose window opens will not be queued" in html
    assert "No live worker" not in html


def test_no_row_at_all_says_so_in_the_footer(client_for, viewer, pages):
    html = client_for(viewer).get(reverse("regions:overview")).content.decode()

    assert "No worker or beat has reported in the last day." in html
    assert banner(html)


def test_the_login_page_shows_nothing_to_anonymous_users(client, all_fresh):
    html = client.get(reverse("login")).content.decode()

    assert "background-processes" not in html
    assert "background-banner" not in html
    assert "worker@host" not in html


def test_a_user_without_a_role_sees_no_background(client_for, outsider, all_fresh):
    response = client_for(outsider).get(reverse("regions:overview"))
    html = response.content.decode()

    assert response.status_code == 403
    assert "background-processes" not in html
    assert "background-banner" not in html


def heartbeat_queries(captured):
    """The queries that read the heartbeat table itself (not those that only name it in a
    subquery, as the lag loader does for beat's last start)."""
    return [q for q in captured.captured_queries if HEARTBEAT_TABLE in q["sql"].split(" WHERE ", 1)[0]]


def test_the_footer_costs_exactly_one_query(client_for, admin, pages, all_fresh):
    client = client_for(admin)
    for url in pages:
        client.get(url)  # warm the session
        with CaptureQueriesContext(connection) as page:
            client.get(url)

        assert len(heartbeat_queries(page)) == 1, url


@pytest.mark.parametrize(
    "url", [reverse("regions:overview"), reverse("experiments:list"), reverse("audit")]
)
def test_htmx_partials_do_not_read_the_heartbeats(client_for, admin, all_fresh, url):
    client = client_for(admin)
    with CaptureQueriesContext(connection) as partial:
        html = client.get(url, headers={"HX-Request": "true"}).content.decode()

    assert "<html" not in html
    assert "background-processes" not in html
    assert heartbeat_queries(partial) == []
