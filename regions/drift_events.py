"""Drift told to the notification channels: DRIFT_FOUND once per finding, when it
appears (controlplane/events.py), and the finding recorded as cleared when it goes.

Findings are computed each time a page reads them (regions.drift.find_drift, through
monitoring.load_picture) and never stored as truth; ReportedDrift only remembers what
was already told. Not in regions/drift.py: monitoring imports that module, and this one
reads monitoring's picture."""

import hashlib
import logging

from django.db import IntegrityError, transaction
from django.utils import timezone

from controlplane import events
from regions import monitoring
from regions.models import ReportedDrift

log = logging.getLogger(__name__)



def finding_key(finding):
    """Names a finding from one pass to the next: its component, kind and words (not its
    undo, whose parameters can change while the fault stays: a weight undo lists the
    group's other endpoints as they are)."""
    return hashlib.sha256(f"{finding.component}|{finding.kind}|{finding.what}".encode()).hexdigest()


def report_drift(now=None):
    """Publish DRIFT_FOUND for each finding that has appeared since the last pass and
    record as cleared each one that has gone (ReportedDrift): a fault that stays on is
    told once, one that goes and comes back is told again. The findings are the ones the
    pages show (monitoring.load_picture). An application with a live drill is left as it
    stands: its faults are deliberate (not findings), and what was told of it before the
    drill is neither told again nor cleared.

    Constant queries whatever the number of applications and components: load_picture's,
    the open rows, one insert (in batches on SQLite), two updates. Two passes at once: the
    unique open key makes the second one's insert fail and that pass roll back, telling
    nothing.
    Returns (told, cleared)."""
    now = now or timezone.now()
    pictures = monitoring.load_picture(now)
    current, drilled = {}, set()
    for picture in pictures.values():
        if picture.drills:
            drilled.add(picture.application_id)
            continue
        for finding in picture.drift:
            current[finding_key(finding)] = (picture, finding)
    try:
        with transaction.atomic():
            return _record(current, drilled, now)
    except IntegrityError as exc:  # another pass told them (or a component went meanwhile)
        log.info("drift: nothing told or cleared by this pass, the next one tries again: %s", exc)
        return 0, 0


def _record(current, drilled, now):
    open_rows = dict(
        ReportedDrift.objects.filter(cleared_at__isnull=True).values_list("key", "application_id")
    )
    new = [(key, picture, f) for key, (picture, f) in current.items() if key not in open_rows]
    ReportedDrift.objects.bulk_create([
        ReportedDrift(
            application_id=f.application_id, region=f.region, component_id=f.component, kind=f.kind, key=key,
            what=f.what, undo=f.undo.as_dict(), first_seen=now, last_seen=now,
        )
        for key, picture, f in new
    ])
    seen = [key for key in current if key in open_rows]
    gone = [key for key, app_id in open_rows.items() if key not in current and app_id not in drilled]
    if seen:
        ReportedDrift.objects.filter(cleared_at__isnull=True, key__in=seen).update(last_seen=now)
    cleared = 0
    if gone:
        cleared = ReportedDrift.objects.filter(cleared_at__isnull=True, key__in=gone).update(cleared_at=now)
    for _, picture, f in new:
        by_hand = ", by hand" if f.undo.manual else ""
        events.publish(
            events.EventKind.DRIFT_FOUND,
            f"drift in {picture.name} {f.region}: {f.what} (undo: {f.undo.operation}{by_hand})",
            application=picture.name, region=f.region, component=f.component, component_kind=f.kind,
            identifier=f.identifier, what=f.what, undo=f.undo.as_dict(), applicable=not f.undo.manual,
        )
    return len(new), cleared
