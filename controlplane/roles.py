"""The four roles, as Django groups, and the permissions each one holds.

viewer    sees the console: inventory, status, drills.
operator  viewer + runs discovery, requests, aborts and halts drills, edits scenarios,
          applies a drift finding's undo.
approver  viewer + approves or rejects drills, aborts them and halts them all, reads and
          exports the audit log.
admin     everything: inventory changes and import, drills (request, approve, abort, halt
          and clear the halt), scenarios, drift undo, the audit log, notification channels.

Roles are cumulative only where listed: an operator cannot approve, an approver cannot
request. Whoever may abort a drill may also halt them all (stop everything at once). A
user may hold several roles, but the requester of a drill can never approve it whatever
roles they hold.
"""

VIEWER = "viewer"
OPERATOR = "operator"
APPROVER = "approver"
ADMIN = "admin"
ROLES = (VIEWER, OPERATOR, APPROVER, ADMIN)

_VIEW = [
    "regions.view_application",
    "regions.view_region",
    "regions.view_stack",
    "regions.view_component",
    "controlplane.view_serviceheartbeat",
    "experiments.view_drill",
    "experiments.view_scenario",
]
_DRILL_OPERATOR = [
    "experiments.request_drill",
    "experiments.abort_drill",
    "experiments.halt_drills",
    "experiments.add_scenario",
    "experiments.change_scenario",
]
_DRILL_APPROVER = ["experiments.approve_drill", "experiments.abort_drill", "experiments.halt_drills"]
_DRILL_ADMIN = [
    "experiments.request_drill",
    "experiments.approve_drill",
    "experiments.abort_drill",
    "experiments.halt_drills",
    "experiments.clear_halt",
    "experiments.add_scenario",
    "experiments.change_scenario",
    "experiments.delete_scenario",
    "experiments.close_ledger_row",
]
_AUDIT = ["controlplane.view_auditevent", "controlplane.export_auditevent"]
_INVENTORY_ADMIN = [
    f"regions.{verb}_{model}"
    for verb in ("add", "change", "delete")
    for model in ("application", "region", "stack", "component")
] + ["regions.import_inventory"]

# Later issues extend these lists and add a migration that calls sync_roles again.
ROLE_PERMISSIONS = {
    VIEWER: _VIEW,
    OPERATOR: _VIEW + ["regions.run_discovery", "regions.apply_drift_undo"] + _DRILL_OPERATOR,
    APPROVER: _VIEW + _AUDIT + _DRILL_APPROVER,
    ADMIN: _VIEW + _AUDIT + _INVENTORY_ADMIN + ["regions.run_discovery", "regions.apply_drift_undo"]
    + _DRILL_ADMIN + ["notifications.manage_channels"],
}


def sync_roles(apps, schema_editor=None):
    """Create the groups and set exactly their permissions (used by migrations)."""
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = []
        for perm in perms:
            app_label, codename = perm.split(".")
            found = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if found is not None:  # a later migration adds permissions of later models
                wanted.append(found)
        group.permissions.set(wanted)


def user_roles(user):
    return sorted(g.name for g in user.groups.all() if g.name in ROLES)
