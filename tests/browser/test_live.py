"""The console updates by itself in a real Chromium: a viewer's drill page and drills
list follow a drill that a real Celery worker runs against the sandbox, the halt banner
appears and goes on every page; none of it reloads the page. Back after approving shows
the approval page as it is now, without its buttons."""

import re

import pytest

from controlplane.roles import ADMIN, APPROVER, OPERATOR, VIEWER
from experiments import services
from experiments.models import Drill, DrillState, Scenario
from experiments.scenarios import ensure_builtin_scenarios
from regions.models import Application, Architecture, Region
from tests.browser.test_drills import _sign_in
from tests.conftest import _make_user
from tests.experiments.test_views import PLAN
from tests.processes import unique_queue

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

# One poll (2 s) and the request's own time, with room for a busy machine.
WITHIN_A_POLL = 6_000


def _mark(page):
    """A value that only survives if the page is never reloaded."""
    page.evaluate("window.notReloaded = true")


def _not_reloaded(page):
    return page.evaluate("window.notReloaded === true")


def _statuses_of(page, path):
    """The status of every answer to a request for `path` made by `page` from now on."""
    statuses = []
    page.on("response", lambda r: statuses.append(r.status) if r.url.endswith(path) else None)
    return statuses


@pytest.mark.sandbox
@pytest.mark.worker
def test_a_viewer_watches_a_drill_run_and_a_halt_come_and_go_without_reloading(
    live_server, page, drill_worker, csp_violations
):
    operator = _make_user("otto-operator", OPERATOR)
    approver = _make_user("anna-approver", APPROVER)
    admin = _make_user("ada-admin", ADMIN)
    viewer = _make_user("vera-viewer", VIEWER)
    base = live_server.url
    drill = services.request(
        user=operator, scenario=Scenario.objects.get(slug="fail-region-health-check"),
        application=Application.objects.get(name="orders"), region=Region.objects.get(code="us-east-1"),
    )
    detail = f"/drills/{drill.pk}/"
    _sign_in(page, base, viewer)
    drills = page.context.new_page()  # the same session, in a second tab
    overview = page.context.new_page()
    drills.goto(f"{base}/drills/")
    overview.goto(f"{base}/")
    polls = _statuses_of(page, detail)
    page.goto(f"{base}{detail}")
    for each in (page, drills, overview):
        _mark(each)
    assert page.locator("[data-state]").get_attribute("data-state") == "requested"
    assert "must approve this exact plan" in page.locator("[data-waiting=approval]").inner_text()
    assert page.locator("#drill-actions a").inner_text().lower() == "review plan"
    row = drills.locator("tr", has=drills.locator(f"a[href='{detail}']"))
    assert row.locator(".badge").inner_text().lower() == "requested"
    # While nothing changes, the polls send back the tag they were given and get 204.
    with page.expect_response(lambda r: r.url.endswith(detail) and r.status == 204, timeout=10_000):
        pass

    # An approver approves elsewhere; the worker runs the drill. The viewer's pages follow.
    services.approve(drill, approver, comment="go")
    page.locator("[data-waiting=approval]").wait_for(state="detached", timeout=WITHIN_A_POLL)
    page.locator("#drill-actions a").wait_for(state="detached", timeout=WITHIN_A_POLL)
    assert "by anna-approver" in page.locator("#drill-decisions").inner_text()
    assert "“go”" in page.locator("#drill-decisions").inner_text()
    page.locator("[data-state=running]").wait_for(timeout=60_000)
    row.locator(".badge", has_text="Running").wait_for(timeout=WITHIN_A_POLL)
    page.locator("[data-state=passed]").wait_for(timeout=120_000)
    ttf = page.locator(".drill-figures div", has=page.locator("dt", has_text="Time to fail over"))
    assert re.fullmatch(r"[\d.]+ s", ttf.locator("dd").inner_text()), ttf.inner_text()
    assert page.locator(".timeline-step").count() >= 5
    row.locator(".badge", has_text="Passed").wait_for(timeout=WITHIN_A_POLL)

    # Each change was answered with the new content; the final state stopped the polling.
    assert polls.count(200) >= 3 and polls[-1] == 286, polls

    # A halt shows on every page within a poll, and goes when it is cleared.
    services.halt_all(operator, "incident in us-east-1")
    for each in (page, drills, overview):
        each.locator(".halt-banner", has_text="incident in us-east-1").wait_for(timeout=WITHIN_A_POLL)
    drills.locator("#halt-panel.halt-panel--on").wait_for(timeout=WITHIN_A_POLL)
    services.clear_halt(admin, "the incident is over")
    for each in (page, drills, overview):
        each.locator(".halt-banner").wait_for(state="detached", timeout=WITHIN_A_POLL)
    assert all(_not_reloaded(each) for each in (page, drills, overview))
    assert Drill.objects.get(pk=drill.pk).state == DrillState.PASSED
    assert csp_violations == []


def test_back_after_approving_asks_the_server_again(live_server, page, settings, csp_violations):
    operator = _make_user("otto-operator", OPERATOR)
    approver = _make_user("anna-approver", APPROVER)
    ensure_builtin_scenarios()
    settings.DRILL_QUEUE = unique_queue("nobody-listens")  # approved, queued: nobody runs it
    app = Application.objects.create(name="orders", architecture=Architecture.DNS)
    region = Region.objects.create(code="us-east-1")
    drill = Drill.objects.create(
        scenario=Scenario.objects.get(slug="fail-region-health-check"), application=app, region=region,
        requested_by=operator, plan=PLAN, plan_hash="a" * 64,
    )
    _sign_in(page, live_server.url, approver)
    page.goto(f"{live_server.url}/drills/{drill.pk}/approval/")
    page.click("button:has-text('Approve this plan')")
    page.wait_for_url(f"**/drills/{drill.pk}/")
    assert Drill.objects.get(pk=drill.pk).state == DrillState.QUEUED

    page.go_back()
    page.wait_for_url(f"**/drills/{drill.pk}/approval/")
    page.locator("h1").wait_for()
    # The page was asked for again (no-store), not shown from memory with its buttons.
    assert page.locator("button", has_text="Approve this plan").count() == 0
    assert page.locator("button", has_text="Reject").count() == 0
    assert csp_violations == []
