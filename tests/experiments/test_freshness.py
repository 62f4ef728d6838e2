"""Drill freshness: per application and region, the last passed drill and its age, red
past CONTROLPLANE_DRILL_FRESH_DAYS, on the overview, the scorecard and GET /api/v1/status."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from controlplane.api import issue_token
from experiments.models import DrillState
from regions import monitoring
from regions.models import Application, Architecture, Region, Stack
from tests.regions.test_overview import cell


@pytest.fixture
def orders(db):
    app = Application.objects.create(name="orders", architecture=Architecture.DNS)
    for code in ("us-east-1", "us-west-2", "eu-central-1"):
        Stack.objects.create(application=app, region=Region.objects.create(code=code))
    return app


def finished(make_drill, region, state, days_ago, now):
    return make_drill(region=region, state=state, finished_at=now - timedelta(days=days_ago))


def test_freshness_is_the_last_passed_drill_and_turns_stale_past_the_limit(orders, make_drill, settings):
    settings.CONTROLPLANE_DRILL_FRESH_DAYS = 90
    now = timezone.now()
    old = finished(make_drill, "us-east-1", DrillState.PASSED, 120, now)
    last = finished(make_drill, "us-east-1", DrillState.PASSED, 10, now)
    # a later failure or inconclusive drill does not move the last pass
    finished(make_drill, "us-east-1", DrillState.FAILED, 1, now)
    finished(make_drill, "us-east-1", DrillState.INCONCLUSIVE, 2, now)
    finished(make_drill, "us-west-2", DrillState.PASSED, 91, now)

    picture = monitoring.load_picture(now, freshness=True)[orders.pk]
    east, central, west = (picture.region(c).freshness for c in ("us-east-1", "eu-central-1", "us-west-2"))

    assert east.last_pass.pk == last.pk != old.pk
    assert east.age == timedelta(days=10)
    assert east.state == "fresh"
    assert west.state == "stale"
    assert central.state == "never" and central.last_pass is None
    # the same rows 81 days later: the clock alone turns the region stale
    later = monitoring.load_picture(now + timedelta(days=81), freshness=True)[orders.pk]
    assert later.region("us-east-1").freshness.state == "stale"
    # the limit is a setting
    settings.CONTROLPLANE_DRILL_FRESH_DAYS = 5
    tighter = monitoring.load_picture(now, freshness=True)[orders.pk]
    assert tighter.region("us-east-1").freshness.state == "stale"


def test_overview_shows_the_age_red_past_the_limit_and_never_drilled_plainly(
    orders, make_drill, client_for, viewer, settings
):
    settings.CONTROLPLANE_DRILL_FRESH_DAYS = 30
    now = timezone.now()
    fresh = finished(make_drill, "us-east-1", DrillState.PASSED, 3, now)
    stale = finished(make_drill, "us-west-2", DrillState.PASSED, 31, now)

    html = client_for(viewer).get(reverse("regions:overview")).content.decode()

    east, west, central = (cell(html, "orders", c) for c in ("us-east-1", "us-west-2", "eu-central-1"))
    assert 'class="fresh fresh--fresh" data-freshness="fresh"' in east
    assert f'href="{reverse("experiments:detail", args=[fresh.pk])}">#{fresh.pk}</a>' in east
    assert "3 d ago" in east
    assert 'class="fresh fresh--stale" data-freshness="stale"' in west
    assert f"#{stale.pk}</a>" in west and "31 d ago" in west
    assert 'data-freshness="never"' in central and "never drilled" in central
    # the definition is one click away, with the configured limit
    assert 'href="#def-fresh"' in east
    assert 'id="def-fresh"' in html and "(30 days)" in html


def test_status_api_carries_each_regions_freshness(orders, make_drill, client, viewer, settings):
    settings.CONTROLPLANE_DRILL_FRESH_DAYS = 90
    now = timezone.now()
    passed = finished(make_drill, "us-east-1", DrillState.PASSED, 100, now)

    token = issue_token(viewer)[1]
    response = client.get(reverse("api-status"), headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200
    regions = {r["region"]: r["drill_freshness"] for r in response.json()["applications"][0]["regions"]}
    assert regions["us-east-1"]["state"] == "stale"
    assert regions["us-east-1"]["last_passed_drill"] == passed.pk
    assert regions["us-east-1"]["last_passed_at"] == passed.finished_at.isoformat()
    assert 100 <= regions["us-east-1"]["age_days"] < 100.01
    assert regions["us-east-1"]["fresh_days"] == 90
    assert regions["eu-central-1"] == {
        "state": "never", "last_passed_drill": None, "last_passed_at": None, "age_days": None,
        "fresh_days": 90,
    }


def test_scorecard_marks_stale_and_never_drilled_regions(orders, make_drill, client_for, viewer, settings):
    settings.CONTROLPLANE_DRILL_FRESH_DAYS = 30
    now = timezone.now()
    passed = finished(make_drill, "us-east-1", DrillState.PASSED, 40, now)
    finished(make_drill, "us-west-2", DrillState.PASSED, 2, now)

    html = client_for(viewer).get(reverse("experiments:scorecard", args=["orders"])).content.decode()

    assert '<tr class="stale" data-freshness="stale">' in html
    assert f'href="{reverse("experiments:detail", args=[passed.pk])}">#{passed.pk}</a>' in html
    assert '<tr class="" data-freshness="fresh">' in html
    assert '<tr class="never" data-freshness="never">' in html
    assert "never drilled" in html
    assert "older than 30 days" in html
