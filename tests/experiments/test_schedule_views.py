"""The schedules console: the list, the proposal form, a schedule's page with its plan
hashes, occurrences and buttons by role, and its live part (experiments.schedule_views)."""

import html
import re
from datetime import date, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from controlplane.models import AuditEvent, AuditSource
from experiments import schedules
from experiments.models import OccurrenceState, Schedule, ScheduleOccurrence, ScheduleState
from tests.experiments.test_schedules import HOURLY, approved, propose
from tests.experiments.test_schedules import hashes as hashes  # the fixture

LIST = reverse("experiments:schedules")
NEW = reverse("experiments:schedule-new")
CREATE = reverse("experiments:schedule-create")
HTMX = {"HX-Request": "true"}


def _page(schedule):
    return reverse("experiments:schedule", args=[schedule.pk])


def _action(schedule, name):
    return reverse(f"experiments:schedule-{name}", args=[schedule.pk])


def _text(response):
    return html.unescape(response.content.decode())


def _proposal(**fields):
    expires = (timezone.now() + timedelta(days=10)).strftime("%Y-%m-%dT%H:%M")
    return {"application": "orders", "region": "us-east-1", "scenario": "fail-region-health-check",
            "cron": HOURLY, "time_zone": "Europe/Berlin", "run_window": "20", "expires_at": expires, **fields}


# --- the list -----------------------------------------------------------------------


def test_every_role_sees_the_list_and_only_operators_are_offered_to_propose(
    hashes, viewer, operator, outsider, client_for
):
    propose(operator)
    seen = client_for(viewer).get(LIST)
    assert seen.status_code == 200
    assert "Propose schedule" not in _text(seen)
    assert seen["Cache-Control"].startswith("max-age=0") and "no-store" in seen["Cache-Control"]
    assert "Propose schedule" in _text(client_for(operator).get(LIST))
    assert client_for(outsider).get(LIST).status_code == 403


def test_the_list_shows_state_target_recurrence_next_time_expiry_and_last_time(
    hashes, operator, approver, viewer, client_for
):
    waiting = propose(operator, region=None, cron="0 3 * * 1", time_zone="America/New_York")
    running, t0 = approved(operator, approver)
    schedules.run_due(t0 + timedelta(hours=1, minutes=31))  # t0+30 missed, t0+90 made a drill

    text = _text(client_for(viewer).get(LIST))

    first, second = text.index(f'data-schedule="{running.pk}"'), text.index(f'data-schedule="{waiting.pk}"')
    row_waiting, row_running = text[second:], text[first:second]
    assert "Proposed (waits for approval)" in row_waiting and "each region in turn" in row_waiting
    assert "0 3 * * 1" in row_waiting and "America/New_York" in row_waiting
    assert "after approval" in row_waiting and "none yet" in row_waiting
    assert "Approved (running on schedule)" in row_running and "us-east-1" in row_running
    # the next time after now (the times up to t0+90 are behind, in the test's future or not)
    next_at = schedules.next_due(running, max(timezone.now(), t0))
    assert f"{next_at:%Y-%m-%d %H:%M} UTC" in row_running
    assert f"{running.expires_at:%Y-%m-%d %H:%M} UTC" in row_running
    last = ScheduleOccurrence.objects.get(schedule=running, state=OccurrenceState.CREATED)
    assert f"{last.due_at:%Y-%m-%d %H:%M} UTC" in row_running
    assert f"drill #{last.drill_id}" in row_running


@pytest.mark.parametrize("count", [3, 20])
def test_the_list_costs_the_same_whatever_the_number_of_schedules(
    count, hashes, operator, approver, viewer, client_for, django_assert_max_num_queries
):
    for _ in range(count):
        schedule, t0 = approved(operator, approver)
        schedules.run_schedule(schedule, t0 + timedelta(minutes=31))
    client = client_for(viewer)
    client.get(LIST)  # warm the session
    # count, rows, their last occurrences, roles, halt switch, heartbeats (base.html footer)
    with django_assert_max_num_queries(6):
        response = client.get(LIST)
    assert response.status_code == 200
    assert _text(response).count("Drill created") == count


def test_the_drills_list_links_to_the_schedules(viewer, client_for, db):
    assert f'href="{LIST}"' in _text(client_for(viewer).get(reverse("experiments:list")))


# --- proposing ----------------------------------------------------------------------


def test_an_operator_proposes_a_schedule_through_the_form(hashes, operator, client_for):
    client = client_for(operator)
    form = client.get(NEW)
    assert form.status_code == 200
    assert 'name="cron"' in _text(form) and "each region in turn" in _text(form)

    response = client.post(CREATE, _proposal())

    schedule = Schedule.objects.get()
    assert response.status_code == 302 and response["Location"] == _page(schedule)
    assert (schedule.state, schedule.requested_by, schedule.time_zone) == (
        ScheduleState.PROPOSED, operator, "Europe/Berlin")
    assert schedule.run_window == timedelta(minutes=20)
    event = AuditEvent.objects.get(action="schedule.proposed")
    assert (event.actor, event.source) == (operator.username, AuditSource.CONSOLE)
    page = _text(client.get(_page(schedule)))
    assert f"Schedule #{schedule.pk} proposed" in page
    assert "a" * 64 in page and schedules.plan_digest({"us-east-1": "a" * 64}) in page
    assert "You proposed this schedule" in page and "Approve these plans" not in page


@pytest.mark.parametrize(("fields", "message"), [
    ({"cron": "every monday"}, "is not a cron expression of five fields"),
    ({"time_zone": "Mars/Olympus"}, "is not a time zone name"),
    ({"expires_at": (timezone.now() + timedelta(days=200)).strftime("%Y-%m-%dT%H:%M")}, "at most 90 days"),
    ({"expires_at": "tomorrow"}, "Enter a valid date/time."),
    ({"run_window": "0"}, "between 1 minute and 24 hours"),
    ({"run_window": "fifteen"}, "Enter a whole number."),
    ({"application": "nope"}, "Unknown application 'nope'."),
    ({"scenario": ""}, "Choose a scenario."),
    ({"cron": ""}, "Give the recurrence as five cron fields."),
])
def test_bad_input_gets_a_form_error_and_changes_nothing(hashes, operator, client_for, fields, message):
    response = client_for(operator).post(CREATE, _proposal(**fields))

    assert response.status_code == 400
    assert message in _text(response)
    assert 'class="field-error"' in _text(response)
    assert not Schedule.objects.exists()
    assert not AuditEvent.objects.filter(action="schedule.proposed").exists()


def test_viewers_and_approvers_may_not_propose(hashes, viewer, approver, client_for):
    for user in (viewer, approver):
        client = client_for(user)
        assert client.get(NEW).status_code == 403
        assert client.post(CREATE, _proposal()).status_code == 403
    assert not Schedule.objects.exists()


# --- approving ----------------------------------------------------------------------


def test_an_approver_approves_the_plans_with_the_button(hashes, operator, approver, client_for):
    schedule = propose(operator)
    client = client_for(approver)
    page = _text(client.get(_page(schedule)))
    assert "Approve these plans" in page
    digest = schedules.plan_digest(schedule.plan_hashes)
    assert f'value="{digest}"' in page

    response = client.post(_action(schedule, "approve"), {"plan_hash": digest, "comment": "weekly proof"})

    assert response.status_code == 302
    schedule.refresh_from_db()
    assert (schedule.state, schedule.approved_by, schedule.approval_comment) == (
        ScheduleState.APPROVED, approver, "weekly proof")
    assert AuditEvent.objects.get(action="schedule.approved").source == AuditSource.CONSOLE
    page = _text(client.get(_page(schedule)))
    assert "approved: its times run under this approval" in page
    assert "Approved by anna-approver" in page and "“weekly proof”" in page
    assert page.count("a" * 64) == 2  # proposed and approved
    assert "Approve these plans" not in page and ">Pause</button>" in page

    again = client.post(_action(schedule, "approve"), {"plan_hash": digest}, follow=True)
    assert "it no longer waits for approval; nothing was done" in _text(again)
    assert AuditEvent.objects.filter(action="schedule.approved").count() == 1


def test_the_proposer_is_refused_with_the_services_message(hashes, admin, client_for):
    schedule = propose(admin)  # an admin holds the approver's permission too
    client = client_for(admin)
    page = _text(client.get(_page(schedule)))
    assert "Approve these plans" not in page
    assert "The requester of a schedule cannot approve or reject it." in page

    digest = schedules.plan_digest(schedule.plan_hashes)
    response = client.post(_action(schedule, "approve"), {"plan_hash": digest})

    assert response.status_code == 403
    assert "The requester of a schedule cannot approve or reject it." in _text(response)
    schedule.refresh_from_db()
    assert schedule.state == ScheduleState.PROPOSED
    assert not AuditEvent.objects.filter(action="schedule.approved").exists()


def test_operators_and_viewers_get_no_approve_button_and_403(hashes, operator, viewer, make_user, client_for):
    schedule = propose(operator)
    for user in (make_user("olga-operator", "operator"), viewer):
        client = client_for(user)
        page = _text(client.get(_page(schedule)))
        assert "Approve these plans" not in page and "Waits for an approver other than otto-operator" in page
        digest = schedules.plan_digest(schedule.plan_hashes)
        assert client.post(_action(schedule, "approve"), {"plan_hash": digest}).status_code == 403
    schedule.refresh_from_db()
    assert schedule.state == ScheduleState.PROPOSED


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"plan_hash": "f" * 64}, 409, "not ffffffffffff… as you saw: reload the page"),
    ({}, 400, "The form did not say which plan you reviewed; reload the page."),
    ({"plan_hash": "a" * 64, "comment": "x" * 2001}, 400, "at most 2000 characters"),
])
def test_a_refused_approval_says_why_and_changes_nothing(
    hashes, operator, approver, client_for, body, status, message
):
    schedule = propose(operator)

    response = client_for(approver).post(_action(schedule, "approve"), body)

    assert response.status_code == status
    assert message in _text(response)
    schedule.refresh_from_db()
    assert schedule.state == ScheduleState.PROPOSED


def test_an_expired_proposal_cannot_be_approved(hashes, operator, approver, client_for):
    schedule = propose(operator)
    Schedule.objects.filter(pk=schedule.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    digest = schedules.plan_digest(schedule.plan_hashes)

    response = client_for(approver).post(_action(schedule, "approve"), {"plan_hash": digest})

    assert response.status_code == 409
    assert f"Schedule #{schedule.pk} expired at" in _text(response)
    schedule.refresh_from_db()
    assert schedule.state == ScheduleState.PROPOSED


# --- pausing and resuming -----------------------------------------------------------


def test_pause_and_resume_with_the_buttons_are_audited(hashes, operator, approver, client_for):
    schedule, _ = approved(operator, approver)
    client = client_for(operator)

    paused = client.post(_action(schedule, "pause"), {"reason": "change freeze"}, follow=True)

    schedule.refresh_from_db()
    assert schedule.state == ScheduleState.PAUSED
    page = _text(paused)
    assert "paused: no occurrence until it is resumed" in page
    assert ">Resume</button>" in page and ">Pause</button>" not in page and "none while paused" in page
    twice = client.post(_action(schedule, "pause"), {}, follow=True)
    assert f"Schedule #{schedule.pk} is paused, not approved: nothing done." in _text(twice)

    resumed = client_for(approver).post(_action(schedule, "resume"), {"reason": "freeze over"})

    assert resumed.status_code == 302
    schedule.refresh_from_db()
    assert schedule.state == ScheduleState.APPROVED
    events = AuditEvent.objects.filter(action__in=["schedule.paused", "schedule.resumed"]).order_by("seq")
    assert [(e.action, e.actor, e.after["reason"], e.source) for e in events] == [
        ("schedule.paused", operator.username, "change freeze", AuditSource.CONSOLE),
        ("schedule.resumed", approver.username, "freeze over", AuditSource.CONSOLE),
    ]


def test_bad_pause_and_resume_input_says_why_and_changes_nothing(
    hashes, operator, approver, viewer, client_for
):
    schedule, _ = approved(operator, approver)

    assert client_for(viewer).post(_action(schedule, "pause"), {}).status_code == 403
    too_long = client_for(operator).post(_action(schedule, "pause"), {"reason": "x" * 501})
    assert too_long.status_code == 400
    assert "Reason: Ensure this value has at most 500 characters" in _text(too_long)
    schedule.refresh_from_db()
    assert schedule.state == ScheduleState.APPROVED

    schedules.pause(schedule, operator)
    Schedule.objects.filter(pk=schedule.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    expired = client_for(operator).post(_action(schedule, "resume"), {})
    assert expired.status_code == 409
    assert f"Schedule #{schedule.pk} expired at" in _text(expired)
    schedule.refresh_from_db()
    assert schedule.state == ScheduleState.PAUSED
    assert not AuditEvent.objects.filter(action="schedule.resumed").exists()


# --- occurrences and the drill page -------------------------------------------------


def test_occurrences_are_listed_with_due_time_state_reason_and_drill(
    hashes, operator, approver, viewer, client_for
):
    schedule, t0 = approved(operator, approver)
    schedules.run_due(t0 + timedelta(hours=2, minutes=31))  # two times missed, the third made a drill
    skipped, _, made = ScheduleOccurrence.objects.filter(schedule=schedule).order_by("due_at")
    client = client_for(viewer)

    page = _text(client.get(_page(schedule)))

    rows = page[page.index('data-occurrence="'):]
    for occurrence in (skipped, made):
        assert f'data-occurrence="{occurrence.pk}"' in rows
        assert f"{occurrence.due_at:%Y-%m-%d %H:%M} UTC" in rows
    assert rows.index(f'data-occurrence="{made.pk}"') < rows.index(f'data-occurrence="{skipped.pk}"')
    assert skipped.reason.startswith("missed: not run by") and skipped.reason in rows
    assert f'href="{reverse("experiments:detail", args=[made.drill_id])}"' in rows
    assert "standing approval of schedule" in rows and "Queued" in rows
    assert "3 occurrences" in rows

    drill_page = _text(client.get(reverse("experiments:detail", args=[made.drill_id])))
    assert f'data-schedule="{schedule.pk}"' in drill_page
    assert f"schedule #{schedule.pk}</a> for its time {made.due_at:%Y-%m-%d %H:%M} UTC" in drill_page


def test_a_drill_not_made_by_a_schedule_names_none(viewer, make_drill, client_for):
    drill = make_drill()
    page = _text(client_for(viewer).get(reverse("experiments:detail", args=[drill.pk])))
    assert "data-schedule=" not in page


# --- live parts ---------------------------------------------------------------------


def _poll(client, url, tag=None):
    headers = {**HTMX, **({"HX-PTag": tag} if tag else {})}
    return client.get(url, headers=headers)


def test_the_schedule_page_polls_its_live_part_until_expired(hashes, operator, approver, client_for):
    schedule = propose(operator)
    client = client_for(operator)
    first = _poll(client, _page(schedule))
    assert first.status_code == 200
    assert _text(first).lstrip().startswith('<div class="drill-status">')
    assert _poll(client, _page(schedule), first["HX-PTag"]).status_code == 204

    schedules.approve(schedule, approver)
    approved_poll = _poll(client, _page(schedule), first["HX-PTag"])
    assert approved_poll.status_code == 200 and ">Pause</button>" in _text(approved_poll)

    schedules.pause(schedule, operator)
    paused = _poll(client, _page(schedule), approved_poll["HX-PTag"])
    assert paused.status_code == 200 and ">Resume</button>" in _text(paused)

    Schedule.objects.filter(pk=schedule.pk).update(state=ScheduleState.EXPIRED)
    final = _poll(client, _page(schedule), paused["HX-PTag"])
    assert final.status_code == 286  # stop polling
    assert "Resume" not in _text(final)


def test_an_occurrence_and_its_drills_state_change_the_pages_tag(hashes, operator, approver, client_for):
    schedule, t0 = approved(operator, approver)
    client = client_for(operator)
    tag = _poll(client, _page(schedule))["HX-PTag"]

    schedules.run_schedule(schedule, t0 + timedelta(minutes=31))
    made = _poll(client, _page(schedule), tag)
    assert made.status_code == 200 and "Drill created" in _text(made)

    drill = ScheduleOccurrence.objects.get(schedule=schedule).drill
    drill.__class__.objects.filter(pk=drill.pk).update(state="running", started_at=timezone.now())
    running = _poll(client, _page(schedule), made["HX-PTag"])
    assert running.status_code == 200 and "Running" in _text(running)


def test_the_list_poll_is_204_until_a_schedule_changes(hashes, operator, approver, viewer, client_for):
    schedule = propose(operator)
    client = client_for(viewer)
    first = _poll(client, LIST)
    assert _text(first).lstrip().startswith('<section id="schedule-table"')
    assert _poll(client, LIST, first["HX-PTag"]).status_code == 204

    schedules.approve(schedule, approver)
    changed = _poll(client, LIST, first["HX-PTag"])
    assert changed.status_code == 200 and "Approved (running on schedule)" in _text(changed)


def test_no_such_schedule_is_404(viewer, client_for, db):
    client = client_for(viewer)
    url = reverse("experiments:schedule", args=[999999])
    assert client.get(url).status_code == 404
    assert _poll(client, url).status_code == 404


def test_the_next_time_is_also_shown_in_the_schedules_own_zone(
    hashes, operator, approver, viewer, client_for
):
    schedule, _ = approved(operator, approver, cron="0 3 * * *", time_zone="Asia/Kolkata")  # UTC+05:30

    page = _text(client_for(viewer).get(reverse("experiments:schedule", args=[schedule.pk])))

    # 03:00 in Kolkata is 21:30 UTC the day before
    shown = re.search(r"Next time: <strong>(\S+) 21:30 UTC</strong> \((\S+) 03:00 Asia/Kolkata\)", page)
    assert shown, page
    assert date.fromisoformat(shown[2]) - date.fromisoformat(shown[1]) == timedelta(days=1)
