"""What other apps ask of drills (registered with them at startup: experiments/apps.py)."""

from django.db.models import F, Max, Q, Window
from django.db.models.functions import RowNumber
from django.urls import reverse

from experiments.models import LIVE_STATES, Drill, DrillState
from regions.monitoring import ActiveDrill, DeliberateChanges, LastPass


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


def last_passes(application_ids):
    """Monitoring's {(application id, region code): LastPass}: the latest drill that
    passed on each application and region (one query: the passed drills ranked per
    application and region, newest finish first, the first of each kept)."""
    rows = (
        Drill.objects.filter(application_id__in=list(application_ids), state=DrillState.PASSED)
        .exclude(finished_at=None)
        .annotate(rank=Window(
            RowNumber(),
            partition_by=[F("application_id"), F("region_id")],
            order_by=[F("finished_at").desc(), F("pk").desc()],
        ))
        .filter(rank=1)
        .values_list("pk", "application_id", "region__code", "finished_at")
    )
    return {
        (app_id, region): LastPass(pk, finished_at, reverse("experiments:detail", args=[pk]))
        for pk, app_id, region, finished_at in rows
    }
