import pytest
from django.contrib.auth.models import Group, Permission

from controlplane.roles import ROLE_PERMISSIONS, ROLES

pytestmark = pytest.mark.django_db


def test_the_migration_creates_the_four_role_groups():
    assert set(Group.objects.values_list("name", flat=True)) >= set(ROLES)


def test_every_permission_a_role_lists_exists_and_is_granted():
    for role, perms in ROLE_PERMISSIONS.items():
        granted = {
            f"{p.content_type.app_label}.{p.codename}"
            for p in Group.objects.get(name=role).permissions.select_related("content_type")
        }
        assert granted == set(perms), role
        for perm in perms:
            app_label, codename = perm.split(".")
            assert Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).exists(), perm


def test_roles_separate_duties(viewer, operator, approver, admin):
    assert viewer.has_perm("regions.view_stack")
    assert not viewer.has_perm("regions.run_discovery")
    assert operator.has_perm("regions.run_discovery")
    assert not operator.has_perm("controlplane.view_auditevent")
    assert approver.has_perm("controlplane.view_auditevent")
    assert not approver.has_perm("regions.run_discovery")
    assert admin.has_perm("regions.import_inventory")
    assert admin.has_perm("controlplane.export_auditevent")


def test_a_user_without_a_role_sees_nothing(outsider):
    assert not outsider.has_perm("regions.view_stack")


def test_whoever_may_abort_a_drill_may_halt_them_all():
    for role, perms in ROLE_PERMISSIONS.items():
        if "experiments.abort_drill" in perms:
            assert "experiments.halt_drills" in perms, role
    assert any("experiments.abort_drill" in perms for perms in ROLE_PERMISSIONS.values())
