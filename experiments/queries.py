"""What other apps ask of drills (registered with them at startup: experiments/apps.py)."""

from django.db.models import Max, Q

from experiments.models import LIVE_STATES, Drill
from regions.monitoring import DeliberateChanges


def deliberate_changes(application_ids, since):
    """Monitoring's DeliberateChanges for `application_ids`: the applications with a live
    drill (queued, running or reverting) and, per component, the latest time a drill's
    ledger reverted a fault on it since `since` (one query: drills LEFT JOIN their ledger
    rows, grouped by application, state and component)."""
    rows = (
        Drill.objects.filter(application_id__in=list(application_ids))
        .filter(Q(state__in=list(LIVE_STATES)) | Q(compensations__reverted_at__gte=since))
        .values("application_id", "state", "compensations__component_id")
        .annotate(reverted=Max("compensations__reverted_at"))
        .order_by()
    )
    live, reverted = set(), {}
    for row in rows:
        if row["state"] in LIVE_STATES:
            live.add(row["application_id"])
        component, at = row["compensations__component_id"], row["reverted"]
        if component is not None and at is not None:
            reverted[component] = max(at, reverted.get(component, at))
    return DeliberateChanges(frozenset(live), reverted)
