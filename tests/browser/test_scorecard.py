"""The scorecard in a real Chromium: its time-to-failover chart fits its points (one
point sat on an axis running to 2029) and follows new drills without a reload."""

from datetime import timedelta

import pytest
from django.apps import apps
from django.utils import timezone

from controlplane.roles import OPERATOR, VIEWER, sync_roles
from experiments.models import Drill, DrillState, Scenario
from experiments.scenarios import ensure_builtin_scenarios
from regions.models import Application, Architecture, Region, Stack
from tests.browser.test_drills import _sign_in
from tests.browser.test_live import _mark, _not_reloaded
from tests.conftest import _make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def _finished_drill(finished_at, seconds):
    ensure_builtin_scenarios()
    app = Application.objects.get(name="orders")
    region = Region.objects.get(code="us-east-1")
    return Drill.objects.create(
        scenario=Scenario.objects.get(slug="fail-region-health-check"), application=app, region=region,
        requested_by=_make_user(f"o-{seconds}", OPERATOR), state=DrillState.PASSED,
        requested_at=finished_at - timedelta(minutes=2), finished_at=finished_at,
        figures={"time_to_failover": seconds},
    )


X_SCALE = (
    "() => { const u = document.querySelector('[data-trend-chart]').uplot; "
    "return [u.scales.x.min, u.scales.x.max, u.data[0].length]; }"
)


def test_the_scorecard_time_axis_fits_one_point_and_follows_new_ones(live_server, page, csp_violations):
    sync_roles(apps)
    viewer = _make_user("vera-viewer", VIEWER)
    app = Application.objects.create(name="orders", architecture=Architecture.DNS)
    Stack.objects.create(application=app, region=Region.objects.create(code="us-east-1"))
    one = timezone.now() - timedelta(hours=5)
    _finished_drill(one, 4.5)

    _sign_in(page, live_server.url, viewer)
    page.goto(f"{live_server.url}/drills/scorecard/orders/")
    page.locator("[data-trend-chart] canvas").first.wait_for()
    _mark(page)
    low, high, points = page.evaluate(X_SCALE)
    # A lone point sits in the middle of a day, not of the years around it (it ran to 2029).
    assert points == 1
    assert low < one.timestamp() < high
    assert high - low == pytest.approx(86_400, abs=1)

    earlier = one - timedelta(days=3)
    _finished_drill(earlier, 7.0)
    page.wait_for_function(  # the scorecard polls every 5 s
        "() => document.querySelector('[data-trend-chart]').uplot.data[0].length === 2", timeout=12_000
    )
    low, high, points = page.evaluate(X_SCALE)
    span = one.timestamp() - earlier.timestamp()
    assert low < earlier.timestamp() and high > one.timestamp()
    assert high - low == pytest.approx(span * 1.1, rel=0.01)  # 5 % on each side
    assert _not_reloaded(page)
    assert csp_violations == []
