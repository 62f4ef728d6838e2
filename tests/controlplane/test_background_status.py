"""GET /background/: what every page polls to keep its background banner and footer live
(controlplane.views.background_status)."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from controlplane.models import ServiceHeartbeat

URL = reverse("background")
# session, user, user perms, group perms, heartbeats, roles (context processor)
MAX_QUERIES = 6


@pytest.fixture(autouse=True)
def _queues(settings):
    settings.DRILL_QUEUE = "celery"
    settings.CONTROLPLANE_PROBE_VANTAGES = ["local"]


def beat(kind, name, seconds_ago, *queues):
    ServiceHeartbeat.objects.update_or_create(
        kind=kind,
        hostname=name,
        defaults={"queues": list(queues), "last_seen": timezone.now() - timedelta(seconds=seconds_ago)},
    )


@pytest.fixture
def worker_dead(db):
    beat(ServiceHeartbeat.Kind.BEAT, "beat@host", 1)
    beat(ServiceHeartbeat.Kind.WORKER, "worker@host", 120, "celery")
    beat(ServiceHeartbeat.Kind.WORKER, "probes@host", 1, "probes.local")


def shown_key(html):
    return re.search(r'hx-get="/background/\?shown=(\w+)"', html).group(1)


def test_the_poll_returns_the_banner_and_the_footer_out_of_band(client_for, viewer, worker_dead):
    response = client_for(viewer).get(URL, headers={"HX-Request": "true"})
    html = response.content.decode()

    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="background-banner"')
    assert "<html" not in html
    assert 'class="background-banner" role="alert"' in html
    assert "No live worker consumes “celery”" in html
    assert '<div id="background-processes" class="background-processes" hx-swap-oob="true">' in html
    assert "not running, seen 2 min ago" in html
    assert response["Cache-Control"] == "no-store"
    assert "HX-Reswap" not in response


def test_the_banner_goes_away_when_the_worker_comes_back(client_for, viewer, worker_dead):
    client = client_for(viewer)
    page = client.get(reverse("experiments:list")).content.decode()
    assert 'class="background-banner"' in page

    beat(ServiceHeartbeat.Kind.WORKER, "worker@host", 0, "celery")
    response = client.get(URL, {"shown": shown_key(page)}, headers={"HX-Request": "true"})
    html = response.content.decode()

    assert "HX-Reswap" not in response  # swapped: the banner's text changed
    assert 'class="background-banner"' not in html
    assert 'id="background-banner"' in html  # still polling
    assert shown_key(html) != shown_key(page)


def test_an_unchanged_banner_is_left_in_place_and_the_footer_still_swapped(
    client_for, viewer, worker_dead
):
    client = client_for(viewer)
    page = client.get(reverse("regions:overview")).content.decode()

    response = client.get(URL, {"shown": shown_key(page)}, headers={"HX-Request": "true"})

    assert response["HX-Reswap"] == "none"
    assert 'hx-swap-oob="true"' in response.content.decode()


def test_the_banner_appears_on_an_open_page_when_the_worker_dies(client_for, viewer, db):
    beat(ServiceHeartbeat.Kind.BEAT, "beat@host", 1)
    beat(ServiceHeartbeat.Kind.WORKER, "worker@host", 1, "celery", "probes.local")
    client = client_for(viewer)
    page = client.get(reverse("regions:overview")).content.decode()
    assert 'class="background-banner"' not in page

    beat(ServiceHeartbeat.Kind.WORKER, "worker@host", 31, "celery", "probes.local")
    response = client.get(URL, {"shown": shown_key(page)}, headers={"HX-Request": "true"})

    assert "HX-Reswap" not in response
    assert 'class="background-banner" role="alert"' in response.content.decode()


def test_the_poll_costs_a_fixed_number_of_queries(
    client_for, viewer, worker_dead, django_assert_max_num_queries
):
    client = client_for(viewer)
    client.get(URL)
    with django_assert_max_num_queries(MAX_QUERIES):
        assert client.get(URL, headers={"HX-Request": "true"}).status_code == 200


def test_anonymous_users_are_sent_to_log_in(client, db):
    response = client.get(URL)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_a_user_without_a_role_gets_403(client_for, outsider):
    assert client_for(outsider).get(URL).status_code == 403


def test_only_get(client_for, viewer):
    assert client_for(viewer).post(URL).status_code == 405
