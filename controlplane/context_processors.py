from controlplane.roles import ROLES


def console(request):
    user = getattr(request, "user", None)
    roles = []
    if user is not None and user.is_authenticated:
        roles = [g.name for g in user.groups.all() if g.name in ROLES]
    return {"user_roles": roles}
