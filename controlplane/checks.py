"""System checks: every admin page that can change a model writes an audit event; every
route of the API goes through `controlplane.api.api_view` (token or session
authentication, allowed methods) and every route that changes something names the
permission it needs. Imported by ControlplaneConfig.ready(), after the admin has loaded
every admin module."""

from types import SimpleNamespace

from django.contrib import admin
from django.core import checks
from django.urls import URLPattern, URLResolver, get_resolver

from controlplane.admin import AuditedAdminMixin


class _Anyone:
    """A user holding every permission, to ask a ModelAdmin what it lets anybody do."""

    is_active = is_staff = is_superuser = is_authenticated = True

    def has_perm(self, perm, obj=None):
        return True

    def has_perms(self, perms, obj=None):
        return True

    def has_module_perms(self, app_label):
        return True


def unaudited_admins(site):
    """(model label, ModelAdmin class, what it allows) for each ModelAdmin on `site` that
    allows adding, changing or deleting without AuditedAdminMixin."""
    request = SimpleNamespace(user=_Anyone(), method="GET", GET={}, POST={})
    found = []
    for model, model_admin in site._registry.items():
        if isinstance(model_admin, AuditedAdminMixin):
            continue
        allowed = [
            verb
            for verb, allows in (
                ("add", model_admin.has_add_permission(request)),
                ("change", model_admin.has_change_permission(request)),
                ("delete", model_admin.has_delete_permission(request)),
            )
            if allows
        ]
        if allowed:
            found.append((model._meta.label, type(model_admin), allowed))
    return found


@checks.register(checks.Tags.admin)
def check_admin_is_audited(app_configs, **kwargs):
    return [
        checks.Error(
            f"{admin_class.__name__} lets the admin {'/'.join(allowed)} {label} without writing an "
            "audit event.",
            hint="Mix in controlplane.admin.AuditedAdminMixin, or deny those permissions.",
            obj=admin_class,
            id="controlplane.E001",
        )
        for label, admin_class, allowed in unaudited_admins(admin.site)
    ]


API_PREFIX = "api/"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def _routes(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.callback


def unguarded_api_routes(resolver=None):
    """(route, what is missing) for each API route whose view is not an `api_view`, or
    allows a method that changes something without naming a permission."""
    found = []
    for route, view in _routes((resolver or get_resolver()).url_patterns):
        if not route.startswith(API_PREFIX):
            continue
        methods = getattr(view, "api_methods", None)
        if methods is None:
            found.append((route, "is not wrapped by controlplane.api.api_view"))
            continue
        permission = getattr(view, "api_permission", None)
        for method in sorted(set(methods) - SAFE_METHODS):
            if not (permission.get(method) if isinstance(permission, dict) else permission):
                found.append((route, f"allows {method} without a permission"))
    return found


@checks.register(checks.Tags.security, checks.Tags.urls)
def check_api_is_guarded(app_configs, **kwargs):
    return [
        checks.Error(
            f"The API route {route!r} {problem}.",
            hint="Decorate the view with controlplane.api.api_view(methods, permission=...).",
            id="controlplane.E002",
        )
        for route, problem in unguarded_api_routes()
    ]
