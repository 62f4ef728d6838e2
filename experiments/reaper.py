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
   and the next pass retries. This is `services.take_over`, which an abort of such a
   drill calls too: it ends the same way, at once, as aborted.
2. Open ledger rows of drills that already ended (a runner that died between its
   last revert and its last write) are reverted too.
3. Queued drills that no worker picked up (the broker was down when they were
   approved) are dispatched again; the runner's queued -> running claim makes a
   duplicate message harmless.
"""

import logging
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
    Drill,
    DrillState,
)

log = logging.getLogger(__name__)
OPEN = OPEN_COMPENSATION_STATES


def _revert(drill_id, me):
    """Revert the drill's open ledger rows as the reaper -> (rows reverted, problems)."""
    before = Compensation.objects.filter(drill_id=drill_id, state__in=OPEN).count()
    problems = ledger.revert_open(drill_id, by="Reaper: ", worker=me, verify=False)
    return before - len(problems), problems


def reap(now=None):
    """One pass. Returns {"drills": [ids ended], "rows": n reverted, "redispatched": [ids]}."""
    now = now or timezone.now()
    me = services.reaper_name()
    ended, reverted, redispatched = [], 0, []

    overdue = Compensation.objects.filter(state__in=OPEN, deadline__lt=now).values_list("drill_id", flat=True)
    stale = Drill.objects.filter(
        services.worker_gone(now) | Q(pk__in=list(overdue)), state__in=RUNNING_STATES
    ).values_list("pk", "state", "worker")
    for drill_id, _state, _worker in stale:
        before = Compensation.objects.filter(drill_id=drill_id, state__in=OPEN).count()
        # Claims only if nobody beat since we looked.
        if services.take_over(drill_id, now=now) is not None:
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
    for drill_id in Drill.objects.filter(state=DrillState.QUEUED, queued_at__lt=now - wait).values_list(
        "pk", flat=True
    ):
        if services.dispatch(drill_id):
            redispatched.append(drill_id)
    return {"drills": ended, "rows": reverted, "redispatched": redispatched}
