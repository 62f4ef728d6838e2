import pytest
from django.urls import reverse

from controlplane import audit
from controlplane.models import AuditEvent, AuditSource
from regions.models import Application, Region, Stack

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
    assert audit.verify_chain() == (1, None)
    response = client.get(reverse("admin:controlplane_auditevent_delete", args=[event.pk]))
    assert response.status_code == 403


def test_the_admin_refuses_a_region_code_that_aws_does_not_have(client_for, admin):
    response = client_for(admin).post(reverse("admin:regions_region_add"), {"code": "zz-mars-1"})

    assert response.status_code == 200
    assert "zz-mars-1 is not an AWS region known to botocore" in response.content.decode()
    assert not Region.objects.exists()
    assert not AuditEvent.objects.filter(action="admin.add").exists()
