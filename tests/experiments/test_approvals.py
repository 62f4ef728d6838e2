"""An approver's day: the count of drills waiting for their decision in the
navigation, the queue of those drills, and pages with action buttons that the browser
does not keep (Back asks the server again)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from experiments import services
from experiments.models import DrillState
from tests.experiments.test_views import PLAN
from tests.processes import unique_queue

QUEUE = reverse("experiments:approvals")
OVERVIEW = reverse("regions:overview")
# session, user, user perms, group perms, roles, halt switch, the nav's count, the
# page's count and rows, heartbeats (base.html's footer)
MAX_QUERIES = 10


@pytest.fixture(autouse=True)
def _no_worker_listens(settings):
    settings.DRILL_QUEUE = unique_queue("approvals")  # an approval may dispatch: nobody runs it


@pytest.fixture
def waiting(make_drill):
    """Two requests waiting for a decision, the older first; a decided drill and a
    running one that do not wait."""
    older = make_drill(
        scenario="fail-region-health-check", plan=PLAN, plan_hash="a" * 64,
        requested_at=timezone.now() - timedelta(hours=2),
    )
    newer = make_drill(region="us-west-2", plan=PLAN, plan_hash="b" * 64)
    make_drill(state=DrillState.REJECTED)
    make_drill(state=DrillState.RUNNING)
    return [older, newer]


def nav_count(response):
    """The number the navigation shows, or None when it shows no count."""
    html = response.content.decode()
    marker = 'id="approvals-count"'
    if marker not in html:
        return None
    return int(html.split(marker)[1].split('data-waiting="')[1].split('"')[0])


def test_an_approver_sees_how_many_drills_wait_for_them(approver, waiting, client_for):
    response = client_for(approver).get(OVERVIEW)

    assert nav_count(response) == 2
    assert f'href="{QUEUE}"' in response.content.decode()
    assert "nav-count--waiting" in response.content.decode()


def test_the_count_leaves_out_the_approvers_own_requests(make_user, make_drill, waiting, client_for):
    both = make_user("olga-both", "operator", "approver")
    make_drill(requested_by=both, plan=PLAN, plan_hash="c" * 64)

    assert nav_count(client_for(both).get(OVERVIEW)) == 2
    assert [d.pk for d in client_for(both).get(QUEUE).context["drills"]] == [d.pk for d in waiting]


def test_nothing_waiting_shows_zero_without_the_highlight(approver, client_for, db):
    response = client_for(approver).get(OVERVIEW)

    assert nav_count(response) == 0
    assert "nav-count--waiting" not in response.content.decode()


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_who_may_not_approve_sees_no_count_and_no_queue(request, role, waiting, client_for):
    client = client_for(request.getfixturevalue(role))

    response = client.get(OVERVIEW)
    assert nav_count(response) is None
    assert f'href="{QUEUE}"' not in response.content.decode()
    assert client.get(QUEUE).status_code == 403


def test_the_queue_lists_each_waiting_drill_oldest_first_with_its_plan_in_brief(
    approver, waiting, client_for
):
    response = client_for(approver).get(QUEUE)

    assert response.status_code == 200
    assert list(response.context["drills"]) == waiting
    html = response.content.decode()
    for drill in waiting:
        assert reverse("experiments:approval", args=[drill.pk]) in html
        assert f'data-drill="{drill.pk}"' in html
    row = html.split(f'data-drill="{waiting[0].pk}"')[1].split("</tr>")[0]
    for text in ("orders", "us-east-1", "Fail the region&#x27;s health check", "otto-operator",
                 "2 h", "22 h", "route53 UpdateHealthCheck", "0 targets", "at most 10 min"):
        assert text in row, text
    assert "Review plan" in row


def test_the_queue_says_when_a_request_can_no_longer_be_approved(approver, make_drill, client_for):
    stale = make_drill(plan=PLAN, plan_hash="a" * 64, requested_at=timezone.now() - timedelta(hours=25))

    html = client_for(approver).get(QUEUE).content.decode()

    row = html.split(f'data-drill="{stale.pk}"')[1].split("</tr>")[0]
    assert "expired: the request is older than 24 h" in row


def test_a_decided_drill_leaves_the_queue_and_the_count(approver, admin, waiting, client_for):
    services.approve(waiting[0], admin)
    services.reject(waiting[1], admin, comment="not now")

    response = client_for(approver).get(QUEUE)
    assert list(response.context["drills"]) == []
    assert "Nothing waits for your decision." in response.content.decode()
    assert nav_count(response) == 0


def test_the_queue_polls_and_its_partial_updates_the_count(approver, waiting, client_for):
    client = client_for(approver)
    page = client.get(QUEUE).content.decode()
    assert 'hx-trigger="every 5s, refresh"' in page
    assert page.count('id="approvals-count"') == 1  # the page's own count is the nav's

    services.reject(waiting[0], approver, comment="no")
    partial = client.get(QUEUE, headers={"HX-Request": "true"})
    html = partial.content.decode()
    assert html.lstrip().startswith('<section id="approval-queue"')
    assert "<html" not in html
    assert 'id="approvals-count"' in html and 'hx-swap-oob="true"' in html
    assert nav_count(partial) == 1
    assert "HX-Request" in partial["Vary"]


@pytest.mark.parametrize("count", [1, 30])
def test_the_queue_costs_the_same_whatever_the_number_of_drills(
    count, approver, make_drill, client_for, django_assert_max_num_queries
):
    for i in range(count):
        make_drill(plan=PLAN, plan_hash=f"{i:064x}")
    client = client_for(approver)
    client.get(QUEUE)  # the session and the halt row exist after the first page
    with django_assert_max_num_queries(MAX_QUERIES):
        response = client.get(QUEUE)
    assert len(response.context["drills"]) == min(count, 25)


def test_the_count_costs_one_query_and_only_for_approvers(approver, viewer, waiting, client_for):
    def queries(user):
        client = client_for(user)
        client.get(OVERVIEW)
        with CaptureQueriesContext(connection) as seen:
            client.get(OVERVIEW)
        return [q["sql"] for q in seen.captured_queries]

    as_approver, as_viewer = queries(approver), queries(viewer)
    assert len(as_approver) == len(as_viewer) + 1
    counting = [sql for sql in as_approver if "COUNT" in sql.upper() and "experiments_drill" in sql]
    assert len(counting) == 1


# --- Back: pages with action buttons are asked for again ---------------------------------


@pytest.mark.parametrize("name", ["experiments:approval", "experiments:detail", "experiments:list",
                                  "experiments:approvals"])
def test_pages_with_action_buttons_are_not_stored_by_the_browser(name, approver, waiting, client_for):
    args = [] if name in ("experiments:list", "experiments:approvals") else [waiting[0].pk]
    response = client_for(approver).get(reverse(name, args=args))

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]


def test_the_approval_page_asked_for_again_after_a_decision_offers_no_decision(approver, waiting, client_for):
    client = client_for(approver)
    url = reverse("experiments:approval", args=[waiting[0].pk])
    before = client.get(url).content.decode()
    assert "Approve this plan" in before and 'formaction="' in before

    client.post(reverse("experiments:approve", args=[waiting[0].pk]), {"plan_hash": waiting[0].plan_hash})
    after = client.get(url)  # what Back shows: the page is not stored, so it is asked for again

    html = after.content.decode()
    assert "no-store" in after["Cache-Control"]
    assert "Approve this plan" not in html and ">Reject<" not in html
    assert reverse("experiments:approve", args=[waiting[0].pk]) not in html
    assert "it no longer waits for a decision" in html


# --- the approval page's targets ---------------------------------------------------------

TARGETED = {
    **PLAN,
    "targets": [{"kind": "route53_health_check", "identifier": "hc-1", "region": "us-east-1"}],
    "target_snapshots": [{
        "kind": "route53_health_check", "identifier": "hc-1", "name": "orders-use1-health",
        "region": "us-east-1", "application": "orders", "config": {"Inverted": False},
        "params": {"rate": 0.5, "fault_type": "exception"}, "component_id": 3,
    }],
}


def target_rows(html):
    table = html.split('<table class="table plan-targets">')[1].split("</table>")[0]
    return [row.split("</tr>")[0] for row in table.split("<tbody>")[1].split("<tr>")[1:]]


def test_the_approval_page_shows_the_targets_as_a_table(approver, make_drill, client_for):
    drill = make_drill(plan=TARGETED, plan_hash="a" * 64)

    html = client_for(approver).get(reverse("experiments:approval", args=[drill.pk])).content.decode()

    [row] = target_rows(html)
    for text in ("Route 53 health check", "orders-use1-health", "hc-1", "us-east-1",
                 "fault_type=exception, rate=0.5"):
        assert text in row, text
    assert "{&#x27;kind&#x27;" not in html and "{'kind'" not in html  # no Python dict


def test_a_plan_without_snapshots_shows_the_identities_its_hash_binds(approver, make_drill, client_for):
    plan = {**PLAN, "targets": [
        {"kind": "lambda_function", "identifier": "orders-api", "region": "us-west-2"},
        {"kind": "something_new", "identifier": "x-1", "region": "us-west-2"},
    ]}
    drill = make_drill(plan=plan, plan_hash="a" * 64)

    html = client_for(approver).get(reverse("experiments:approval", args=[drill.pk])).content.decode()

    lambda_row, unknown_row = target_rows(html)
    assert "Lambda function" in lambda_row and "orders-api" in lambda_row and "us-west-2" in lambda_row
    assert "something_new" in unknown_row  # a kind it does not know, as stored
    assert "The plan names no target." not in html
