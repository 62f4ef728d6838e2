"""The background-process banner in a real Chromium: it appears on an open page when a
worker stops reporting, and goes away when it is back, without a reload."""

from datetime import timedelta

import pytest
from django.apps import apps
from django.utils import timezone
from playwright.sync_api import expect

from controlplane.models import ServiceHeartbeat
from controlplane.roles import VIEWER, sync_roles
from tests.browser.test_console import screenshot
from tests.conftest import PASSWORD, _make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def _beat(kind, name, queues, age=timedelta(0)):
    ServiceHeartbeat.objects.update_or_create(
        kind=kind,
        hostname=name,
        defaults={
            "last_seen": timezone.now() - age,
            "queues": queues,
            "pid": 4242,
            "started_at": timezone.now() - timedelta(hours=1),
        },
    )


def test_the_banner_appears_when_the_worker_stops_and_goes_when_it_is_back(live_server, page, csp_violations):
    sync_roles(apps)
    user = _make_user("vera-viewer", VIEWER)
    _beat(ServiceHeartbeat.Kind.BEAT, "beat@demo", [])
    _beat(ServiceHeartbeat.Kind.WORKER, "worker@demo", ["celery"])
    _beat(ServiceHeartbeat.Kind.WORKER, "probes@demo", ["probes.local"])

    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    banner = page.locator(".background-banner")
    footer = page.locator("#background-processes")
    expect(footer).to_contain_text("worker@demo")
    expect(footer).to_contain_text("probes@demo")
    expect(banner).to_have_count(0)

    # The drill worker stops reporting: the open page says so within one poll (5 s).
    _beat(ServiceHeartbeat.Kind.WORKER, "worker@demo", ["celery"], age=timedelta(minutes=2))
    expect(banner).to_contain_text("No live worker consumes", timeout=15_000)
    expect(banner).to_contain_text("drills will not start")
    expect(banner).to_contain_text("worker@demo")
    expect(footer.locator(".heartbeat--stale")).to_contain_text("worker@demo", timeout=15_000)
    screenshot(page, "background-banner.png")

    # It is back (supervisor restarted it): the banner goes without a reload.
    _beat(ServiceHeartbeat.Kind.WORKER, "worker@demo", ["celery"])
    expect(banner).to_have_count(0, timeout=15_000)
    assert csp_violations == []
