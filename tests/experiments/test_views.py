"""The drills console: pages per role, the request form, approval on the exact plan,
live polling, abort, halt, scorecard and scenarios."""

import html
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from controlplane.models import AuditEvent
from experiments import services
from experiments.models import (
    FINAL_STATES,
    LIVE_STATES,
    Approval,
    Compensation,
    Drill,
    DrillState,
    DrillStep,
    HaltState,
    Scenario,
    StepKind,
)
from experiments.plans import plan_diff
from experiments.views import outcome_counts
from regions.models import Application, Region, Stack
from tests.experiments.helpers import change_plan
from tests.processes import unique_queue

LIST = reverse("experiments:list")
PLAN = {
    "scenario": "fail-region-health-check",
    "calls": [
        {
            "service": "route53",
            "region": "us-east-1",
            "operation": "UpdateHealthCheck",
            "params": {"HealthCheckId": "hc-1", "Inverted": True},
            "inverse": {
                "service": "route53",
                "region": "us-east-1",
                "operation": "UpdateHealthCheck",
                "params": {"HealthCheckId": "hc-1", "Inverted": False},
            },
        }
    ],
    "max_duration_seconds": 600,
}


@pytest.fixture(autouse=True)
def _no_worker_listens(settings):
    settings.DRILL_QUEUE = unique_queue("views")  # an approval may dispatch: nobody runs it


@pytest.fixture
def drill(make_drill):
    return make_drill(scenario="fail-region-health-check", plan=PLAN, plan_hash="a" * 64)


def _actions(drill):
    return list(
        AuditEvent.objects.filter(object_type="experiments.drill", object_id=str(drill.pk))
        .order_by("seq")
        .values_list("action", flat=True)
    )


# --- pages per role -------------------------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "operator", "approver", "admin"])
def test_every_role_sees_the_drill_pages(request, role, drill, client_for):
    client = client_for(request.getfixturevalue(role))
    for url in (
        LIST,
        reverse("experiments:detail", args=[drill.pk]),
        reverse("experiments:approval", args=[drill.pk]),
        reverse("experiments:scorecard", args=["orders"]),
        reverse("experiments:scenarios"),
        reverse("experiments:scenario", args=["fail-region-health-check"]),
        reverse("experiments:halt-banner"),
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        assert "HX-Request" in response["Vary"]


def test_the_outsider_sees_no_drill_page(outsider, drill, client_for):
    client = client_for(outsider)
    assert client.get(LIST).status_code == 403
    assert client.get(reverse("experiments:detail", args=[drill.pk])).status_code == 403


def test_a_viewer_cannot_request_approve_abort_or_halt(viewer, drill, client_for):
    client = client_for(viewer)
    posts = {
        reverse("experiments:create"): {
            "scenario": "fail-region-health-check",
            "application": "orders",
            "region": "us-east-1",
        },
        reverse("experiments:approve", args=[drill.pk]): {"plan_hash": drill.plan_hash},
        reverse("experiments:reject", args=[drill.pk]): {"plan_hash": drill.plan_hash, "comment": "no"},
        reverse("experiments:abort", args=[drill.pk]): {},
        reverse("experiments:halt"): {"reason": "no"},
        reverse("experiments:clear-halt"): {"reason": "no"},
    }
    for url, data in posts.items():
        assert client.post(url, data).status_code == 403, url
    assert client.get(reverse("experiments:new")).status_code == 403
    page = client.get(LIST).content.decode()
    assert "Request a drill" not in page and "Halt all drills</button>" not in page
    assert Drill.objects.get(pk=drill.pk).state == DrillState.REQUESTED
    assert not HaltState.objects.filter(halted=True).exists()


def test_the_nav_links_to_the_drills(viewer, client_for):
    page = client_for(viewer).get(reverse("regions:overview")).content.decode()
    assert f'href="{LIST}"' in page
    assert reverse("experiments:halt-banner") in page  # the overview asks for the banner


# --- list ---------------------------------------------------------------------------


def test_the_list_filters_and_pages_newest_first(viewer, make_drill, client_for):
    old = make_drill(requested_at=timezone.now() - timedelta(hours=1))
    new = make_drill(region="us-west-2")
    make_drill(state=DrillState.PASSED)
    client = client_for(viewer)

    drills = list(client.get(LIST).context["drills"])
    assert drills[1:] == [new, old] or drills[0].state == DrillState.PASSED
    assert list(client.get(LIST, {"region": "us-west-2"}).context["drills"]) == [new]
    assert {d.state for d in client.get(LIST, {"state": "passed"}).context["drills"]} == {"passed"}
    assert client.get(LIST, {"scenario": "no-such"}).context["drills"].__len__() == 0
    assert client.get(LIST, {"page": "999"}).status_code == 200


def test_the_list_filters_inconclusive_drills_with_their_amber_badge(viewer, make_drill, client_for):
    inconclusive = make_drill(state=DrillState.INCONCLUSIVE, outcome_reason="too few requests")
    make_drill(state=DrillState.PASSED)
    make_drill(state=DrillState.FAILED)
    client = client_for(viewer)

    response = client.get(LIST, {"state": "inconclusive"})

    assert list(response.context["drills"]) == [inconclusive]
    page = response.content.decode()
    assert '<option value="inconclusive" selected>Inconclusive</option>' in page
    assert '<span class="badge badge--amber">Inconclusive</span>' in page
    assert len(client.get(LIST, {"state": "no-such-state"}).context["drills"]) == 3  # ignored


@pytest.mark.parametrize("count", [3, 30])
def test_the_list_costs_the_same_whatever_the_number_of_drills(
    count, viewer, make_drill, client_for, django_assert_max_num_queries
):
    for _ in range(count):
        make_drill()
    client = client_for(viewer)
    client.get(LIST)  # warm the session
    # session, user, user perms, group perms, count, page, apps, regions, scenarios, halt,
    # roles and heartbeats (context processor; the heartbeats for base.html's footer)
    with django_assert_max_num_queries(12):
        response = client.get(LIST)
    assert response.status_code == 200


def test_the_list_partial_for_htmx(viewer, drill, client_for):
    response = client_for(viewer).get(LIST, headers={"HX-Request": "true"})
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="drill-table"')
    assert "<html" not in body


# --- request form ---------------------------------------------------------------------


@pytest.mark.sandbox
def test_an_operator_requests_a_drill_and_sees_its_plan(inventory, operator, client_for):
    from experiments.scenarios import ensure_builtin_scenarios

    ensure_builtin_scenarios()
    client = client_for(operator)
    data = {"scenario": "fail-region-health-check", "application": "orders", "region": "us-east-1"}

    preview = client.get(reverse("experiments:new"), {**data, "preview": "1"})
    assert preview.status_code == 200
    assert "UpdateHealthCheck" in preview.content.decode()
    assert Drill.objects.count() == 0

    response = client.post(reverse("experiments:create"), data)
    drill = Drill.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("experiments:detail", args=[drill.pk])
    assert drill.requested_by == operator and drill.state == DrillState.REQUESTED
    page = html.unescape(client.get(response["Location"]).content.decode())
    assert "UpdateHealthCheck" in page and drill.plan_hash in page and '"Inverted": false' in page
    assert _actions(drill) == ["drill.requested"]
    assert AuditEvent.objects.get(action="drill.requested").source == "console"


def _served(app, vantage, region):
    from django.utils import timezone

    from regions.models import HealthSample, ProbeTargetKind

    HealthSample.objects.create(
        application=app, target=ProbeTargetKind.GLOBAL_ENDPOINT, vantage=vantage, at=timezone.now(),
        ok=True, status_code=200, latency_ms=5, served_region=region,
    )


@pytest.mark.sandbox
def test_the_preview_the_request_and_the_approval_page_say_what_can_be_measured(
    inventory, operator, approver, client_for, settings
):
    from experiments.scenarios import ensure_builtin_scenarios
    from regions.models import Application

    ensure_builtin_scenarios()
    settings.CONTROLPLANE_PROBE_VANTAGES = ["us-east-1", "eu-central-1"]
    orders = Application.objects.get(name="orders")
    _served(orders, "us-east-1", "us-east-1")
    _served(orders, "eu-central-1", "us-east-1")
    client = client_for(operator)
    data = {"scenario": "fail-region-health-check", "application": "orders", "region": "us-west-2"}

    preview = html.unescape(client.get(reverse("experiments:new"), {**data, "preview": "1"}).content.decode())
    assert "No vantage is served by us-west-2 now (us-east-1 -> us-east-1; eu-central-1 -> us-east-1)" in (
        preview
    )
    assert 'data-measurable-from=""' in preview

    # us-east-1 is served at both vantages: measurable from both, no warning
    preview = client.get(reverse("experiments:new"), {**data, "region": "us-east-1", "preview": "1"})
    text = html.unescape(preview.content.decode())
    assert 'data-measurable-from="us-east-1,eu-central-1"' in text
    assert "data-measurability-warning" not in text

    response = client.post(reverse("experiments:create"), data, follow=True)
    page = html.unescape(response.content.decode())
    assert "will end INCONCLUSIVE" in page  # the request is made, with the warning beside it
    drill = Drill.objects.get()
    approval = html.unescape(
        client_for(approver).get(reverse("experiments:approval", args=[drill.pk])).content.decode()
    )
    assert "No vantage is served by us-west-2 now" in approval


def test_the_request_form_narrows_scenarios_to_the_application_architecture(operator, client_for, db):
    from experiments.scenarios import ensure_builtin_scenarios

    ensure_builtin_scenarios()
    Application.objects.create(name="orders", architecture="A")
    form = client_for(operator).get(reverse("experiments:new"), {"application": "orders"}).context["form"]
    slugs = set(form.fields["scenario"].queryset.values_list("slug", flat=True))
    assert "fail-region-health-check" in slugs and "dial-region-to-zero" not in slugs


def test_bad_request_input_gives_a_message_per_field_and_creates_nothing(operator, client_for, db):
    from experiments.scenarios import ensure_builtin_scenarios

    ensure_builtin_scenarios()
    app = Application.objects.create(name="orders", architecture="A")
    Stack.objects.create(application=app, region=Region.objects.create(code="us-east-1"))
    Region.objects.create(code="us-west-2")
    client = client_for(operator)

    response = client.post(
        reverse("experiments:create"),
        {
            "scenario": "dial-region-to-zero",
            "application": "orders",
            "region": "us-west-2",
            "window_start": "2030-01-02T10:00",
            "window_end": "2030-01-01T10:00",
        },
    )
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert "applies to architecture B" in errors["scenario"][0]
    assert errors["region"] == ["orders has no stack in us-west-2."]
    assert errors["window_end"] == ["The window must end after it starts."]
    body = response.content.decode()
    assert "orders has no stack in us-west-2." in body

    response = client.post(
        reverse("experiments:create"), {"scenario": "nope", "application": "", "region": "x"}
    )
    errors = response.context["form"].errors
    assert errors["scenario"] == ["Unknown scenario 'nope'."]
    assert errors["application"] == ["Choose the application."]
    assert Drill.objects.count() == 0
    assert not AuditEvent.objects.filter(action="drill.requested").exists()


def test_a_request_while_halted_is_refused_with_a_message(operator, admin, client_for, db):
    from experiments.scenarios import ensure_builtin_scenarios

    ensure_builtin_scenarios()
    app = Application.objects.create(name="orders", architecture="A")
    Stack.objects.create(application=app, region=Region.objects.create(code="us-east-1"))
    services.halt_all(operator, "incident")
    response = client_for(operator).post(
        reverse("experiments:create"),
        {
            "scenario": "fail-region-health-check",
            "application": "orders",
            "region": "us-east-1",
        },
    )
    assert response.status_code == 400
    assert "Drills are halted" in response.content.decode()
    assert Drill.objects.count() == 0


# --- approval -------------------------------------------------------------------------


def test_the_approval_page_shows_each_call_beside_its_inverse_and_the_hash(approver, drill, client_for):
    page = html.unescape(
        client_for(approver).get(reverse("experiments:approval", args=[drill.pk])).content.decode()
    )
    assert "UpdateHealthCheck" in page and '"Inverted": true' in page and '"Inverted": false' in page
    assert drill.plan_hash in page
    assert "Approve this plan" in page
    assert "No earlier drill" in page


def test_the_approval_page_diffs_against_the_previous_plan(approver, make_drill, client_for):
    changed = {**PLAN, "calls": [{**PLAN["calls"][0], "params": {"HealthCheckId": "hc-2", "Inverted": True}}]}
    first = make_drill(
        scenario="fail-region-health-check", plan=PLAN, plan_hash="a" * 64, state=DrillState.PASSED
    )
    second = make_drill(scenario="fail-region-health-check", plan=changed, plan_hash="b" * 64)
    response = client_for(approver).get(reverse("experiments:approval", args=[second.pk]))
    assert response.context["previous"] == first
    assert response.context["diff"] == [("calls[0].params.HealthCheckId", "hc-1", "hc-2")]
    assert "calls[0].params.HealthCheckId" in response.content.decode()


def test_plan_diff_lists_added_removed_and_changed_keys():
    assert plan_diff({"a": 1, "b": [1]}, {"a": 2, "c": None}) == [
        ("a", "1", "2"),
        ("b[0]", "1", "—"),
        ("c", "—", "null"),
    ]


def test_an_approver_approves_with_a_comment(approver, drill, client_for):
    response = client_for(approver).post(
        reverse("experiments:approve", args=[drill.pk]), {"plan_hash": drill.plan_hash, "comment": "go"}
    )
    assert response.status_code == 302
    drill.refresh_from_db()
    assert drill.state == DrillState.QUEUED
    approval = Approval.objects.get(drill=drill)
    assert (approval.approver, approval.comment, approval.plan_hash) == (approver, "go", drill.plan_hash)
    assert _actions(drill) == ["drill.approved", "drill.queued"]


def test_an_htmx_approval_redirects_on_the_client(approver, drill, client_for):
    response = client_for(approver).post(
        reverse("experiments:approve", args=[drill.pk]),
        {"plan_hash": drill.plan_hash},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse("experiments:detail", args=[drill.pk])


def test_an_approver_rejects_saying_why(approver, drill, client_for):
    client_for(approver).post(
        reverse("experiments:reject", args=[drill.pk]),
        {"plan_hash": drill.plan_hash, "comment": " too risky "},
    )
    drill.refresh_from_db()
    assert drill.state == DrillState.REJECTED
    assert _actions(drill) == ["drill.rejected"]
    assert Approval.objects.get(drill=drill).comment == "too risky"
    assert AuditEvent.objects.get(action="drill.rejected").after["comment"] == "too risky"


@pytest.mark.parametrize("comment", ["", "   "])
def test_a_rejection_without_a_comment_is_refused_and_changes_nothing(comment, approver, drill, client_for):
    response = client_for(approver).post(
        reverse("experiments:reject", args=[drill.pk]), {"plan_hash": drill.plan_hash, "comment": comment}
    )
    assert response.status_code == 400
    message = "Say why you reject this plan: the requester reads it."
    assert response.context["form"].errors["comment"] == [message]
    assert message in response.content.decode()
    assert "Approve this plan" in response.content.decode()  # the form is still there to fix
    drill.refresh_from_db()
    assert drill.state == DrillState.REQUESTED
    assert not Approval.objects.exists()
    assert _actions(drill) == []


def test_requester_cannot_approve_own_drill(make_user, make_drill, client_for):
    both = make_user("olga-both", "operator", "approver")
    drill = make_drill(requested_by=both, plan=PLAN, plan_hash="a" * 64)
    client = client_for(both)
    page = client.get(reverse("experiments:approval", args=[drill.pk])).content.decode()
    assert "Approve this plan" not in page and "You requested this drill" in page
    assert (
        client.post(
            reverse("experiments:approve", args=[drill.pk]), {"plan_hash": drill.plan_hash}
        ).status_code
        == 403
    )
    assert Drill.objects.get(pk=drill.pk).state == DrillState.REQUESTED


def test_an_operator_sees_no_approve_button(operator, drill, make_user, client_for):
    other = make_user("omar-operator", "operator")
    page = client_for(other).get(reverse("experiments:approval", args=[drill.pk])).content.decode()
    assert "Approve this plan" not in page


def test_approving_a_plan_that_changed_since_the_page_was_rendered_is_refused(approver, drill, client_for):
    client = client_for(approver)
    seen = client.get(reverse("experiments:approval", args=[drill.pk])).context["form"].initial["plan_hash"]
    change_plan(drill.pk, {**PLAN, "max_duration_seconds": 300})

    response = client.post(reverse("experiments:approve", args=[drill.pk]), {"plan_hash": seen})
    assert response.status_code == 409
    assert "The plan changed since you reviewed it" in response.content.decode()
    assert Drill.objects.get(pk=drill.pk).state == DrillState.REQUESTED
    assert not Approval.objects.filter(drill=drill).exists()


def test_a_second_approval_says_the_drill_no_longer_waits(approver, admin, drill, client_for):
    services.approve(drill, admin)
    response = client_for(approver).post(
        reverse("experiments:approve", args=[drill.pk]), {"plan_hash": drill.plan_hash}, follow=True
    )
    assert "no longer waiting" in response.content.decode()
    assert Approval.objects.filter(drill=drill).count() == 1


# --- live page ------------------------------------------------------------------------


def test_the_drill_page_polls_while_live(viewer, make_drill, client_for):
    drill = make_drill(
        state=DrillState.RUNNING, figures={"time_to_failover": 4.2, "success_series": [[0, 100]]}
    )
    client = client_for(viewer)
    page = client.get(reverse("experiments:detail", args=[drill.pk])).content.decode()
    assert 'hx-trigger="every 2s, refresh"' in page
    assert "4.2 s" in page and 'id="success-series"' in page and "[[0, 100]]" in html.unescape(page)

    response = client.get(reverse("experiments:detail", args=[drill.pk]), headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "<html" not in response.content.decode()


def test_polling_stops_with_286_once_the_drill_is_final(viewer, make_drill, client_for):
    drill = make_drill(
        state=DrillState.PASSED,
        outcome_reason="Failed over in 4.2 s and recovered",
        figures={"time_to_failover": 4.2, "time_to_detect": 1.5, "time_to_recover": 3.0},
    )
    client = client_for(viewer)
    response = client.get(reverse("experiments:detail", args=[drill.pk]), headers={"HX-Request": "true"})
    assert response.status_code == 286
    body = response.content.decode()
    assert "Passed" in body and "Failed over in 4.2 s" in body
    page = client.get(reverse("experiments:detail", args=[drill.pk])).content.decode()
    assert '<section id="drill-live" class="drill-live" aria-live="polite">' in page  # not polled
    assert "Abort</button>" not in page


def test_the_drill_page_shows_its_region_and_application_now_and_keeps_polling_them_once_final(
    viewer, make_drill, client_for
):
    from tests.regions.test_overview import add_samples

    drill = make_drill(state=DrillState.PASSED, outcome_reason="Failed over in 4.2 s and recovered")
    stack = Stack.objects.create(application=drill.application, region=drill.region)
    add_samples(stack)
    client = client_for(viewer)

    page = client.get(reverse("experiments:detail", args=[drill.pk])).content.decode()

    now_url = reverse("regions:now", args=["orders", "us-east-1"])
    assert f'hx-get="{now_url}" hx-trigger="every 2s, refresh"' in page
    assert 'data-status-of="orders/us-east-1" data-status="healthy"' in page
    assert 'data-status-of="orders" data-status="healthy"' in page
    assert "unknown: no lag samples" in page and '<dt id="def-lag">' in page
    assert 'data-drill="' not in page  # the drill is over: no "drill running" marker
    polled = client.get(now_url, headers={"HX-Request": "true"}).content.decode()
    assert 'data-status-of="orders/us-east-1" data-status="healthy"' in polled


def test_an_inconclusive_drill_page_says_what_could_not_be_tested(viewer, make_drill, client_for):
    reason = "the target never served any observer before the fault"
    drill = make_drill(state=DrillState.INCONCLUSIVE, outcome_reason=reason, finished_at=timezone.now())
    client = client_for(viewer)
    url = reverse("experiments:detail", args=[drill.pk])

    page = client.get(url).content.decode()

    assert 'class="badge badge--amber badge--large" data-state="inconclusive">Inconclusive<' in page
    assert f"The hypothesis could not be tested: {reason}" in page
    assert "not a pass" in page and "Passed" not in page
    assert '<section id="drill-live" class="drill-live" aria-live="polite">' in page  # final: not polled
    assert "Abort</button>" not in page
    partial = client.get(url, headers={"HX-Request": "true"})
    assert partial.status_code == 286
    assert f"The hypothesis could not be tested: {reason}" in partial.content.decode()


def test_the_explanation_is_only_for_inconclusive_drills(viewer, make_drill, client_for):
    drill = make_drill(state=DrillState.FAILED, outcome_reason="No failover within 60 s (hypothesis)")
    page = client_for(viewer).get(reverse("experiments:detail", args=[drill.pk])).content.decode()
    assert "No failover within 60 s" in page
    assert "could not be tested" not in page


def test_inconclusive_has_a_colour_of_its_own_and_is_final():
    # (every colour's badge style: tests/controlplane/test_choices.py)
    assert DrillState.INCONCLUSIVE.badge == "amber"
    assert all(s.badge != "amber" for s in DrillState if s != DrillState.INCONCLUSIVE)
    assert DrillState.INCONCLUSIVE in FINAL_STATES and DrillState.INCONCLUSIVE not in LIVE_STATES


@pytest.mark.parametrize("steps", [2, 20])
def test_the_drill_page_costs_the_same_whatever_its_timeline(
    steps, viewer, make_drill, client_for, django_assert_max_num_queries, deadline
):
    drill = make_drill(state=DrillState.RUNNING)
    for i in range(steps):
        DrillStep.add(drill.pk, StepKind.NOTE, f"step {i}")
        Compensation.objects.create(
            drill=drill,
            fault_kind="route53_health_check_invert",
            target={},
            call={"operation": "X"},
            inverse={"operation": "Y"},
            deadline=deadline,
        )
    client = client_for(viewer)
    url = reverse("experiments:detail", args=[drill.pk])
    client.get(url)
    # session, user, drill, steps, ledger, approvals, the status loader's six (the region
    # and application now), halt, perms x2, roles, heartbeats (base.html's footer)
    with django_assert_max_num_queries(17):
        assert client.get(url).status_code == 200
    # a poll that renders: session, user, perms x2, the version, drill, steps, ledger,
    # decisions, roles; no footer, so no heartbeats
    with django_assert_max_num_queries(10):
        assert client.get(url, headers={"HX-Request": "true"}).status_code == 200


def test_an_operator_aborts_a_drill_not_yet_started(operator, drill, client_for):
    response = client_for(operator).post(reverse("experiments:abort", args=[drill.pk]), {"reason": "enough"})
    assert response.status_code == 302
    drill.refresh_from_db()
    assert drill.state == DrillState.ABORTED and drill.outcome_reason == "enough"
    assert _actions(drill) == ["drill.aborted"]


def test_an_abort_of_a_running_drill_is_requested(approver, make_drill, client_for):
    from django.utils import timezone

    # A worker that beats: the runner reverts (a drill whose worker is gone ends at once,
    # tests/experiments/test_hardening.py).
    drill = make_drill(state=DrillState.RUNNING, worker="worker@host", heartbeat_at=timezone.now())
    client_for(approver).post(reverse("experiments:abort", args=[drill.pk]), {})
    drill.refresh_from_db()
    assert drill.abort_requested_at is not None
    assert _actions(drill) == ["drill.abort_requested"]
    assert DrillStep.objects.filter(drill=drill, message__startswith="Abort requested").exists()


# --- halt -----------------------------------------------------------------------------


def test_an_operator_halts_with_a_reason_and_every_page_shows_the_banner(operator, viewer, client_for):
    client = client_for(operator)
    response = client.post(reverse("experiments:halt"), {"reason": ""}, follow=True)
    assert "Say why you halt all drills." in response.content.decode()
    assert not HaltState.objects.filter(halted=True).exists()

    client.post(reverse("experiments:halt"), {"reason": "real incident"})
    assert HaltState.objects.get(pk=1).halted
    assert AuditEvent.objects.filter(action="halt.halted").count() == 1
    viewer_client = client_for(viewer)
    page = viewer_client.get(LIST).content.decode()
    assert "Drills halted" in page and "real incident" in page
    banner = viewer_client.get(reverse("experiments:halt-banner")).content.decode()
    assert "Drills halted" in banner and "<html" not in banner


def test_only_an_admin_clears_the_halt_and_says_why(operator, approver, admin, client_for):
    services.halt_all(operator, "incident")
    for user in (operator, approver):
        assert client_for(user).post(reverse("experiments:clear-halt"), {"reason": "over"}).status_code == 403
    page = client_for(admin).get(LIST).content.decode()
    assert "Clear halt" in page and 'id="clear-reason"' in page
    client_for(admin).post(reverse("experiments:clear-halt"), {"reason": "incident resolved"})
    assert not HaltState.objects.get(pk=1).halted
    cleared = AuditEvent.objects.get(action="halt.cleared")
    assert cleared.actor == admin.username
    assert cleared.after == {"halted": False, "reason": "incident resolved"}
    assert "Drills halted" not in client_for(admin).get(LIST).content.decode()


@pytest.mark.parametrize("reason", ["", "  ", "x" * 501])
def test_clearing_the_halt_without_a_reason_is_refused_and_changes_nothing(
    reason, operator, admin, client_for
):
    services.halt_all(operator, "incident")
    response = client_for(admin).post(reverse("experiments:clear-halt"), {"reason": reason}, follow=True)
    page = response.content.decode()
    assert "Say why drills may run again." in page or "at most 500 characters" in page
    assert "The halt is cleared" not in page
    assert HaltState.objects.get(pk=1).halted
    assert not AuditEvent.objects.filter(action="halt.cleared").exists()


def test_an_approver_halts_all_drills(approver, make_drill, client_for):
    running = make_drill(state=DrillState.QUEUED)
    client = client_for(approver)
    assert "Halt all drills</button>" in client.get(LIST).content.decode()
    response = client.post(reverse("experiments:halt"), {"reason": "bad timing"}, follow=True)
    assert "All drills are halted" in response.content.decode()
    assert HaltState.objects.get(pk=1).halted
    halted = AuditEvent.objects.get(action="halt.halted")
    assert (halted.actor, halted.after["reason"]) == (approver.username, "bad timing")
    running.refresh_from_db()
    assert running.state == DrillState.ABORTED


# --- scorecard ------------------------------------------------------------------------


def test_the_scorecard_counts_days_since_the_last_pass_per_region(viewer, make_drill, client_for):
    now = timezone.now()
    make_drill(
        state=DrillState.PASSED, finished_at=now - timedelta(days=3), figures={"time_to_failover": 5.0}
    )
    make_drill(
        state=DrillState.FAILED, finished_at=now - timedelta(days=1), figures={"time_to_failover": 9.0}
    )
    app = Application.objects.get(name="orders")
    Stack.objects.create(application=app, region=Region.objects.get(code="us-east-1"))
    Stack.objects.create(application=app, region=Region.objects.create(code="us-west-2"))

    response = client_for(viewer).get(reverse("experiments:scorecard", args=["orders"]))
    regions = {r["code"]: r["days"] for r in response.context["regions"]}
    assert regions == {"us-east-1": 3, "us-west-2": None}
    assert [t["seconds"] for t in response.context["trend"]] == [5.0, 9.0]
    assert 'id="ttf-trend"' in response.content.decode()


def test_the_scorecard_counts_inconclusive_drills_apart_never_as_a_pass(viewer, make_drill, client_for):
    now = timezone.now()
    make_drill(state=DrillState.PASSED, finished_at=now - timedelta(days=10))
    make_drill(state=DrillState.INCONCLUSIVE, finished_at=now - timedelta(days=1), outcome_reason="x")
    make_drill(
        state=DrillState.INCONCLUSIVE, finished_at=now - timedelta(hours=1), outcome_reason="y",
        figures={"time_to_failover": 0.5},  # measured on too few requests
    )
    make_drill(state=DrillState.FAILED, finished_at=now - timedelta(days=2))
    make_drill(region="us-west-2", state=DrillState.INCONCLUSIVE, finished_at=now, outcome_reason="z")
    app = Application.objects.get(name="orders")
    Stack.objects.create(application=app, region=Region.objects.get(code="us-east-1"))
    Stack.objects.create(application=app, region=Region.objects.get(code="us-west-2"))

    response = client_for(viewer).get(reverse("experiments:scorecard", args=["orders"]))

    regions = {r["code"]: r for r in response.context["regions"]}
    assert dict(regions["us-east-1"]["counts"]) == {
        "passed": 1, "failed": 1, "inconclusive": 2, "aborted": 0, "errored": 0
    }
    assert regions["us-east-1"]["days"] == 10  # the inconclusive drills since do not count as passes
    assert response.context["trend"] == []  # nor does their time to fail over make the trend
    assert dict(regions["us-west-2"]["counts"])["inconclusive"] == 1
    assert (regions["us-west-2"]["days"], regions["us-west-2"]["last_pass"]) == (None, None)
    assert dict(response.context["totals"]) == {
        "passed": 1, "failed": 1, "inconclusive": 3, "aborted": 0, "errored": 0
    }
    page = response.content.decode()
    assert '<th scope="col" class="num">Inconclusive</th>' in page
    cell = page.split('data-region="us-east-1" data-outcome="inconclusive">')[1].split("</td>")[0]
    assert "state=inconclusive" in cell and '<span class="badge badge--amber">2</span>' in cell
    assert 'data-region="us-west-2" data-outcome="passed"><span class="muted">0</span>' in page


def test_outcome_counts_start_every_outcome_at_zero_and_take_the_last_pass():
    when = timezone.now()
    rows = [("us-east-1", "inconclusive", 4, when), ("us-east-1", "passed", 2, when - timedelta(days=1))]

    (region,) = outcome_counts(rows).values()

    assert region["counts"] == [
        (DrillState.PASSED, 2),
        (DrillState.FAILED, 0),
        (DrillState.INCONCLUSIVE, 4),
        (DrillState.ABORTED, 0),
        (DrillState.ERRORED, 0),
    ]
    assert region["last_pass"] == when - timedelta(days=1)


@pytest.mark.parametrize("count", [3, 30])
def test_the_scorecard_costs_the_same_whatever_the_number_of_drills(
    count, viewer, make_drill, client_for, django_assert_max_num_queries
):
    for i in range(count):
        make_drill(state=[DrillState.PASSED, DrillState.INCONCLUSIVE, DrillState.FAILED][i % 3])
    app = Application.objects.get(name="orders")
    Stack.objects.create(application=app, region=Region.objects.get(code="us-east-1"))
    client = client_for(viewer)
    url = reverse("experiments:scorecard", args=["orders"])
    client.get(url)  # warm the session
    # session, user, user perms, group perms, application, stacks, recent drills, outcome
    # counts, halt, roles and heartbeats (context processor)
    with django_assert_max_num_queries(11):
        assert client.get(url).status_code == 200


def test_the_scorecard_of_an_unknown_application_is_404(viewer, client_for):
    assert client_for(viewer).get(reverse("experiments:scorecard", args=["nope"])).status_code == 404


# --- scenarios ------------------------------------------------------------------------


def test_an_operator_creates_and_edits_a_scenario(operator, client_for, db):
    client = client_for(operator)
    data = {
        "slug": "slow-region",
        "name": "Slow region",
        "description": "",
        "fault_kind": "ssm_failure_flag",
        "target_selector": "{}",
        "parameters": '{"fault_type": "latency", "delay": 400, "rate": 1.0}',
        "hypothesis": "{}",
        "stop_conditions": "[]",
        "max_duration": "00:05:00",
        "architecture": "",
    }
    response = client.post(reverse("experiments:scenario-create"), data)
    assert response.status_code == 302, response.context["form"].errors
    scenario = Scenario.objects.get(slug="slow-region")
    assert scenario.created_by == operator
    response = client.post(
        reverse("experiments:scenario-save", args=["slow-region"]), {**data, "max_duration": "05:00:00"}
    )
    assert response.status_code == 400
    assert "At most" in response.context["form"].errors["max_duration"][0]
    client.post(reverse("experiments:scenario-save", args=["slow-region"]), {**data, "name": "Slower"})
    assert Scenario.objects.get(slug="slow-region").name == "Slower"
    assert list(
        AuditEvent.objects.filter(action__startswith="scenario.")
        .values_list("action", flat=True)
        .order_by("seq")
    ) == ["scenario.created", "scenario.updated"]


def test_built_in_scenarios_are_read_only(operator, client_for, db):
    from experiments.scenarios import ensure_builtin_scenarios

    ensure_builtin_scenarios()
    client = client_for(operator)
    page = client.get(reverse("experiments:scenario", args=["fail-region-health-check"]))
    assert page.context["form"] is None and "Copy it" in page.content.decode()
    # Its settings as the JSON the form and the API take, not Python's repr.
    body = page.content.decode()
    assert "{&#x27;" not in body and "&quot;component_kind&quot;: &quot;route53_health_check&quot;" in body
    assert (
        client.post(
            reverse("experiments:scenario-save", args=["fail-region-health-check"]), {"name": "x"}
        ).status_code
        == 403
    )


def test_a_viewer_cannot_create_scenarios(viewer, client_for, db):
    client = client_for(viewer)
    assert client.get(reverse("experiments:scenario-new")).status_code == 403
    assert client.post(reverse("experiments:scenario-create"), {}).status_code == 403


def test_the_drill_page_says_who_detected_and_what_each_figure_means(viewer, make_drill, client_for):
    drill = make_drill(
        state=DrillState.PASSED, finished_at=timezone.now(),
        figures={"time_to_detect": 2.3, "detected_by": "regional /health failing", "time_to_failover": 4.2,
                 "lag_during_ms": 2400.0, "time_to_converge": 0.7, "rpo_ms": 2400.0},
    )
    page = client_for(viewer).get(reverse("experiments:detail", args=[drill.pk])).content.decode()
    assert "2.3 s (regional /health failing)" in page
    assert "What these figures mean" in page
    for label in ("Time to detect", "Time to converge", "RPO estimate", "Max lag during"):
        assert f"<dt>{label}</dt><dd>" in page  # each shown figure has its definition
    assert "the first fault call" in page
