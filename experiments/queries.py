"""What other apps ask of drills (registered with them at startup: experiments/apps.py)."""

from django.db.models import Max, Q
from django.urls import reverse

from experiments.models import LIVE_STATES, Drill
from regions.monitoring import ActiveDrill, DeliberateChanges


def deliberate_changes(application_ids, since):
    """Monitoring's DeliberateChanges for `application_ids`: the drills queued, running or
    reverting on them, as monitoring.ActiveDrill (id, state, application, target region,
    page: their faults in AWS are the drill's, not drift, and the console marks them on
    the application and the region) and, per component, the latest time a drill's ledger
    reverted a fault on it since `since` (one query: drills LEFT JOIN their ledger rows,
    grouped by drill and component)."""
    rows = (
        Drill.objects.filter(application_id__in=list(application_ids))
        .filter(Q(state__in=list(LIVE_STATES)) | Q(compensations__reverted_at__gte=since))
        .values("pk", "state", "application_id", "region__code", "compensations__component_id")
        .annotate(reverted=Max("compensations__reverted_at"))
        .order_by("pk")
    )
    drills, reverted = {}, {}
    for row in rows:
        pk = row["pk"]
        if row["state"] in LIVE_STATES and pk not in drills:
            drills[pk] = ActiveDrill(
                pk, row["state"], row["application_id"], row["region__code"],
                reverse("experiments:detail", args=[pk]),
            )
        component, at = row["compensations__component_id"], row["reverted"]
        if component is not None and at is not None:
            reverted[component] = max(at, reverted.get(component, at))
    return DeliberateChanges(tuple(drills.values()), reverted)
