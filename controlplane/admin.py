"""The Django admin. Every ModelAdmin that lets a model be added, changed or deleted
mixes in AuditedAdminMixin, so each of those writes an audit event (source "admin",
actor the admin user, before/after); controlplane/checks.py refuses to start a process
whose admin has one that does not."""

from django.contrib import admin
from django.contrib.admin.forms import AdminPasswordChangeForm
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.hashers import is_password_usable
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.forms.models import model_to_dict

from controlplane import audit, login
from controlplane.models import ApiToken, AuditEvent, AuditSource, ServiceHeartbeat

# Fields never copied into the audit log.
_SECRET_FIELDS = {"password", "digest"}


def snapshot(obj):
    """A JSON-safe dict of a model instance's fields, for before/after."""
    data = model_to_dict(obj)
    for key in list(data):
        if key in _SECRET_FIELDS:
            data[key] = "<redacted>"
        elif isinstance(data[key], list):  # many-to-many: ids or instances
            data[key] = sorted(getattr(v, "pk", v) for v in data[key])
    return data


class AuditedAdminMixin:
    """Writes an audit event for every add, change and delete made in the admin."""

    def save_model(self, request, obj, form, change):
        before = None
        if change and obj.pk:
            previous = type(obj).objects.filter(pk=obj.pk).first()
            before = snapshot(previous) if previous else None
        super().save_model(request, obj, form, change)
        request._audit_pending = (obj, before, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        obj, before, change = getattr(request, "_audit_pending", (form.instance, None, change))
        obj.refresh_from_db()
        _record_save(request, obj, before, change)

    def save_formset(self, request, form, formset, change):
        """Inline rows (stacks of an application, components of a stack) are audited
        one by one, like top-level objects."""
        instances = formset.save(commit=False)
        for obj in formset.deleted_objects:
            self.delete_model(request, obj)
        for obj in instances:
            previous = type(obj).objects.filter(pk=obj.pk).first() if obj.pk else None
            obj.save()
            _record_save(request, obj, snapshot(previous) if previous else None, previous is not None)
        formset.save_m2m()

    def delete_model(self, request, obj):
        doomed = _deleted(obj)
        super().delete_model(request, obj)
        _record_delete(request, doomed)

    def delete_queryset(self, request, queryset):
        doomed = [_deleted(o) for o in queryset]
        super().delete_queryset(request, queryset)
        for row in doomed:
            _record_delete(request, row)


def _record_save(request, obj, before, change):
    action = "admin.change" if change else "admin.add"
    after = snapshot(obj)
    audit.record_request(request, action, source=AuditSource.ADMIN, obj=obj, before=before, after=after)


def _deleted(obj):
    """What the audit event of a deletion names, read before the row goes."""
    return {
        "object_type": obj._meta.label_lower,
        "object_id": obj.pk,
        "object_repr": str(obj),
        "before": snapshot(obj),
    }


def _record_delete(request, deleted):
    audit.record_request(request, "admin.delete", source=AuditSource.ADMIN, **deleted)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Browse only: rows whose changes go through a service (with its audit events) or
    that may never change at all."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Read-only: the audit log can be browsed here but never added to, changed or
    deleted (the model refuses too)."""

    list_display = ["seq", "created_at", "actor", "source", "action", "object_type", "object_repr"]
    list_filter = ["source", "object_type"]
    search_fields = ["actor", "action", "object_repr", "request_id"]
    date_hierarchy = "created_at"


@admin.register(ApiToken)
class ApiTokenAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["prefix", "user", "name", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "digest", "created_at", "last_used_at"]
    fields = ["user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]

    def has_add_permission(self, request):
        return False  # tokens are issued with `manage.py create_token`, shown once


@admin.register(ServiceHeartbeat)
class ServiceHeartbeatAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Read-only but for deleting the row of a process that is gone for good (audited)."""

    list_display = ["kind", "hostname", "last_seen"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


admin.site.unregister(User)
admin.site.unregister(Group)


def _password_state(user):
    return {"password": "<redacted>", "usable_password": user.has_usable_password()}


@admin.register(User)
class AuditedUserAdmin(AuditedAdminMixin, UserAdmin):
    def user_change_password(self, request, id, form_url=""):
        """Django's page for setting another user's password saves the form itself, not
        through save_model(): audit it here, in the same transaction."""
        with transaction.atomic():
            before = User.objects.filter(pk=id).values_list("password", flat=True).first()
            response = super().user_change_password(request, id, form_url)
            user = User.objects.filter(pk=id).first()
            if request.method == "POST" and user is not None and user.password != before:
                audit.record_request(
                    request,
                    "admin.change",
                    source=AuditSource.ADMIN,
                    obj=user,
                    before={"password": "<redacted>", "usable_password": is_password_usable(before)},
                    after={**_password_state(user), "password": "<changed>"},
                )
        return response


@admin.register(Group)
class AuditedGroupAdmin(AuditedAdminMixin, GroupAdmin):
    pass


class AuditedAdminPasswordChangeForm(AdminPasswordChangeForm):
    """The admin site's "change my password" page: audited like every other change."""

    def save(self, commit=True):
        with transaction.atomic():
            before = _password_state(User.objects.get(pk=self.user.pk))
            user = super().save(commit)
            audit.record(
                user,
                "admin.change",
                source=AuditSource.ADMIN,
                obj=user,
                before=before,
                after={**_password_state(user), "password": "<changed>"},
            )
        return user


admin.site.password_change_form = AuditedAdminPasswordChangeForm
# The admin's own "change my password" counts toward sign-in lockout (controlplane/login.py).
login.throttle_password_change(admin.site)
admin.site.site_header = "Failover Control Plane — administration"
admin.site.site_title = "Control plane admin"
