"""The versions of what the drills pages poll (controlplane.rendering.polled): for each,
one statement whose answer changes whenever what the page shows would.

Raw SQL, built once from the models' tables, values as parameters: the ORM took 2-10 ms
of Python to build these queries (more than the database took to answer them, and most
of a poll when nothing changed: bench/pages.py), and their answers are compared, never
shown. Every column named here is a model field's."""

from datetime import UTC, datetime

from django.db import connection
from django.utils.dateparse import parse_datetime

from experiments.models import (
    FINAL_STATES,
    OPEN_COMPENSATION_STATES,
    STATE_TIMESTAMP,
    Approval,
    Compensation,
    Drill,
    DrillStep,
    HaltState,
    Schedule,
    ScheduleOccurrence,
)
from regions.models import Application, Stack

_DRILL, _STEP, _APPROVAL, _LEDGER, _HALT, _APP, _STACK, _SCHEDULE, _OCCURRENCE = (
    model._meta.db_table
    for model in (Drill, DrillStep, Approval, Compensation, HaltState, Application, Stack, Schedule,
                  ScheduleOccurrence)
)
# The time each state was entered (services.transition sets it with the state), the abort request.
_TIMES = sorted({*STATE_TIMESTAMP.values(), "abort_requested_at"})
# Where drills() rows hold the latest finished_at (after region and state).
LAST_FINISHED = 2 + _TIMES.index("finished_at")

_DRILLS = (
    f"SELECT region_id, state, COUNT(*), MAX(id), {', '.join(f'MAX({c})' for c in _TIMES)} "  # noqa: S608
    f"FROM {_DRILL} {{where}} GROUP BY region_id, state ORDER BY region_id, state"
)
_OPEN = ", ".join(["%s"] * len(OPEN_COMPENSATION_STATES))
_DRILL_PAGE = f"""
    SELECT d.state, d.plan_hash, d.outcome_reason, d.abort_requested_at, d.finished_at,
           CAST(d.figures AS TEXT),
           (SELECT MAX(id) FROM {_STEP} WHERE drill_id = d.id),
           (SELECT MAX(id) FROM {_APPROVAL} WHERE drill_id = d.id),
           l.n, l.n_open, l.attempts, l.injected, l.reverted
    FROM {_DRILL} d LEFT JOIN (
        SELECT drill_id, COUNT(*) AS n, SUM(CASE WHEN state IN ({_OPEN}) THEN 1 ELSE 0 END) AS n_open,
               SUM(attempts) AS attempts, MAX(injected_at) AS injected, MAX(reverted_at) AS reverted
        FROM {_LEDGER} WHERE drill_id = %s GROUP BY drill_id
    ) l ON l.drill_id = d.id
    WHERE d.id = %s"""  # noqa: S608
_HALT_SWITCH = f"SELECT halted, reason, halted_by, halted_at FROM {_HALT} WHERE id = 1"  # noqa: S608
_FINAL = ", ".join(["%s"] * len(FINAL_STATES))
# A schedule's row and its occurrences: added (count, id), given their drill (count of
# drill ids), each drill's state change (the latest time each state was entered) and how
# many of those drills are not final yet.
_SCHEDULE_PAGE = f"""
    SELECT s.state, s.approved_by_id, s.approved_at, s.active_since, s.expires_at,
           COUNT(o.id), MAX(o.id), COUNT(o.drill_id),
           SUM(CASE WHEN d.id IS NOT NULL AND d.state NOT IN ({_FINAL}) THEN 1 ELSE 0 END),
           {', '.join(f'MAX(d.{c})' for c in _TIMES)}
    FROM {_SCHEDULE} s LEFT JOIN {_OCCURRENCE} o ON o.schedule_id = s.id
         LEFT JOIN {_DRILL} d ON d.id = o.drill_id
    WHERE s.id = %s GROUP BY s.id, s.state, s.approved_by_id, s.approved_at, s.active_since, s.expires_at"""  # noqa: S608
# Every schedule per state (a pause moves a count; an approval and a resume set a time),
# with every occurrence (added, given its drill).
_SCHEDULES = f"""
    SELECT g.state, g.n, g.newest, g.approved, g.active, g.expires, o.n, o.newest, o.with_drill
    FROM (SELECT state, COUNT(*) AS n, MAX(id) AS newest, MAX(approved_at) AS approved,
                 MAX(active_since) AS active, MAX(expires_at) AS expires
          FROM {_SCHEDULE} GROUP BY state) g
    CROSS JOIN (SELECT COUNT(*) AS n, MAX(id) AS newest, COUNT(drill_id) AS with_drill FROM {_OCCURRENCE}) o
    ORDER BY g.state"""  # noqa: S608
_STACKS = f"""
    SELECT a.id, COUNT(s.id), MAX(s.id) FROM {_APP} a LEFT JOIN {_STACK} s ON s.application_id = a.id
    WHERE a.name = %s GROUP BY a.id"""  # noqa: S608


def _one(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def drill(pk):
    """What the drill page's polled parts show changes only with these, or None (no such
    drill): its state, plan, reason, abort request and figures; its newest timeline step
    and decision (both only appended); its ledger's rows, open rows, revert attempts and
    latest injection and revert (every change of a ledger row moves one of them)."""
    return _one(_DRILL_PAGE, [*OPEN_COMPENSATION_STATES, pk, pk])


def drills(application_id=None):
    """[(region id, state, count, newest id, latest time of each state entered..., of the
    abort request)] of every drill (or one application's): a table of drills changes
    only with these. A state change moves a count and sets its state's time; a request
    adds an id; the reason and figures are written with the final state."""
    with connection.cursor() as cursor:
        if application_id is None:
            cursor.execute(_DRILLS.format(where=""))
        else:
            cursor.execute(_DRILLS.format(where="WHERE application_id = %s"), [application_id])
        return cursor.fetchall()


def halt():
    """The halt switch as the banner and the drills list's halt panel show it."""
    return _one(_HALT_SWITCH)


def schedule(pk):
    """What a schedule page's polled part shows changes only with these, or None (no
    such schedule): its state, approval, activity and expiry; its occurrences, their
    drills and each state those drills entered; how many are not final (OPEN_DRILLS)."""
    return _one(_SCHEDULE_PAGE, [*FINAL_STATES, pk])


# Where a schedule() row holds how many of the schedule's drills are not final.
OPEN_DRILLS = 8


def schedules():
    """[(state, count, newest id, latest approval, activation and expiry; then of every
    occurrence: count, newest id, how many have a drill)] per state of the schedules: the
    schedules list changes only with these (and with the clock: its next times)."""
    with connection.cursor() as cursor:
        cursor.execute(_SCHEDULES)
        return cursor.fetchall()


def stacks_of(name):
    """(application id, its stacks, the newest stack's id), or None: no such application."""
    return _one(_STACKS, [name])


def as_datetime(value):
    """A timestamp as raw SQL returns it (SQLite: text in UTC) as an aware datetime."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value
