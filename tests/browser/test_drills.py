"""A drill through the console in a real Chromium: an operator requests it, an approver
reviews the exact plan and approves it, a real Celery worker runs it against the
sandbox, and the drill page updates itself until it shows Passed."""

import pytest

from controlplane.roles import APPROVER, OPERATOR
from experiments.models import Drill
from tests.browser.test_console import screenshot
from tests.conftest import PASSWORD, _make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.sandbox,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def _sign_in(page, base, user):
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def _sign_out(page):
    page.click("text=Sign out")
    page.wait_for_url("**/accounts/login/")


def test_request_approve_and_watch_a_drill_pass(live_server, page, drill_worker, csp_violations):
    operator = _make_user("otto-operator", OPERATOR)
    approver = _make_user("anna-approver", APPROVER)
    worker = drill_worker
    base = live_server.url
    try:
        # The operator requests the drill.
        _sign_in(page, base, operator)
        page.click("nav >> text=Drills")
        page.click("text=Request a drill")
        page.select_option("select[name=application]", "orders")
        page.wait_for_timeout(300)  # htmx narrows the scenarios to architecture A
        page.select_option("select[name=region]", "us-east-1")
        page.select_option("select[name=scenario]", "fail-region-health-check")
        page.click("button:has-text('Preview plan')")
        page.locator(".plan-preview").wait_for()
        assert "UpdateHealthCheck" in page.locator(".plan-preview").inner_text()
        page.click("button:has-text('Request drill')")
        page.wait_for_url("**/drills/*/")
        drill = Drill.objects.get()
        assert drill.requested_by == operator
        assert page.locator("[data-state]").inner_text().lower() == "requested"
        _sign_out(page)

        # The approver reviews the exact plan and approves.
        _sign_in(page, base, approver)
        page.goto(f"{base}/drills/")
        page.click("text=review plan")
        page.wait_for_url(f"**/drills/{drill.pk}/approval/")
        assert page.locator("#plan-hash").inner_text() == drill.plan_hash
        calls = page.locator("tr.plan-call")
        assert calls.count() == len(drill.plan["calls"]) >= 1
        assert "Inverted" in calls.first.inner_text()
        page.fill("textarea[name=comment]", "go")
        page.click("button:has-text('Approve this plan')")
        page.wait_for_url(f"**/drills/{drill.pk}/")

        # The page polls until the worker has run the drill.
        page.locator("[data-state=passed]").wait_for(timeout=120_000)
        assert "time to fail over" in page.locator(".drill-figures").inner_text().lower()
        ttf = page.locator(".drill-figures div", has=page.locator("dt", has_text="Time to fail over"))
        ttf = ttf.locator("dd").inner_text()
        assert ttf.endswith(" s"), ttf
        page.locator(".drill-chart canvas").first.wait_for(timeout=10_000)
        assert page.locator("#drill-live").get_attribute("hx-trigger") is not None  # the page loaded live
        screenshot(page, "drill.png")
    finally:
        worker.stop()
    drill.refresh_from_db()
    assert drill.state == "passed", drill.outcome_reason
    assert csp_violations == []
