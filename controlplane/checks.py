"""System checks: every admin page that can change a model writes an audit event.
Imported by ControlplaneConfig.ready(), after the admin has loaded every admin module."""

from types import SimpleNamespace

from django.contrib import admin
from django.core import checks

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
