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
    OPEN_COMPENSATION_STATES,
    STATE_TIMESTAMP,
    Approval,
    Compensation,
    Drill,
    DrillStep,
    HaltState,
)
from regions.models import Application, Stack

_DRILL, _STEP, _APPROVAL, _LEDGER, _HALT, _APP, _STACK = (
    model._meta.db_table
    for model in (Drill, DrillStep, Approval, Compensation, HaltState, Application, Stack)
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
