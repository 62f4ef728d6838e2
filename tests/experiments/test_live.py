"""The drills pages update by themselves: htmx polls the drill page, the drills list,
the scorecard and the halt banner; a poll when nothing changed is answered without
rendering (204 to the console's tag header, 304 to If-None-Match), a final drill's
with 286; the pages with buttons are never stored for Back."""

import html
import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from experiments import services
from experiments.models import (
    Approval,
    Compensation,
    CompensationState,
    Decision,
    DrillState,
    DrillStep,
    HaltState,
    StepKind,
)
from regions.models import Application, Region, Stack
from tests.experiments.test_views import PLAN
from tests.processes import unique_queue

LIST = reverse("experiments:list")
BANNER = reverse("experiments:halt-banner")
HTMX = {"HX-Request": "true"}


@pytest.fixture(autouse=True)
def _no_worker_listens(settings):
    settings.DRILL_QUEUE = unique_queue("live")  # an approval dispatches: nobody runs it


@pytest.fixture
def drill(make_drill):
    return make_drill(scenario="fail-region-health-check", plan=PLAN, plan_hash="a" * 64)


def _detail(drill):
    return reverse("experiments:detail", args=[drill.pk])


def _poll(client, url, tag=None, **headers):
    if tag:
        headers["HX-PTag"] = tag
    return client.get(url, headers={**HTMX, **headers})


def _text(response):
    return html.unescape(response.content.decode())


# --- the generic answer (controlplane.rendering.polled), on the drill page ---------------


def test_a_poll_when_nothing_changed_is_answered_204_without_rendering(
    viewer, drill, client_for, django_assert_max_num_queries
):
    client = client_for(viewer)
    first = _poll(client, _detail(drill))
    assert first.status_code == 200 and "Requested" in _text(first)
    tag = first["HX-PTag"]
    assert first["ETag"] == tag and tag.startswith('"')
    assert first["Cache-Control"] == "private, no-cache"
    assert "HX-Request" in first["Vary"]

    # the version alone: no session, user or permissions (from the cache), no drill,
    # steps, ledger or template
    with django_assert_max_num_queries(1):
        again = _poll(client, _detail(drill), tag)
    assert again.status_code == 204 and again.content == b""
    assert again["HX-PTag"] == tag
    assert again["Cache-Control"] == "no-store"


def test_a_revalidation_with_the_current_etag_is_answered_304(viewer, drill, client_for):
    client = client_for(viewer)
    tag = _poll(client, _detail(drill))["ETag"]

    response = _poll(client, _detail(drill), **{"If-None-Match": tag})
    assert response.status_code == 304 and response.content == b""
    assert response["ETag"] == tag and "HX-Request" in response["Vary"]

    other = _poll(client, _detail(drill), **{"If-None-Match": '"something-else"'})
    assert other.status_code == 200 and "Requested" in _text(other)


def _advance(drill, approver, admin):
    services.transition(drill.pk, DrillState.REQUESTED, DrillState.RUNNING)


def _step(drill, approver, admin):
    DrillStep.add(drill.pk, StepKind.NOTE, "steady state checked")


def _decision(drill, approver, admin):
    Approval.objects.create(drill=drill, approver=approver, decision=Decision.REJECT,
                            plan_hash=drill.plan_hash, comment="not today")


def _figures(drill, approver, admin):
    type(drill).objects.filter(pk=drill.pk).update(figures={"time_to_failover": 4.2})


def _abort_request(drill, approver, admin):
    type(drill).objects.filter(pk=drill.pk).update(abort_requested_at=timezone.now(), abort_reason="stop")


def _ledger_row(drill):
    return Compensation.objects.create(
        drill=drill, fault_kind="route53_health_check_invert", target={"identifier": "hc-1"},
        call={"service": "route53", "operation": "UpdateHealthCheck"},
        inverse={"service": "route53", "operation": "UpdateHealthCheck"},
        deadline=timezone.now() + timedelta(minutes=10),
    )


def _ledger_opened(drill, approver, admin):
    _ledger_row(drill)


LEDGER_CHANGES = {
    "injected": {"state": CompensationState.INJECTED, "injected_at": timezone.now()},
    "revert failed": {"state": CompensationState.FAILED, "attempts": 1, "last_error": "throttled"},
    "reverted": {"state": CompensationState.REVERTED, "reverted_at": timezone.now(), "attempts": 1},
    "closed by hand": {"state": CompensationState.CLOSED, "last_error": "closed by ada: gone"},
}


@pytest.mark.parametrize(
    "change", [_advance, _step, _decision, _figures, _abort_request, _ledger_opened, *LEDGER_CHANGES],
    ids=lambda c: c if isinstance(c, str) else c.__name__.strip("_"),
)
def test_every_change_the_drill_page_shows_changes_its_tag(
    change, viewer, approver, admin, drill, client_for
):
    if isinstance(change, str):
        row = _ledger_row(drill)
    client = client_for(viewer)
    tag = _poll(client, _detail(drill))["HX-PTag"]

    if isinstance(change, str):
        Compensation.objects.filter(pk=row.pk).update(**LEDGER_CHANGES[change])
    else:
        change(drill, approver, admin)

    response = _poll(client, _detail(drill), tag)
    assert response.status_code == 200
    assert response["HX-PTag"] != tag
    assert _poll(client, _detail(drill), response["HX-PTag"]).status_code == 204


def test_a_final_drill_answers_286_with_its_content_then_without(viewer, drill, client_for):
    client = client_for(viewer)
    tag = _poll(client, _detail(drill))["HX-PTag"]
    services.transition(
        drill.pk, DrillState.REQUESTED, DrillState.PASSED, outcome_reason="Failed over in 4.2 s"
    )

    final = _poll(client, _detail(drill), tag)
    assert final.status_code == 286
    assert "Passed" in _text(final) and "Failed over in 4.2 s" in _text(final)

    unchanged = _poll(client, _detail(drill), final["HX-PTag"])
    assert unchanged.status_code == 286 and unchanged.content == b""
    assert unchanged["HX-Reswap"] == "none"  # stop polling, keep what is shown
    # A browser's 304 would reach htmx as a 200 and keep it polling: a final drill never gets one.
    revalidated = _poll(client, _detail(drill), **{"If-None-Match": final["ETag"]})
    assert revalidated.status_code == 286 and "Passed" in _text(revalidated)


def test_the_tag_depends_on_who_asks(viewer, operator, drill, client, client_for):
    viewer_tag = _poll(client_for(viewer), _detail(drill))["HX-PTag"]
    client.logout()
    operator_client = client_for(operator)  # may abort: the partial has the Abort button
    answer = _poll(operator_client, _detail(drill), viewer_tag)
    assert answer.status_code == 200 and "Abort</button>" in _text(answer)
    assert answer["HX-PTag"] != viewer_tag


def test_nobody_learns_a_tag_or_that_nothing_changed_without_the_right_to_see(
    viewer, outsider, drill, client, client_for
):
    tag = _poll(client_for(viewer), _detail(drill))["HX-PTag"]
    client.logout()
    anonymous = _poll(client, _detail(drill), tag, **{"If-None-Match": tag})
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
    assert "HX-PTag" not in anonymous and "ETag" not in anonymous
    forbidden = _poll(client_for(outsider), _detail(drill), tag, **{"If-None-Match": tag})
    assert forbidden.status_code == 403 and "HX-PTag" not in forbidden


def test_a_poll_of_a_drill_that_does_not_exist_is_404(viewer, client_for, db):
    response = _poll(client_for(viewer), reverse("experiments:detail", args=[987654]), '"x"')
    assert response.status_code == 404 and "HX-PTag" not in response


# --- the drill page's parts -------------------------------------------------------------


def test_the_drill_page_poll_brings_its_buttons_message_and_decisions(approver, admin, drill, client_for):
    client = client_for(approver)
    waiting = _text(_poll(client, _detail(drill)))
    assert 'data-waiting="approval"' in waiting and "otto-operator must approve" in waiting
    assert '<div id="drill-actions" class="page-actions drill-actions" hx-swap-oob="true">' in waiting
    assert "Review and approve</a>" in waiting
    assert '<div id="drill-decisions" hx-swap-oob="true">\n\n</div>' in waiting

    services.approve(drill, approver, comment="go ahead")
    approved = _text(_poll(client, _detail(drill)))
    assert 'data-state="queued"' in approved
    assert "data-waiting" not in approved and "Review and approve" not in approved
    assert "Approve</span> by anna-approver" in approved and "“go ahead”" in approved


def test_an_admin_gets_the_open_ledger_rows_to_close_with_the_poll(admin, viewer, make_drill, client_for):
    drill = make_drill(state=DrillState.REVERTING)
    row = _ledger_row(drill)
    Compensation.objects.filter(pk=row.pk).update(state=CompensationState.FAILED, attempts=3)
    page = _text(_poll(client_for(admin), _detail(drill)))
    assert '<div id="stuck-rows" hx-swap-oob="true">' in page
    assert f'data-ledger-row="{row.pk}"' in page and "hx-preserve" in page
    assert "data-ledger-row" not in _text(_poll(client_for(viewer), _detail(drill)))


def test_the_request_message_does_not_outlive_the_wait(operator, approver, drill, client_for):
    page = _text(client_for(operator).get(_detail(drill)))
    assert "Waiting for approval" in page
    services.approve(drill, approver)
    page = _text(client_for(operator).get(_detail(drill)))
    assert "Waiting for approval" not in page and "must approve" not in page


def test_pages_with_buttons_are_never_stored_for_back(approver, drill, client_for):
    client = client_for(approver)
    for url in (_detail(drill), reverse("experiments:approval", args=[drill.pk])):
        response = client.get(url)
        assert response.status_code == 200
        assert "no-store" in response["Cache-Control"], url
        assert "ETag" not in response


# --- the drills list --------------------------------------------------------------------


def test_the_list_polls_its_table_and_halt_panel(viewer, operator, drill, client_for,
                                                 django_assert_max_num_queries):
    client = client_for(viewer)
    page = _text(client.get(LIST))
    assert f'<section id="drill-table" data-poll hx-get="{LIST}" hx-trigger="every 2s, refresh"' in page

    first = _poll(client, LIST)
    body = _text(first)
    assert body.lstrip().startswith('<section id="drill-table"')
    panel = '<section id="halt-panel" class="halt-panel" aria-labelledby="halt-title" hx-swap-oob="true">'
    assert panel in body
    assert "<option" not in body  # the filters are not sent again
    # the versions of the drills and of the halt switch: session, user and permissions
    # come from the cache
    with django_assert_max_num_queries(2):
        assert _poll(client, LIST, first["HX-PTag"]).status_code == 204

    services.transition(drill.pk, DrillState.REQUESTED, DrillState.RUNNING)
    running = _poll(client, LIST, first["HX-PTag"])
    assert running.status_code == 200 and '<span class="badge badge--orange">Running</span>' in _text(running)

    services.halt_all(operator, "incident in us-east-1")
    halted = _text(_poll(client, LIST, running["HX-PTag"]))
    assert "halt-panel--on" in halted and "incident in us-east-1" in halted


def test_each_filter_of_the_list_has_its_own_tag(viewer, make_drill, client_for):
    make_drill(region="us-west-2")
    client = client_for(viewer)
    everything = _poll(client, LIST)
    west = _poll(client, LIST + "?region=us-west-2")
    assert west["HX-PTag"] != everything["HX-PTag"]
    assert _poll(client, LIST + "?region=us-west-2", everything["HX-PTag"]).status_code == 200
    assert f'hx-get="{LIST}?region=us-west-2"' in _text(west)


# --- the halt banner --------------------------------------------------------------------


def test_the_halt_banner_is_polled_on_every_page(viewer, drill, client_for):
    client = client_for(viewer)
    overview = client.get(reverse("regions:overview")).content.decode()
    banner = f'<div id="halt-banner" data-poll hx-get="{BANNER}" hx-trigger='
    assert banner + '"load, every 2s, refresh"' in overview  # fetched at once, then polled
    for url in (LIST, _detail(drill)):  # shown with the page, then polled
        assert banner + '"every 2s, refresh"' in client.get(url).content.decode(), url


def test_the_halt_banner_appears_and_goes_with_the_switch(viewer, operator, admin, client_for,
                                                          django_assert_max_num_queries):
    client = client_for(viewer)
    quiet = _poll(client, BANNER)
    assert quiet.status_code == 200 and "Drills halted" not in _text(quiet)
    # the switch: session, user and permissions come from the cache (controlplane/authcache.py)
    with django_assert_max_num_queries(1):
        assert _poll(client, BANNER, quiet["HX-PTag"]).status_code == 204

    services.halt_all(operator, "real incident")
    halted = _poll(client, BANNER, quiet["HX-PTag"])
    assert halted.status_code == 200
    assert "Drills halted" in _text(halted) and "real incident" in _text(halted)
    assert _poll(client, BANNER, halted["HX-PTag"]).status_code == 204

    services.clear_halt(admin, "the incident is over")
    cleared = _poll(client, BANNER, halted["HX-PTag"])
    assert cleared.status_code == 200 and "Drills halted" not in _text(cleared)
    assert HaltState.objects.get(pk=1).halted is False


# --- the scorecard ----------------------------------------------------------------------


def _orders_stacks():
    app = Application.objects.get(name="orders")
    Stack.objects.create(application=app, region=Region.objects.get(code="us-east-1"))


def test_the_scorecard_polls_its_outcomes_trend_and_recent_drills(viewer, make_drill, client_for):
    running = make_drill(state=DrillState.RUNNING)
    _orders_stacks()
    client = client_for(viewer)
    url = reverse("experiments:scorecard", args=["orders"])
    page = _text(client.get(url))
    assert f'<div id="scorecard-outcomes" class="table-scroll" data-poll hx-get="{url}"' in page

    first = _poll(client, url)
    body = _text(first)
    assert body.lstrip().startswith('<div id="scorecard-outcomes"')
    assert '<div id="scorecard-trend" hx-swap-oob="true">' in body
    assert '<div id="scorecard-recent" hx-swap-oob="true">' in body and "Running" in body
    assert _poll(client, url, first["HX-PTag"]).status_code == 204

    services.transition(running.pk, DrillState.RUNNING, DrillState.PASSED, figures={"time_to_failover": 6.5})
    passed = _poll(client, url, first["HX-PTag"])
    assert passed.status_code == 200
    text = _text(passed)
    assert '<span class="badge badge--green">Passed</span>' in text and "6.5 s" in text


def test_the_scorecard_tag_follows_the_days_since_a_pass(viewer, make_drill, client_for, monkeypatch):
    now = timezone.now()
    make_drill(state=DrillState.PASSED, finished_at=now - timedelta(days=2, hours=1))
    _orders_stacks()
    client = client_for(viewer)
    url = reverse("experiments:scorecard", args=["orders"])
    first = _poll(client, url)
    assert 'data-region="us-east-1">2</td>' in _text(first)

    monkeypatch.setattr(timezone, "now", lambda: now + timedelta(days=1))  # no row changed
    later = _poll(client, url, first["HX-PTag"])
    assert later.status_code == 200 and 'data-region="us-east-1">3</td>' in _text(later)


def test_the_scorecard_trend_is_one_point_per_drill_as_data(viewer, make_drill, client_for):
    finished = timezone.now() - timedelta(hours=3)
    make_drill(state=DrillState.PASSED, finished_at=finished, figures={"time_to_failover": 5.25})
    _orders_stacks()
    page = _text(client_for(viewer).get(reverse("experiments:scorecard", args=["orders"])))
    series = page.split('<div id="ttf-trend" hidden data-series="')[1].split('"></div>')[0]
    assert json.loads(series) == [[int(finished.timestamp()), 5.25]]
