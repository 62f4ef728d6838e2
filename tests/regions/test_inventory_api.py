"""GET /api/v1/inventory per role: the regions' access (role ARN and external id, what
the control plane assumes to reach an account) only for admins, as the console's
export (admin-only) and the stack page show it."""

import pytest
from django.urls import reverse

from controlplane.api import issue_token
from regions.models import Application, Architecture, Region, Stack
from tests.controlplane.test_openapi import validator_for

ROLE_ARN = "arn:aws:iam::111122223333:role/controlplane"


@pytest.fixture
def regions(db):
    Region.objects.create(code="us-east-1", account_id="111122223333", role_arn=ROLE_ARN,
                          external_id="controlplane-us-east-1")
    Region.objects.create(code="us-west-2", account_id="111122223333")


def inventory_as(client, user):
    token = issue_token(user)[1]
    response = client.get(reverse("api-inventory"), headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    data = response.json()
    validator_for("Inventory").validate(data)
    return data


@pytest.mark.parametrize("role", ["viewer", "operator", "approver"])
def test_the_regions_access_is_left_out_for_everyone_but_admins(request, client, regions, role):
    data = inventory_as(client, request.getfixturevalue(role))

    assert data["regions"] == [
        {"code": "us-east-1", "account_id": "111122223333"},
        {"code": "us-west-2", "account_id": "111122223333"},
    ]
    assert ROLE_ARN not in str(data) and "controlplane-us-east-1" not in str(data)


def test_an_admin_sees_the_regions_access_as_the_export_has_it(client, regions, admin):
    data = inventory_as(client, admin)

    assert data["regions"][0] == {"code": "us-east-1", "account_id": "111122223333", "role_arn": ROLE_ARN,
                                  "external_id": "controlplane-us-east-1"}


def test_the_stack_page_shows_the_role_only_to_admins(client_for, regions, viewer, admin):
    app = Application.objects.create(name="orders", architecture=Architecture.DNS)
    Stack.objects.create(application=app, region=Region.objects.get(code="us-east-1"))
    url = reverse("regions:stack", args=["orders", "us-east-1"])

    assert ROLE_ARN not in client_for(viewer).get(url).content.decode()
    assert ROLE_ARN in client_for(admin).get(url).content.decode()
