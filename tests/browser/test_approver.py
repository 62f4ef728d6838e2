"""An approver's day in a real Chromium: the navigation counts the drills waiting for
their decision, the queue lists them and keeps itself current, a plan is approved from
it, Back does not bring the Approve button back, and the drill's audit events are one
click from its page."""

import pytest
from django.apps import apps

from controlplane.roles import ADMIN, APPROVER, OPERATOR, sync_roles
from experiments import services
from experiments.models import Drill, DrillState, Scenario
from experiments.scenarios import ensure_builtin_scenarios
from regions.models import Application, Region
from tests.browser.test_console import sample_inventory, screenshot
from tests.browser.test_drills import _sign_in
from tests.experiments.test_approvals import TARGETED
from tests.processes import unique_queue

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def two_requests(settings):
    """Two drills on orders requested by an operator (the older first), the world they
    name, an approver and an admin."""
    sync_roles(apps)
    settings.DRILL_QUEUE = unique_queue("browser-approver")  # approved drills stay queued
    from tests.conftest import _make_user

    operator = _make_user("otto-operator", OPERATOR)
    approver = _make_user("anna-approver", APPROVER)
    admin = _make_user("ada-admin", ADMIN)
    sample_inventory()
    ensure_builtin_scenarios()
    scenario = Scenario.objects.get(slug="fail-region-health-check")
    orders = Application.objects.get(name="orders")
    drills = [
        Drill.objects.create(
            scenario=scenario, application=orders, region=Region.objects.get(code=code),
            requested_by=operator, plan=TARGETED, plan_hash=digest,
        )
        for code, digest in (("us-east-1", "a" * 64), ("us-west-2", "b" * 64))
    ]
    return drills, approver, admin


def test_an_approver_sees_the_count_approves_from_the_queue_and_back_shows_no_button(
    live_server, page, two_requests, csp_violations
):
    (first, second), approver, admin = two_requests
    base = live_server.url
    _sign_in(page, base, approver)

    count = page.locator("#approvals-count")
    assert count.get_attribute("data-waiting") == "2"
    page.click("nav >> text=Approvals")
    page.wait_for_url(f"{base}/drills/approvals/")
    rows = page.locator("#approval-queue tbody tr")
    assert rows.count() == 2
    assert rows.first.get_attribute("data-drill") == str(first.pk)  # the older first
    assert "route53 UpdateHealthCheck" in rows.first.inner_text()
    screenshot(page, "approvals.png")

    rows.first.locator("text=Review plan").click()
    page.wait_for_url(f"{base}/drills/{first.pk}/approval/")
    assert "Route 53 health check" in page.locator("table.plan-targets").inner_text()
    page.fill("textarea[name=comment]", "looks right")
    page.click("button:has-text('Approve this plan')")
    page.wait_for_url(f"{base}/drills/{first.pk}/")
    assert page.locator("[data-state]").inner_text().lower() == "queued"
    assert count.get_attribute("data-waiting") == "1"

    # Back: the browser kept no copy of the approval page and asks again.
    page.go_back()
    page.wait_for_url(f"{base}/drills/{first.pk}/approval/")
    assert page.locator("button:has-text('Approve this plan')").count() == 0
    assert page.locator("button:has-text('Reject')").count() == 0
    decision = page.locator("section[aria-labelledby=decide-title]").inner_text()
    assert "it no longer waits for a decision" in decision and "looks right" in decision

    # The queue keeps itself current: another approver decides, the row and the count go.
    page.goto(f"{base}/drills/approvals/")
    assert page.locator("#approval-queue tbody tr").count() == 1
    services.reject(second, admin, comment="not this week")
    page.locator("#approval-queue >> text=Nothing waits for your decision.").wait_for(timeout=15_000)
    assert page.locator("#approvals-count").get_attribute("data-waiting") == "0"
    assert Drill.objects.get(pk=first.pk).state == DrillState.QUEUED
    assert csp_violations == []


def test_the_drills_audit_events_are_one_click_from_its_page(live_server, page, two_requests, csp_violations):
    (first, second), approver, admin = two_requests
    services.approve(first, admin, comment="go")
    services.reject(second, admin, comment="no")
    base = live_server.url
    _sign_in(page, base, approver)

    page.goto(f"{base}/drills/{first.pk}/")
    page.click("[data-drill-audit]")
    page.wait_for_url(f"{base}/audit/?object_type=experiments.drill&object_id={first.pk}")
    table = page.locator(".audit-table tbody")
    actions = table.locator("td.mono:not(.num):not(.nowrap):not(.small)").all_inner_texts()
    assert actions == ["drill.queued", "drill.approved"]
    assert page.locator("[data-audit-object]").inner_text().startswith("The events of experiments.drill")
    screenshot(page, "audit-by-drill.png")

    table.locator("[data-object-link]").first.click()  # each row links back to the drill
    page.wait_for_url(f"{base}/drills/{first.pk}/")
    assert csp_violations == []
