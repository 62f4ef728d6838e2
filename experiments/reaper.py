"""The reaper: what makes rollback survive a killed worker.

Run by beat every few seconds (and once when a worker starts). It does not rely on
the broker handing a killed worker's message back: the compensation ledger in the
database is the truth.

1. A live drill (running or reverting) whose heartbeat is older than
   DRILL_HEARTBEAT_TIMEOUT_SECONDS, or that has an open ledger row past its deadline,
   is claimed with a conditional UPDATE (so two reapers never both act), its open
   ledger rows are reverted newest first, and it ends as errored: "worker lost, fault
   reverted".
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

from experiments import services
from experiments.models import FINAL_STATES, Compensation, CompensationState, Drill, DrillState

log = logging.getLogger(__name__)
OPEN = [CompensationState.PENDING, CompensationState.INJECTED, CompensationState.FAILED]


def _revert(drill_id, me):
    """Revert the drill's open ledger rows as the reaper -> (rows reverted, problems)."""
    before = Compensation.objects.filter(drill_id=drill_id, state__in=OPEN).count()
    problems = services.revert_open(drill_id, by="Reaper: ", worker=me, verify=False)
    return before - len(problems), problems


def reap(now=None):
    """One pass. Returns {"drills": [ids ended], "rows": n reverted, "redispatched": [ids]}."""
    now = now or timezone.now()
    timeout = timedelta(seconds=getattr(settings, "DRILL_HEARTBEAT_TIMEOUT_SECONDS", 10))
    me = f"reaper@{socket.gethostname()}"
    ended, reverted, redispatched = [], 0, []

    overdue = Compensation.objects.filter(state__in=OPEN, deadline__lt=now).values_list("drill_id", flat=True)
    stale = Drill.objects.filter(
        Q(heartbeat_at__lt=now - timeout) | Q(heartbeat_at__isnull=True) | Q(pk__in=list(overdue)),
        state__in=[DrillState.RUNNING, DrillState.REVERTING],
    ).values_list("pk", "state", "worker")
    for drill_id, state, worker in stale:
        # Claim: only if nobody beat since we looked.
        claimed = Drill.objects.filter(
            Q(heartbeat_at__lt=now - timeout) | Q(heartbeat_at__isnull=True) | Q(pk__in=list(overdue)),
            pk=drill_id,
            state=state,
            worker=worker,
        ).update(worker=me, heartbeat_at=now)
        if not claimed:
            continue
        done, problems = _revert(drill_id, me)
        reverted += done
        reason = (
            "worker lost, fault reverted"
            if not problems
            else ("worker lost; revert failed, retrying: " + "; ".join(problems))
        )
        if problems:
            # Leave it live for the next pass; errors are in the ledger rows.
            log.error("drill %s: %s", drill_id, reason)
            continue
        services.transition(
            drill_id,
            [DrillState.RUNNING, DrillState.REVERTING],
            DrillState.ERRORED,
            outcome_reason=f"{reason} (last worker {worker or 'unknown'})",
            audit_data={"reason": reason, "worker": worker},
        )
        ended.append(drill_id)

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

    wait = timedelta(seconds=getattr(settings, "DRILL_REDISPATCH_AFTER_SECONDS", 15))
    from experiments import lifecycle

    for drill_id in Drill.objects.filter(state=DrillState.QUEUED, queued_at__lt=now - wait).values_list(
        "pk", flat=True
    ):
        if lifecycle.dispatch(drill_id):
            redispatched.append(drill_id)
    return {"drills": ended, "rows": reverted, "redispatched": redispatched}
