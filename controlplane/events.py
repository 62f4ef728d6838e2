"""What happened, told to whoever listens: the kinds of event the console can notify
about, and the one signal that carries them.

experiments/ and regions/ publish here (`publish(kind, **payload)`, from the one place
each thing happens); notifications/ connects to `event_happened` in its AppConfig.ready.
Neither side imports the other: the core sits below both.

An event is sent only once the publisher's transaction has committed (a rolled-back
drill transition tells nobody), and a listener that fails is logged, never raised into
the drill or probe that published it.
"""

import logging

from django.db import models, transaction
from django.dispatch import Signal

log = logging.getLogger(__name__)

# Sent with kind (an EventKind value) and payload (a JSON-safe dict).
event_happened = Signal()


class EventKind(models.TextChoices):
    APPROVAL_WANTED = "approval_wanted", "Approval wanted (drill requested)"
    DRILL_STARTED = "drill_started", "Drill started"
    DRILL_PASSED = "drill_passed", "Drill passed"
    DRILL_FAILED = "drill_failed", "Drill failed"
    DRILL_INCONCLUSIVE = "drill_inconclusive", "Drill inconclusive"
    DRILL_ABORTED = "drill_aborted", "Drill aborted"
    DRILL_ERRORED = "drill_errored", "Drill errored"
    HALTED = "halted", "Drills halted"
    HALT_CLEARED = "halt_cleared", "Halt cleared"
    REGION_STATUS_CHANGED = "region_status_changed", "Region status changed"
    DRIFT_FOUND = "drift_found", "Drift found"
    SCHEDULE_SKIPPED = "schedule_skipped", "Schedule occurrence skipped"


def publish(kind, summary, **payload):
    """Tell the listeners that `kind` happened, once the current transaction commits
    (at once outside one). `summary` is the one line a person reads; `payload` the
    facts (ids, names, states) a receiver may act on."""
    kind = EventKind(kind)

    def send():
        for receiver, result in event_happened.send_robust(
            sender=kind.value, kind=kind.value, summary=summary, payload=payload
        ):
            if isinstance(result, Exception):
                log.error("event %s: listener %r failed: %r", kind.value, receiver, result,
                          exc_info=(type(result), result, result.__traceback__))

    transaction.on_commit(send)
