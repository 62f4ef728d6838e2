"""What other apps ask of drills (registered with them at startup: experiments/apps.py)."""

from django.urls import reverse

from experiments.models import LIVE_STATES, Drill
from regions.monitoring import ActiveDrill


def live_drills(application_ids):
    """The drills queued, running or reverting on the applications among
    `application_ids`, as monitoring.ActiveDrill (id, state, application, target region,
    page): their faults in AWS are the drill's, not drift, and the console marks them on
    the application and the region (one query)."""
    rows = (
        Drill.objects.filter(application_id__in=list(application_ids), state__in=list(LIVE_STATES))
        .order_by("pk")
        .values_list("pk", "state", "application_id", "region__code")
    )
    return [
        ActiveDrill(pk, state, app_id, region, reverse("experiments:detail", args=[pk]))
        for pk, state, app_id, region in rows
    ]
