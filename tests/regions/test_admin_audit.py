"""Regions changed in the Django admin are audited (applications and inline stacks:
tests/controlplane/test_admin_audit.py)."""

import pytest
from django.urls import reverse

from controlplane.models import AuditEvent, AuditSource
from regions.models import Region

pytestmark = pytest.mark.django_db

ROLE = "arn:aws:iam::123456789012:role/controlplane"


def _post(client, url, data):
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]


def test_adding_changing_and_deleting_a_region_in_the_admin_is_audited(client_for, admin):
    client = client_for(admin)
    _post(client, reverse("admin:regions_region_add"),
          {"code": "eu-west-1", "account_id": "123456789012", "role_arn": "", "external_id": ""})
    region = Region.objects.get(code="eu-west-1")
    _post(client, reverse("admin:regions_region_change", args=[region.pk]),
          {"code": "eu-west-1", "account_id": "123456789012", "role_arn": ROLE, "external_id": "x-1"})
    _post(client, reverse("admin:regions_region_delete", args=[region.pk]), {"post": "yes"})

    added, changed, deleted = AuditEvent.objects.filter(object_type="regions.region").order_by("seq")
    assert [e.action for e in (added, changed, deleted)] == ["admin.add", "admin.change", "admin.delete"]
    for event in (added, changed, deleted):
        assert (event.actor, event.source, event.object_id) == (admin.username, AuditSource.ADMIN,
                                                                str(region.pk))
        assert event.object_repr == "eu-west-1"
    assert added.after["account_id"] == "123456789012"
    assert (changed.before["role_arn"], changed.after["role_arn"]) == ("", ROLE)
    assert deleted.before["external_id"] == "x-1"
    assert deleted.after is None
