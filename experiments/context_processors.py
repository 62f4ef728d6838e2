"""Template context of the drills app."""

from django.utils.functional import SimpleLazyObject

from experiments import services
from experiments.models import HaltState


def halt(request):
    """The drills' halt switch (one query), read only when a template shows it: the
    banner of the drills pages (templates/experiments/base.html) and of
    experiments:halt-banner, which the other pages fetch; the drills list's halt panel.
    Other pages and htmx partials do not read it."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"halt": SimpleLazyObject(lambda: HaltState.objects.filter(pk=1).first())}


def approvals(request):
    """How many drills wait for this user's decision (services.awaiting_decision_by:
    one COUNT; none for who may not approve), for base.html's navigation, which shows
    it to approvers. Read only when a page shows it (htmx partials do not)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"approvals_waiting": SimpleLazyObject(lambda: services.awaiting_decision_by(user).count())}
