from django.utils.functional import SimpleLazyObject

from controlplane import background
from controlplane.roles import user_roles


def _background_for(user):
    """The background processes for base.html's banner and footer, or None when the
    user may not see them (the heartbeat rows: one query)."""
    if not user.has_perm("controlplane.view_serviceheartbeat"):
        return None
    return background.load()


def console(request):
    user = getattr(request, "user", None)
    roles = []
    background_status = None
    if user is not None and user.is_authenticated:
        roles = user_roles(user)
        # Lazy: read only when the template shows it (htmx partials do not).
        background_status = SimpleLazyObject(lambda: _background_for(user))
    return {"user_roles": roles, "background": background_status}

