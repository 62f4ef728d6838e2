"""The console on a phone (390 px wide, as an iPhone 12-15): the overview, the stack,
drill, approval and audit pages need no sideways scrolling of the page (tables may
scroll inside their box), and the overview shows every region of an application as a
labelled card."""

import pytest

from experiments.models import Drill, DrillState
from tests.browser.conftest import sign_in
from tests.browser.test_approver import two_requests  # noqa: F401 (fixture)
from tests.browser.test_console import screenshot
from tests.conftest import PASSWORD

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

PHONE = {"width": 390, "height": 844}


def _page_width(page):
    return page.evaluate("document.documentElement.scrollWidth")


def test_the_key_pages_fit_a_phone_and_the_overview_lists_every_region(
    live_server, browser, two_requests, csp_violations  # noqa: F811
):
    drills, approver, _admin = two_requests
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.on("pageerror", lambda error: csp_violations.append(f"page error: {error}"))
    sign_in(page, live_server, approver, PASSWORD)

    page.goto(f"{live_server.url}/")
    grid = page.locator("#overview-grid")
    cells = grid.locator("td.cell[data-status-of^='orders/']")
    assert cells.count() == 3
    for i in range(3):  # one under the other, each fully on screen
        box = cells.nth(i).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
    assert _page_width(page) <= PHONE["width"]
    screenshot(page, "phone-overview.png")

    # a passed drill, measured from three vantages: its page has the widest tables
    vantage = {"time_to_failover": 5.99, "time_to_recover": 4.95, "error_rate": 0.0, "p95_latency_ms": 3.31,
               "requests_during": 90, "served_by_target_before": True,
               "regions_during": ["us-east-1", "us-west-2"]}
    Drill.objects.filter(pk=drills[1].pk).update(
        state=DrillState.PASSED,
        outcome_reason="Failed over in 6.0 s and recovered",
        figures={**vantage, "measured_from": ["us-east-1", "eu-central-1"], "vantages_missing": {},
                 "vantages": {v: vantage for v in ("us-east-1", "us-west-2", "eu-central-1")}},
    )
    pages = {
        "stack": "/apps/orders/us-east-1/",
        "drill": f"/drills/{drills[0].pk}/",
        "passed drill": f"/drills/{drills[1].pk}/",
        "approval": f"/drills/{drills[0].pk}/approval/",
        "audit": "/audit/",
        "drills": "/drills/",
    }
    for name, path in pages.items():
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 200, name
        page.wait_for_load_state("networkidle")
        assert _page_width(page) <= PHONE["width"], f"{name}: {_page_width(page)} px wide"
        screenshot(page, f"phone-{name.replace(' ', '-')}.png")
    context.close()
    assert csp_violations == []
