"""Game days (experiments/gamedays.py): proposed once, approved once on the hash of all
their steps' plans, run step after step by beat's pass from the database.

Most tests drive each step's drill through the drills service (its run is the runner's,
tested elsewhere): the plan is the fault library's business, replaced here by a table of
plan hashes a test can change. The last tests run real drills on a real Celery worker
against the sandbox.
"""

import json
from datetime import timedelta
from itertools import pairwise

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import close_old_connections
from django.urls import reverse

from controlplane import events
from controlplane.api import issue_token
from controlplane.events import EventKind
from controlplane.models import AuditEvent
from experiments import gamedays, plans, services, tasks
from experiments.models import (
    Approval,
    Drill,
    DrillState,
    GameDay,
    GameDayState,
    GameDayStep,
    Scenario,
)
from experiments.scenarios import ensure_builtin_scenarios, validate_scenario
from regions.models import Application, Architecture, Region, Stack
from tests.experiments.test_api import check
from tests.experiments.test_views import PLAN
from tests.processes import start_worker, wait_for

SCENARIO = "fail-region-health-check"


@pytest.fixture
def hashes(db, monkeypatch):
    """orders (architecture A) with stacks in us-east-1 and us-west-2; a plan's hash is
    read from this table by (scenario, application, region): change it to change a plan."""
    ensure_builtin_scenarios()
    app = Application.objects.create(name="orders", architecture=Architecture.DNS)
    for code in ("us-east-1", "us-west-2"):
        Stack.objects.create(application=app, region=Region.objects.create(code=code))
    table = {}

    def make_plan(scenario, application, region):
        key = (scenario.slug, application.name, region.code)
        digest = table.setdefault(key, f"{len(table):x}".rjust(64, "a"))
        return {**PLAN, "key": list(key), "digest": digest}, digest

    monkeypatch.setattr(plans, "make_plan", make_plan)
    return table


def _steps(*codes):
    scenario = Scenario.objects.get(slug=SCENARIO)
    app = Application.objects.get(name="orders")
    return [(scenario, app, Region.objects.get(code=code)) for code in codes]


def _propose(operator, codes=("us-east-1", "us-west-2", "us-east-1"), **options):
    return gamedays.propose(user=operator, name="Q3 game day", steps=_steps(*codes), **options)


def _drill_of(game_day, position):
    return GameDayStep.objects.get(game_day=game_day, position=position).drill


def _end(drill, state, reason=""):
    """The step's drill runs and ends as `state` (what the runner does, through the service)."""
    assert services.transition(drill.pk, [DrillState.QUEUED], DrillState.RUNNING)
    assert services.transition(drill.pk, [DrillState.RUNNING], state, outcome_reason=reason)


def _fresh(game_day):
    return GameDay.objects.get(pk=game_day.pk)


def _actions(game_day):
    events = AuditEvent.objects.filter(object_type="experiments.gameday", object_id=str(game_day.pk))
    return list(events.order_by("seq").values_list("action", flat=True))


# --- proposing and deciding ---------------------------------------------------------------


def test_a_proposal_plans_every_step_and_hashes_them_together(hashes, operator):
    game_day = _propose(operator, pause_seconds=30)
    steps = list(game_day.steps.order_by("position"))
    assert [s.region.code for s in steps] == ["us-east-1", "us-west-2", "us-east-1"]
    assert game_day.plan_hash == gamedays.combined_hash([s.plan_hash for s in steps])
    assert steps[0].plan_hash == steps[2].plan_hash != steps[1].plan_hash
    assert game_day.state == GameDayState.PROPOSED and game_day.pause == timedelta(seconds=30)
    assert not Drill.objects.exists()  # nothing runs before the approval
    event = AuditEvent.objects.get(action="gameday.proposed")
    assert event.actor == operator.username and event.after["plan_hash"] == game_day.plan_hash
    assert event.after["steps"][1] == f"{SCENARIO} on orders/us-west-2"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"name": "  "}, "name", "Name the game day."),
        ({"steps": []}, "steps", "Add at least one step"),
        ({"pause_seconds": -1}, "pause_seconds", "Whole seconds from 0 to 3600."),
        ({"pause_seconds": 3601}, "pause_seconds", "Whole seconds from 0 to 3600."),
        ({"steps": "twenty-one"}, "steps", f"At most {gamedays.MAX_STEPS} steps."),
        ({"steps": "no-stack"}, "steps", "Step 2: orders has no stack in eu-central-1."),
    ],
)
def test_a_bad_proposal_says_what_is_wrong_and_writes_nothing(hashes, operator, changes, field, message):
    values = {"name": "game day", "steps": _steps("us-east-1", "us-west-2"), "pause_seconds": 0}
    values.update(changes)
    if values["steps"] == "twenty-one":
        values["steps"] = _steps(*["us-east-1"] * 21)
    elif values["steps"] == "no-stack":
        Region.objects.create(code="eu-central-1")
        values["steps"] = _steps("us-east-1", "eu-central-1")
    with pytest.raises(ValidationError) as caught:
        gamedays.propose(user=operator, **values)
    assert any(m.startswith(message) for m in caught.value.message_dict[field])
    assert not GameDay.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="gameday.").exists()


def test_the_proposer_cannot_approve_a_viewer_cannot_propose_and_approval_needs_the_role(
    hashes, operator, viewer, make_user
):
    with pytest.raises(PermissionDenied):
        _propose(viewer)
    game_day = _propose(operator)
    with pytest.raises(PermissionDenied, match="The requester of a game day cannot approve"):
        gamedays.approve(game_day, operator)
    other_operator = make_user("op2", "operator")
    with pytest.raises(PermissionDenied, match="approver role"):
        gamedays.approve(game_day, other_operator)
    with pytest.raises(PermissionDenied):
        gamedays.reject(game_day, operator, comment="mine")
    assert _fresh(game_day).state == GameDayState.PROPOSED


def test_a_rejection_needs_a_reason_and_ends_it(hashes, operator, approver):
    game_day = _propose(operator)
    with pytest.raises(ValidationError):
        gamedays.reject(game_day, approver, comment=" ")
    assert gamedays.reject(game_day, approver, comment="not this week")
    game_day = _fresh(game_day)
    assert game_day.state == GameDayState.REJECTED and game_day.reason == "rejected: not this week"
    assert not gamedays.approve(game_day, approver)  # no longer waiting
    assert gamedays.advance(game_day.pk) == ""
    assert _actions(game_day) == ["gameday.proposed", "gameday.rejected"]


def test_an_approval_of_plans_that_changed_since_the_review_does_nothing(hashes, operator, approver):
    game_day = _propose(operator)
    seen = GameDay.objects.get(pk=game_day.pk)
    GameDay.objects.filter(pk=game_day.pk).update(plan_hash="f" * 64)
    assert gamedays.approve(seen, approver) is False
    assert _fresh(game_day).state == GameDayState.PROPOSED


# --- running ------------------------------------------------------------------------------


def test_three_drills_run_in_order_each_approved_by_the_game_day_s_approval(
    hashes, operator, approver, django_capture_on_commit_callbacks
):
    game_day = _propose(operator)
    assert gamedays.approve(game_day, approver, comment="go")
    drills = []
    for position in (1, 2, 3):
        told = []
        events.event_happened.connect(lambda kind, told=told, **_: told.append(kind), weak=False,
                                      dispatch_uid="t")
        try:
            with django_capture_on_commit_callbacks(execute=True):
                assert gamedays.advance(game_day.pk) == "step started"
        finally:
            events.event_happened.disconnect(dispatch_uid="t")
        # approved by the game day at once: nobody is told an approval is wanted
        assert EventKind.APPROVAL_WANTED not in told
        assert gamedays.advance(game_day.pk) == "running"  # a second pass does nothing more
        drill = _drill_of(game_day, position)
        assert drill.state == DrillState.QUEUED
        assert drill.requested_by == operator
        step = GameDayStep.objects.get(game_day=game_day, position=position)
        assert (drill.region_id, drill.plan_hash) == (step.region_id, step.plan_hash)
        approval = Approval.objects.get(drill=drill)
        assert approval.approver == approver and approval.plan_hash == drill.plan_hash
        assert approval.comment == (
            f"approved as step {position} of game day #{game_day.pk} by {approver.username}"
        )
        assert [d.pk for d in drills] == sorted(d.pk for d in drills)
        _end(drill, DrillState.PASSED)
        drills.append(drill)
        expected = "finished" if position == 3 else "next step"
        assert gamedays.advance(game_day.pk) == expected
    game_day = _fresh(game_day)
    assert game_day.state == GameDayState.FINISHED and game_day.reason == "3 of 3 drills passed"
    assert [d.region.code for d in drills] == ["us-east-1", "us-west-2", "us-east-1"]
    assert Drill.objects.count() == 3
    assert _actions(game_day) == [
        "gameday.proposed", "gameday.approved", "gameday.started",
        "gameday.step_started", "gameday.step_started", "gameday.step_started", "gameday.finished",
    ]


def test_the_next_step_waits_for_the_pause(hashes, operator, approver):
    game_day = _propose(operator, codes=("us-east-1", "us-west-2"), pause_seconds=60)
    gamedays.approve(game_day, approver)
    gamedays.advance(game_day.pk)
    _end(_drill_of(game_day, 1), DrillState.PASSED)
    assert gamedays.advance(game_day.pk) == "next step"
    ended = _drill_of(game_day, 1).finished_at
    assert gamedays.advance(game_day.pk, now=ended + timedelta(seconds=59)) == "pausing"
    assert _drill_of(game_day, 2) is None
    assert gamedays.advance(game_day.pk, now=ended + timedelta(seconds=60)) == "step started"
    assert _drill_of(game_day, 2).state == DrillState.QUEUED


@pytest.mark.parametrize("outcome", [DrillState.FAILED, DrillState.ERRORED, DrillState.INCONCLUSIVE,
                                     DrillState.ABORTED])
def test_a_drill_that_does_not_pass_stops_the_rest(hashes, operator, approver, outcome):
    game_day = _propose(operator)
    gamedays.approve(game_day, approver)
    gamedays.advance(game_day.pk)
    _end(_drill_of(game_day, 1), DrillState.PASSED)
    gamedays.advance(game_day.pk)
    gamedays.advance(game_day.pk)
    second = _drill_of(game_day, 2)
    _end(second, outcome, reason="time to fail over 9 s (at most 5 s)")
    assert gamedays.advance(game_day.pk) == "stopped: step did not pass"
    game_day = _fresh(game_day)
    assert game_day.state == GameDayState.STOPPED
    assert game_day.reason == f"step 2 (drill #{second.pk}) {outcome}: time to fail over 9 s (at most 5 s)"
    assert gamedays.advance(game_day.pk) == ""
    assert _drill_of(game_day, 3) is None and Drill.objects.count() == 2
    assert _actions(game_day)[-1] == "gameday.stopped"


def test_continue_on_failure_runs_the_rest(hashes, operator, approver):
    game_day = _propose(operator, continue_on_failure=True)
    gamedays.approve(game_day, approver)
    for position, outcome in ((1, DrillState.FAILED), (2, DrillState.INCONCLUSIVE), (3, DrillState.PASSED)):
        assert gamedays.advance(game_day.pk) == "step started"
        _end(_drill_of(game_day, position), outcome)
        gamedays.advance(game_day.pk)
    game_day = _fresh(game_day)
    assert game_day.state == GameDayState.FINISHED and game_day.reason == "1 of 3 drills passed"


def test_a_changed_plan_stops_it_at_that_step_until_approved_again(hashes, operator, approver):
    game_day = _propose(operator)
    gamedays.approve(game_day, approver)
    gamedays.advance(game_day.pk)
    _end(_drill_of(game_day, 1), DrillState.PASSED)
    gamedays.advance(game_day.pk)
    approved = _fresh(game_day).plan_hash
    hashes[(SCENARIO, "orders", "us-west-2")] = "c" * 64  # someone changed step 2's target
    assert gamedays.advance(game_day.pk) == "waiting: plan changed"
    game_day = _fresh(game_day)
    assert game_day.state == GameDayState.WAITING and game_day.current == 2
    assert game_day.reason.startswith("step 2's plan changed since the approval (digest):")
    assert game_day.reason.endswith("waiting for a new approval of the game day")
    assert Drill.objects.count() == 1  # no drill for the changed plan
    assert game_day.plan_hash != approved == game_day.approved_hash
    assert GameDayStep.objects.get(game_day=game_day, position=2).plan_hash == "c" * 64
    assert gamedays.advance(game_day.pk) == ""  # waits: beat does nothing

    assert gamedays.approve(game_day, approver, comment="new target reviewed")
    assert gamedays.advance(game_day.pk) == "step started"
    second = _drill_of(game_day, 2)
    assert second.plan_hash == "c" * 64 and second.state == DrillState.QUEUED
    assert _actions(game_day)[-4:] == [
        "gameday.stopped", "gameday.approved", "gameday.started", "gameday.step_started",
    ]
    stopped = AuditEvent.objects.filter(action="gameday.stopped").get()
    assert stopped.after["state"] == "waiting" and stopped.after["step"] == 2


def test_a_plan_that_changes_between_the_check_and_the_request_makes_no_step_drill(
    hashes, operator, approver, monkeypatch
):
    game_day = _propose(operator)
    gamedays.approve(game_day, approver)

    def request(**kwargs):
        """The plan changes after the game day's check, before the request plans it."""
        hashes[(SCENARIO, "orders", "us-east-1")] = "d" * 64
        return original(**kwargs)

    original = services.request
    monkeypatch.setattr(services, "request", request)
    assert gamedays.advance(game_day.pk) == "waiting: plan changed"
    [drill] = Drill.objects.all()
    assert drill.state == DrillState.ABORTED and "its plan changed since game day" in drill.outcome_reason
    assert _drill_of(game_day, 1) is None and _fresh(game_day).state == GameDayState.WAITING
    monkeypatch.setattr(services, "request", original)
    gamedays.approve(_fresh(game_day), approver)
    assert gamedays.advance(game_day.pk) == "step started"
    assert _drill_of(game_day, 1).plan_hash == "d" * 64


def test_halt_all_stops_it_and_aborts_the_running_drill(hashes, operator, approver):
    game_day, later = _propose(operator), _propose(operator)
    gamedays.approve(game_day, approver)
    gamedays.advance(game_day.pk)
    drill = _drill_of(game_day, 1)
    services.halt_all(operator, "real incident in us-east-1")
    assert Drill.objects.get(pk=drill.pk).state == DrillState.ABORTED  # the halt's own work
    assert gamedays.advance(game_day.pk) == "stopped: halted"
    game_day = _fresh(game_day)
    assert game_day.state == GameDayState.STOPPED
    assert game_day.reason == "halted: real incident in us-east-1"
    with pytest.raises(ValidationError, match="halted"):
        gamedays.approve(later, approver)
    with pytest.raises(ValidationError, match="halted"):
        _propose(operator)
    assert _fresh(later).state == GameDayState.PROPOSED


def test_an_abort_stops_it_and_aborts_its_running_drill(hashes, operator, approver, viewer):
    game_day = _propose(operator)
    gamedays.approve(game_day, approver)
    gamedays.advance(game_day.pk)
    with pytest.raises(PermissionDenied):
        gamedays.abort(game_day, viewer)
    assert gamedays.abort(game_day, operator, reason="customer demo")
    assert not gamedays.abort(game_day, operator)  # already stopped
    game_day = _fresh(game_day)
    assert game_day.state == GameDayState.STOPPED
    assert game_day.reason == f"aborted by {operator.username}: customer demo"
    drill = _drill_of(game_day, 1)
    assert drill.state == DrillState.ABORTED and f"game day #{game_day.pk}" in drill.outcome_reason


def test_an_approver_who_lost_the_role_approves_no_further_step(hashes, operator, approver):
    game_day = _propose(operator)
    gamedays.approve(game_day, approver)
    approver.groups.clear()
    approver = type(approver).objects.get(pk=approver.pk)  # no cached permissions
    assert gamedays.advance(game_day.pk) == "stopped: not approved"
    drill = _drill_of(game_day, 1)
    assert drill.state == DrillState.ABORTED and not Approval.objects.filter(drill=drill).exists()
    assert "could not be approved: Approving drills needs the approver role" in _fresh(game_day).reason


# --- console ------------------------------------------------------------------------------


def _form(codes, **fields):
    data = {"name": "Q3 game day", "pause_seconds": "5", "rows": str(len(codes)), **fields}
    for n, code in enumerate(codes, start=1):
        data |= {f"step_{n}_scenario": SCENARIO, f"step_{n}_application": "orders", f"step_{n}_region": code}
    return data


def test_the_console_proposes_approves_and_shows_the_steps(hashes, client_for, operator, approver, viewer):
    client = client_for(viewer)
    assert client.get(reverse("experiments:gameday-new")).status_code == 403
    assert client.post(reverse("experiments:gameday-create"), _form(["us-east-1"])).status_code == 403
    client = client_for(operator)
    page = client.get(reverse("experiments:gameday-new") + "?steps=4")
    assert page.status_code == 200 and b'name="step_4_region"' in page.content
    response = client.post(reverse("experiments:gameday-create"), _form(["us-east-1", "us-west-2"]))
    game_day = GameDay.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("experiments:gameday", args=[game_day.pk])
    detail = client.get(response["Location"]).content.decode()
    assert "Waiting for approval: The requester of a game day cannot approve or reject it." in detail
    assert "Approve game day" not in detail
    refused = client.post(reverse("experiments:gameday-approve", args=[game_day.pk]),
                          {"plan_hash": game_day.plan_hash})
    assert refused.status_code == 403

    client = client_for(approver)
    detail = client.get(reverse("experiments:gameday", args=[game_day.pk])).content.decode()
    assert "Approve game day" in detail and game_day.plan_hash in detail
    stale = client.post(reverse("experiments:gameday-approve", args=[game_day.pk]),
                        {"plan_hash": "b" * 64, "comment": "ok"})
    assert stale.status_code == 409 and "changed since you reviewed them" in stale.content.decode()
    approved = client.post(reverse("experiments:gameday-approve", args=[game_day.pk]),
                           {"plan_hash": game_day.plan_hash, "comment": "ok"})
    assert approved.status_code == 302 and _fresh(game_day).state == GameDayState.RUNNING
    gamedays.advance(game_day.pk)
    drill = _drill_of(game_day, 1)
    live = client.get(reverse("experiments:gameday", args=[game_day.pk]), headers={"HX-Request": "true"})
    assert live.status_code == 200
    html = live.content.decode()
    assert f'href="{reverse("experiments:detail", args=[drill.pk])}"' in html
    assert 'aria-current="step"' in html and 'data-drill-state="queued"' in html
    again = client.get(reverse("experiments:gameday", args=[game_day.pk]),
                       headers={"HX-Request": "true", "HX-PTag": live["HX-PTag"]})
    assert again.status_code == 204  # nothing changed: not rendered
    _end(drill, DrillState.PASSED)
    changed = client.get(reverse("experiments:gameday", args=[game_day.pk]),
                         headers={"HX-Request": "true", "HX-PTag": live["HX-PTag"]})
    html = changed.content.decode()
    assert changed.status_code == 200 and f'href="{reverse("experiments:evidence", args=[drill.pk])}"' in html
    listing = client.get(reverse("experiments:gamedays")).content.decode()
    assert "Q3 game day" in listing and 'data-state="running"' in listing


def test_a_bad_console_proposal_is_a_form_error(hashes, client_for, operator):
    client = client_for(operator)
    Region.objects.create(code="eu-central-1")
    response = client.post(reverse("experiments:gameday-create"),
                           _form(["us-east-1", "eu-central-1"], pause_seconds="99999"))
    assert response.status_code == 400
    html = response.content.decode()
    assert "Step 2: orders has no stack in eu-central-1." in html and "Whole seconds from 0 to 3600." in html
    half = _form(["us-east-1"], step_2_scenario=SCENARIO, rows="2")
    response = client.post(reverse("experiments:gameday-create"), half)
    assert response.status_code == 400
    assert "Step 2: choose a scenario, an application and a region." in response.content.decode()
    assert not GameDay.objects.exists()


def test_the_list_page_s_queries_do_not_grow_with_game_days(hashes, client_for, operator,
                                                            django_assert_max_num_queries):
    for _ in range(4):
        _propose(operator)
    client = client_for(operator)
    with django_assert_max_num_queries(8):
        assert client.get(reverse("experiments:gamedays")).status_code == 200


# --- API ----------------------------------------------------------------------------------


@pytest.fixture
def api(client):
    def call(user, method, name, *args, data=None):
        return client.generic(method, reverse(name, args=args), "" if data is None else json.dumps(data),
                              content_type="application/json",
                              headers={"Authorization": f"Bearer {issue_token(user)[1]}"})

    return call


def _body(codes=("us-east-1", "us-west-2"), **fields):
    steps = [{"scenario": SCENARIO, "application": "orders", "region": code} for code in codes]
    return {"name": "API game day", "steps": steps, **fields}


def test_the_api_proposes_gets_approves_and_aborts(hashes, api, operator, approver, viewer):
    assert api(viewer, "POST", "api-gamedays", data=_body()).status_code == 403
    created = api(operator, "POST", "api-gamedays", data=_body(pause_seconds=10, continue_on_failure=True))
    assert created.status_code == 201, created.json()
    body = check(created.json(), "GameDay")
    assert (body["state"], body["pause_seconds"], body["continue_on_failure"]) == ("proposed", 10, True)
    assert [s["region"] for s in body["steps"]] == ["us-east-1", "us-west-2"]
    pk = body["id"]
    assert api(operator, "POST", "api-gameday-approve", pk, data={}).status_code == 403
    conflict = api(approver, "POST", "api-gameday-approve", pk, data={"plan_hash": "b" * 64})
    assert conflict.status_code == 409 and conflict.json()["plan_hash"] == body["plan_hash"]
    approved = api(approver, "POST", "api-gameday-approve", pk, data={"plan_hash": body["plan_hash"]})
    assert approved.status_code == 200 and check(approved.json(), "GameDay")["state"] == "running"
    assert api(approver, "POST", "api-gameday-approve", pk, data={}).status_code == 409
    gamedays.advance(pk)
    got = check(api(viewer, "GET", "api-gameday", pk).json(), "GameDay")
    assert got["steps"][0]["drill_state"] == "queued" and got["steps"][1]["drill"] is None
    assert api(viewer, "POST", "api-gameday-abort", pk, data={}).status_code == 403
    stopped = api(operator, "POST", "api-gameday-abort", pk, data={"reason": "enough"})
    assert stopped.status_code == 200 and check(stopped.json(), "GameDay")["state"] == "stopped"
    assert api(operator, "POST", "api-gameday-abort", pk, data={}).status_code == 409
    assert api(viewer, "GET", "api-gameday", 999).status_code == 404


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"name": "x", "steps": "all"}, "steps", "steps must be an array"),
        ({"name": "x", "steps": [{"scenario": SCENARIO}]}, "steps", "Step 1: choose a scenario"),
        ({"name": "x", "steps": [{"scenario": 1, "application": "orders", "region": "us-east-1"}]},
         "steps", "Step 1: an object of strings"),
        (_body(pause_seconds="10"), "pause_seconds", "pause_seconds must be an integer"),
        (_body(pause_seconds=-5), "pause_seconds", "Whole seconds from 0 to 3600."),
        (_body(continue_on_failure="yes"), "continue_on_failure", "continue_on_failure must be true"),
        (_body(colour="red"), "colour", "Unknown field."),
        ({"name": "x", "steps": [{"scenario": "nope", "application": "orders", "region": "us-east-1"}]},
         "steps", "Step 1: Unknown scenario 'nope'."),
        (_body(name=""), "name", "Name the game day."),
    ],
)
def test_bad_api_proposals_get_a_400_naming_the_field(hashes, api, operator, body, field, message):
    response = api(operator, "POST", "api-gamedays", data=body)
    assert response.status_code == 400, response.json()
    check(response.json(), "ValidationError")
    assert any(m.startswith(message) for m in response.json()["fields"][field]), response.json()
    assert not GameDay.objects.exists()


def test_a_body_that_is_not_an_object_is_a_400(hashes, client, operator):
    response = client.post(reverse("api-gamedays"), "[1]", content_type="application/json",
                           headers={"Authorization": f"Bearer {issue_token(operator)[1]}"})
    assert response.status_code == 400 and not GameDay.objects.exists()


# --- real drills --------------------------------------------------------------------------


@pytest.fixture
def drill_queue_prefix():
    """The world's drill queue (tests/experiments/conftest.py) is the one the worker consumes."""
    return "gamedays"


def _unmeetable(base=SCENARIO):
    """A copy of a built-in whose hypothesis no real failover meets (a millisecond)."""
    source = Scenario.objects.get(slug=base)
    row = Scenario(slug="failover-in-a-millisecond", name="Failover in a millisecond",
                   fault_kind=source.fault_kind, target_selector=source.target_selector,
                   parameters=source.parameters, stop_conditions=source.stop_conditions,
                   max_duration=source.max_duration, architecture=source.architecture,
                   hypothesis={**source.hypothesis, "max_time_to_failover_seconds": 0.001})
    validate_scenario(row)
    row.save()
    return row


@pytest.mark.worker
@pytest.mark.sandbox
@pytest.mark.django_db(transaction=True)
def test_real_drills_run_in_order_on_a_worker_and_a_failure_stops_the_rest(
    world, settings, operator, approver, tmp_path
):
    orders, payments = Application.objects.get(name="orders"), Application.objects.get(name="payments")
    east, west = Region.objects.get(code="us-east-1"), Region.objects.get(code="us-west-2")
    steps = [
        (Scenario.objects.get(slug=SCENARIO), orders, east),
        (Scenario.objects.get(slug="dial-region-to-zero"), payments, west),
        (_unmeetable(), orders, east),
        (Scenario.objects.get(slug=SCENARIO), orders, west),
    ]
    game_day = gamedays.propose(user=operator, name="real", steps=steps, pause_seconds=1)
    worker = start_worker(settings.DRILL_QUEUE, tmp_path, CONTROLPLANE_DRILL_QUEUE=settings.DRILL_QUEUE,
                          DRILL_STEADY_STATE_SECONDS=1, DRILL_HOLD_SECONDS=2)
    try:
        assert gamedays.approve(game_day, approver, comment="real drills")

        def ended():
            # The test plays beat: the task beat runs every GAMEDAY_TICK_SECONDS.
            tasks.advance_gamedays()
            close_old_connections()
            return _fresh(game_day).is_final

        wait_for(ended, 300, interval=0.5, message=f"the game day to end:\n{worker.log()}")
    finally:
        worker.stop()
    game_day = _fresh(game_day)
    drills = [_drill_of(game_day, n) for n in (1, 2, 3)]
    assert [d.state for d in drills] == [DrillState.PASSED, DrillState.PASSED, DrillState.FAILED], [
        d.outcome_reason for d in drills
    ]
    assert [(d.application.name, d.region.code) for d in drills] == [
        ("orders", "us-east-1"), ("payments", "us-west-2"), ("orders", "us-east-1")
    ]
    for before, after in pairwise(drills):
        assert after.requested_at >= before.finished_at + timedelta(seconds=1)  # in order, after the pause
    assert _drill_of(game_day, 4) is None
    assert game_day.state == GameDayState.STOPPED
    assert game_day.reason.startswith(f"step 3 (drill #{drills[2].pk}) failed")
    assert all(Approval.objects.get(drill=d).comment.startswith(f"approved as step {n} ")
               for n, d in enumerate(drills, start=1))
