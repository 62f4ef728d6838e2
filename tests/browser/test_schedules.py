"""Schedules in a real Chromium: an approver finds a proposed schedule from the drills
list, approves it with the button and pauses it, and the page follows a resume made
elsewhere by itself (its live part is polled), with no Content Security Policy error."""

from datetime import timedelta

import pytest
from django.apps import apps
from django.utils import timezone

from controlplane.roles import APPROVER, OPERATOR, sync_roles
from experiments import schedules
from experiments.models import Scenario, Schedule, ScheduleState
from experiments.scenarios import ensure_builtin_scenarios
from regions.models import Application, Region
from tests.browser.test_console import sample_inventory
from tests.browser.test_drills import _sign_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def proposed():
    """A schedule proposed by an operator (its plan hash given: the fault library is not
    under test), and an approver."""
    sync_roles(apps)
    from tests.conftest import _make_user

    operator = _make_user("otto-operator", OPERATOR)
    approver = _make_user("anna-approver", APPROVER)
    sample_inventory()
    ensure_builtin_scenarios()
    schedule = Schedule.objects.create(
        scenario=Scenario.objects.get(slug="fail-region-health-check"),
        application=Application.objects.get(name="orders"), region=Region.objects.get(code="us-east-1"),
        cron="0 3 * * 1", time_zone="Europe/Berlin", expires_at=timezone.now() + timedelta(days=30),
        plan_hashes={"us-east-1": "a" * 64}, requested_by=operator,
    )
    return schedule, operator, approver


def test_an_approver_approves_and_pauses_and_the_page_follows_a_resume(
    live_server, page, proposed, csp_violations
):
    schedule, operator, approver = proposed
    base = live_server.url
    _sign_in(page, base, approver)

    page.goto(f"{base}/drills/")
    page.click("a.btn >> text=Schedules")
    page.wait_for_url(f"{base}/drills/schedules/")
    page.click(f"[data-schedule='{schedule.pk}'] >> text=#{schedule.pk}")
    page.wait_for_url(f"{base}/drills/schedules/{schedule.pk}/")
    page.fill("#approve-comment", "weekly proof")
    page.click("button >> text=Approve these plans")
    page.wait_for_selector("#schedule-live [data-state='approved']")
    assert "“weekly proof”" in page.inner_text("#schedule-live")
    schedule.refresh_from_db()
    assert (schedule.state, schedule.approved_by_id) == (ScheduleState.APPROVED, approver.pk)

    page.fill("#switch-reason", "change freeze")
    page.click("button >> text=Pause")
    page.wait_for_selector("#schedule-live [data-state='paused']")
    assert page.is_visible("button >> text=Resume")

    schedule.refresh_from_db()
    assert schedules.resume(schedule, operator, reason="freeze over")  # elsewhere: the page polls
    page.wait_for_selector("#schedule-live [data-state='approved']", timeout=15_000)
    assert page.is_visible("button >> text=Pause")
    assert csp_violations == []
