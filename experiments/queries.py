"""What other apps ask of drills (registered with them at startup: experiments/apps.py)."""

from experiments.models import LIVE_STATES, Drill


def applications_with_live_drills(application_ids):
    """The ids of the applications (among `application_ids`) with a drill queued, running
    or reverting: their faults in AWS are the drill's, not drift (one query)."""
    return set(
        Drill.objects.filter(application_id__in=list(application_ids), state__in=list(LIVE_STATES))
        .order_by()
        .values_list("application_id", flat=True)
        .distinct()
    )
