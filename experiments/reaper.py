"""The reaper: what makes rollback survive a killed worker.

Run by beat every few seconds (and once when a worker starts). It does not rely on
the broker handing a killed worker's message back: the compensation ledger in the
database is the truth.

1. A live drill (running or reverting) whose heartbeat is older than
   DRILL_HEARTBEAT_TIMEOUT_SECONDS, or that has an open ledger row past its deadline,
   is claimed with a conditional UPDATE (so two reapers never both act), its open
   ledger rows are reverted newest first, and it ends as errored: "worker lost, fault
   reverted" (or "... target gone, nothing to revert" when a target no longer exists,
   which closes its row for good). While a revert call fails, the drill stays live
   and the next pass retries. An abort of such a drill ends it the same way, at once
   (`take_over`, called by `lifecycle.abort`), as aborted.
2. Open ledger rows of drills that already ended (a runner that died between its
   last revert and its last write) are reverted too.
3. Queued drills that no worker picked up (the broker was down when they were
   approved) are dispatched again; the runner's queued -> running claim makes a
   duplicate message harmless.
"""

import logging
import socket
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from experiments import ledger, services
from experiments.models import (
    FINAL_STATES,
    OPEN_COMPENSATION_STATES,
    RUNNING_STATES,
    Compensation,
    CompensationState,
    Drill,
    DrillState,
)

log = logging.getLogger(__name__)
OPEN = list(OPEN_COMPENSATION_STATES)


def _revert(drill_id, me):
    """Revert the drill's open ledger rows as the reaper -> (rows reverted, problems)."""
    before = Compensation.objects.filter(drill_id=drill_id, state__in=OPEN).count()
    problems = ledger.revert_open(drill_id, by="Reaper: ", worker=me, verify=False)
    return before - len(problems), problems


def _stale(now):
    timeout = timedelta(seconds=settings.DRILL_HEARTBEAT_TIMEOUT_SECONDS)
    return Q(heartbeat_at__lt=now - timeout) | Q(heartbeat_at__isnull=True)


def take_over(drill_id, *, now=None, final_state=DrillState.ERRORED, reason="worker lost", actor=None,
              source=None, request_id=""):
    """Claim a live drill whose worker stopped beating (or whose ledger is overdue),
    revert its open ledger rows and end it as `final_state`. Returns the outcome reason,
    or None when it was not ours to take (alive, already claimed, or a revert call
    failed: then it stays live and the reaper's next pass retries)."""
    from controlplane.models import AuditSource

    now = now or timezone.now()
    me = f"reaper@{socket.gethostname()}"
    overdue = Compensation.objects.filter(drill_id=drill_id, state__in=OPEN, deadline__lt=now)
    row = Drill.objects.filter(pk=drill_id, state__in=RUNNING_STATES).values(
        "state", "worker"
    ).first()
    if row is None:
        return None
    claimed = Drill.objects.filter(
        _stale(now) | Q(pk__in=overdue.values("drill_id")),
        pk=drill_id, state=row["state"], worker=row["worker"],
    ).update(worker=me, heartbeat_at=now)
    if not claimed:
        return None
    _done, problems = _revert(drill_id, me)
    if Compensation.objects.filter(drill_id=drill_id, state__in=OPEN).exists():
        # A revert call failed: leave it live for the next pass; errors are in the rows.
        log.error("drill %s: %s; revert failed, retrying: %s", drill_id, reason, "; ".join(problems))
        return None
    outcome = f"{reason}, fault reverted" if not problems else f"{reason}; " + "; ".join(problems)
    closed = Compensation.objects.filter(drill_id=drill_id, state=CompensationState.CLOSED).count()
    if closed:
        outcome += f"; {closed} ledger row(s) closed by an admin without a revert"
    services.transition(
        drill_id,
        RUNNING_STATES,
        final_state,
        actor=actor,
        source=source or AuditSource.SYSTEM,
        request_id=request_id,
        outcome_reason=f"{outcome} (last worker {row['worker'] or 'unknown'})"[:2000],
        audit_data={"reason": outcome[:500], "worker": row["worker"]},
    )
    return outcome


def reap(now=None):
    """One pass. Returns {"drills": [ids ended], "rows": n reverted, "redispatched": [ids]}."""
    now = now or timezone.now()
    me = f"reaper@{socket.gethostname()}"
    ended, reverted, redispatched = [], 0, []

    overdue = Compensation.objects.filter(state__in=OPEN, deadline__lt=now).values_list("drill_id", flat=True)
    stale = Drill.objects.filter(
        _stale(now) | Q(pk__in=list(overdue)), state__in=RUNNING_STATES
    ).values_list("pk", "state", "worker")
    for drill_id, _state, _worker in stale:
        before = Compensation.objects.filter(drill_id=drill_id, state__in=OPEN).count()
        # Claims only if nobody beat since we looked.
        if take_over(drill_id, now=now) is not None:
            ended.append(drill_id)
        reverted += before - Compensation.objects.filter(drill_id=drill_id, state__in=OPEN).count()

    ended_with_open_rows = set(
        Compensation.objects.filter(state__in=OPEN, drill__state__in=list(FINAL_STATES)).values_list(
            "drill_id", flat=True
        )
    )
    for drill_id in sorted(ended_with_open_rows):
        done, problems = _revert(drill_id, me)
        reverted += done
        for problem in problems:
            log.error("drill %s: revert failed: %s", drill_id, problem)

    wait = timedelta(seconds=settings.DRILL_REDISPATCH_AFTER_SECONDS)
    from experiments import lifecycle

    for drill_id in Drill.objects.filter(state=DrillState.QUEUED, queued_at__lt=now - wait).values_list(
        "pk", flat=True
    ):
        if lifecycle.dispatch(drill_id):
            redispatched.append(drill_id)
    return {"drills": ended, "rows": reverted, "redispatched": redispatched}
