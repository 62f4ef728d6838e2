"""Admin: scenarios are editable (validated by Scenario.clean); drills, approvals and the
ledger are read-only here, because their state changes go through experiments.services
and experiments.ledger (conditional UPDATEs with audit events)."""

from django.contrib import admin

from controlplane.admin import AuditedAdminMixin, ReadOnlyAdmin
from experiments.models import Approval, Compensation, Drill, Scenario


@admin.register(Scenario)
class ScenarioAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["slug", "name", "fault_kind", "architecture", "max_duration", "built_in"]
    list_filter = ["fault_kind", "architecture", "built_in"]
    search_fields = ["slug", "name"]

    def get_readonly_fields(self, request, obj=None):
        return ["slug", "built_in"] if obj is not None else ["built_in"]

    def has_change_permission(self, request, obj=None):
        return (obj is None or not obj.built_in) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return (obj is None or not obj.built_in) and super().has_delete_permission(request, obj)


@admin.register(Drill)
class DrillAdmin(ReadOnlyAdmin):
    list_display = ["pk", "scenario", "application", "region", "state", "requested_by", "requested_at"]
    list_filter = ["state"]
    list_select_related = ["scenario", "application", "region", "requested_by"]


@admin.register(Approval)
class ApprovalAdmin(ReadOnlyAdmin):
    list_display = ["drill", "approver", "decision", "plan_hash", "created_at", "expires_at"]
    list_select_related = ["approver"]


@admin.register(Compensation)
class CompensationAdmin(ReadOnlyAdmin):
    list_display = ["drill", "fault_kind", "state", "deadline", "attempts", "reverted_at"]
    list_filter = ["state", "fault_kind"]
