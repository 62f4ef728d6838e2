from django.contrib import admin

from controlplane.admin import AuditedAdminMixin
from regions.models import Application, Component, Region, Stack


class ComponentInline(admin.TabularInline):
    model = Component
    extra = 0
    fields = ["kind", "name", "identifier", "discovered_at"]
    readonly_fields = ["discovered_at"]


class StackInline(admin.TabularInline):
    model = Stack
    extra = 0
    fields = ["region", "health_url", "in_rotation"]


@admin.register(Application)
class ApplicationAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["name", "architecture", "owner_team", "global_endpoint"]
    list_filter = ["architecture"]
    search_fields = ["name", "display_name", "owner_team"]
    inlines = [StackInline]


@admin.register(Region)
class RegionAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["code", "account_id", "role_arn"]
    search_fields = ["code", "account_id"]


@admin.register(Stack)
class StackAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["__str__", "application", "region", "in_rotation", "discovered_at"]
    list_filter = ["application", "region", "in_rotation"]
    list_select_related = ["application", "region"]
    inlines = [ComponentInline]


@admin.register(Component)
class ComponentAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["name", "kind", "stack", "identifier", "discovered_at"]
    list_filter = ["kind"]
    list_select_related = ["stack__application", "stack__region"]
    search_fields = ["name", "identifier"]
