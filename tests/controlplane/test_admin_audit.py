import json

import pytest
from django.contrib import admin as django_admin
from django.contrib.admin import AdminSite, ModelAdmin
from django.contrib.auth.models import User
from django.urls import reverse

from controlplane import audit
from controlplane.api import issue_token
from controlplane.checks import check_admin_is_audited, unaudited_admins
from controlplane.models import ApiToken, AuditEvent, AuditSource, ServiceHeartbeat
from experiments.admin import DrillAdmin
from experiments.models import Drill, Scenario
from regions.models import Application, Region, Stack
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def orders(db):
    return Application.objects.create(name="orders", architecture="A", owner_team="checkout")


def _form(app, **changes):
    data = {
        "name": app.name,
        "display_name": app.display_name,
        "architecture": app.architecture,
        "global_endpoint": app.global_endpoint,
        "global_endpoint_url": app.global_endpoint_url,
        "owner_team": app.owner_team,
        "description": app.description,
        "stacks-TOTAL_FORMS": "0",
        "stacks-INITIAL_FORMS": "0",
        "stacks-MIN_NUM_FORMS": "0",
        "stacks-MAX_NUM_FORMS": "1000",
    }
    data.update(changes)
    return data


def test_a_change_in_the_admin_is_audited_with_before_and_after(client_for, admin, orders):
    client = client_for(admin)
    url = reverse("admin:regions_application_change", args=[orders.pk])
    response = client.post(url, _form(orders, owner_team="payments-sre"))
    assert response.status_code == 302, response.content.decode()[:2000]
    event = AuditEvent.objects.get(action="admin.change")
    assert event.source == AuditSource.ADMIN
    assert event.actor == admin.username
    assert event.object_type == "regions.application"
    assert event.before["owner_team"] == "checkout"
    assert event.after["owner_team"] == "payments-sre"
    assert event.request_id


def test_an_inline_stack_added_in_the_admin_is_audited(client_for, admin, orders):
    region = Region.objects.create(code="us-east-1")
    data = _form(orders)
    data.update({
        "stacks-TOTAL_FORMS": "1",
        "stacks-0-region": str(region.pk),
        "stacks-0-health_url": "https://api.us-east-1.orders.example.com/health",
        "stacks-0-in_rotation": "on",
    })
    response = client_for(admin).post(
        reverse("admin:regions_application_change", args=[orders.pk]), data
    )
    assert response.status_code == 302
    stack = Stack.objects.get(application=orders)
    added = AuditEvent.objects.get(action="admin.add", object_type="regions.stack")
    assert added.object_id == str(stack.pk)
    assert added.after["health_url"].endswith("/health")


def test_a_delete_in_the_admin_is_audited(client_for, admin, orders):
    response = client_for(admin).post(
        reverse("admin:regions_application_delete", args=[orders.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert not Application.objects.exists()
    event = AuditEvent.objects.get(action="admin.delete")
    assert event.object_repr == "orders"
    assert event.before["name"] == "orders"


def test_the_audit_log_cannot_be_changed_or_deleted_in_the_admin(client_for, admin, settings):
    event = audit.record("someone", "test.thing", source=AuditSource.COMMAND)
    client = client_for(admin)
    client.post(reverse("admin:controlplane_auditevent_change", args=[event.pk]), {"actor": "x"})
    client.post(reverse("admin:controlplane_auditevent_delete", args=[event.pk]), {"post": "yes"})
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.actor == "someone"
    report = audit.verify_chain()
    assert (report.checked, report.problem) == (1, None)
    response = client.get(reverse("admin:controlplane_auditevent_delete", args=[event.pk]))
    assert response.status_code == 403


# --- every admin that can change a model, and the pages that bypass save_model() ---------

NEW_PASSWORD = "another-correct-horse-9"


@pytest.fixture
def root(make_user):
    user = make_user("root-admin")
    user.is_staff = user.is_superuser = True
    user.save()
    return user


def test_every_admin_that_can_change_a_model_writes_audit_events():
    assert unaudited_admins(django_admin.site) == []
    assert check_admin_is_audited(None) == []


def test_the_system_check_names_an_admin_that_would_change_a_model_unaudited():
    site = AdminSite(name="elsewhere")
    site.register(Scenario)
    site.register(Drill, DrillAdmin)  # read-only: fine
    assert unaudited_admins(site) == [("experiments.Scenario", ModelAdmin, ["add", "change", "delete"])]


def test_revoking_and_deleting_a_token_in_the_admin_is_audited(client_for, root):
    token, _ = issue_token(root, "ci")
    client = client_for(root)
    response = client.post(
        reverse("admin:controlplane_apitoken_change", args=[token.pk]),
        {"user": root.pk, "name": "ci", "revoked_at_0": "2026-01-02", "revoked_at_1": "03:04:05"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    response = client.post(reverse("admin:controlplane_apitoken_delete", args=[token.pk]), {"post": "yes"})
    assert response.status_code == 302
    changed, deleted = AuditEvent.objects.filter(object_type="controlplane.apitoken").order_by("seq")
    assert (changed.action, changed.actor) == ("admin.change", "root-admin")
    assert changed.source == AuditSource.ADMIN
    assert changed.before["revoked_at"] is None
    assert changed.after["revoked_at"].startswith("2026-01-02")
    assert changed.after["digest"] == "<redacted>"
    assert deleted.action == "admin.delete"
    assert not ApiToken.objects.exists()


def test_deleting_a_heartbeat_row_in_the_admin_is_audited(client_for, root):
    row = ServiceHeartbeat.objects.create(kind="worker", hostname="worker@gone",
                                          last_seen="2026-01-01T00:00Z")
    response = client_for(root).post(
        reverse("admin:controlplane_serviceheartbeat_delete", args=[row.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="admin.delete")
    assert (event.object_type, event.actor) == ("controlplane.serviceheartbeat", "root-admin")
    assert event.before["hostname"] == "worker@gone"


def test_adding_a_user_in_the_admin_is_audited_without_the_password(client_for, root):
    response = client_for(root).post(
        reverse("admin:auth_user_add"),
        {"username": "nina-new", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD,
         "usable_password": "true"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    event = AuditEvent.objects.get(action="admin.add", object_type="auth.user")
    assert (event.actor, event.object_repr) == ("root-admin", "nina-new")
    assert event.after["password"] == "<redacted>"
    assert NEW_PASSWORD not in json.dumps(event.after)


def test_setting_another_users_password_in_the_admin_is_audited(client_for, root, viewer):
    response = client_for(root).post(
        reverse("admin:auth_user_password_change", args=[viewer.pk]),
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    viewer.refresh_from_db()
    assert viewer.check_password(NEW_PASSWORD)
    event = AuditEvent.objects.get(action="admin.change", object_type="auth.user")
    assert (event.actor, event.object_id, event.source) == ("root-admin", str(viewer.pk), AuditSource.ADMIN)
    assert event.after == {"password": "<changed>", "usable_password": True}
    assert event.request_id


def test_a_rejected_password_change_writes_nothing(client_for, root, viewer):
    response = client_for(root).post(
        reverse("admin:auth_user_password_change", args=[viewer.pk]),
        {"password1": NEW_PASSWORD, "password2": "something else", "usable_password": "true"},
    )
    assert response.status_code == 200
    assert not AuditEvent.objects.filter(object_type="auth.user").exists()


def test_changing_ones_own_password_on_the_admin_site_is_audited(client_for, admin):
    response = client_for(admin).post(
        reverse("admin:password_change"),
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert User.objects.get(pk=admin.pk).check_password(NEW_PASSWORD)
    event = AuditEvent.objects.get(action="admin.change", object_type="auth.user")
    assert (event.actor, event.object_id, event.source) == (admin.username, str(admin.pk), AuditSource.ADMIN)
    assert event.after["password"] == "<changed>"


def test_the_admin_refuses_a_region_code_that_aws_does_not_have(client_for, admin):
    response = client_for(admin).post(reverse("admin:regions_region_add"), {"code": "zz-mars-1"})

    assert response.status_code == 200
    assert "zz-mars-1 is not an AWS region known to botocore" in response.content.decode()
    assert not Region.objects.exists()
    assert not AuditEvent.objects.filter(action="admin.add").exists()
