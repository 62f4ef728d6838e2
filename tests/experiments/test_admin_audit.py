"""Scenarios changed in the Django admin are audited like every other change."""

import pytest
from django.urls import reverse

from controlplane.models import AuditEvent, AuditSource
from experiments.models import FaultKind, Scenario
from regions.models import Architecture, ComponentKind

pytestmark = pytest.mark.django_db


def _form(**changes):
    data = {
        "slug": "invert-checks",
        "name": "Invert the checks",
        "description": "",
        "fault_kind": FaultKind.HEALTH_CHECK_INVERT,
        "target_selector": f'{{"component_kind": "{ComponentKind.ROUTE53_HEALTH_CHECK}"}}',
        "parameters": "{}",
        "hypothesis": "{}",
        "stop_conditions": "[]",
        "max_duration": "00:05:00",
        "architecture": Architecture.DNS,
        "created_by": "",
    }
    data.update(changes)
    return data


def _post(client, url, data):
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    return response


def test_adding_a_scenario_in_the_admin_is_audited(client_for, admin):
    _post(client_for(admin), reverse("admin:experiments_scenario_add"), _form())
    scenario = Scenario.objects.get(slug="invert-checks")
    event = AuditEvent.objects.get(action="admin.add")
    assert (event.actor, event.source) == (admin.username, AuditSource.ADMIN)
    assert (event.object_type, event.object_id) == ("experiments.scenario", str(scenario.pk))
    assert event.before is None
    assert event.after["name"] == "Invert the checks"
    assert event.request_id


def test_changing_a_scenario_in_the_admin_is_audited_with_before_and_after(client_for, admin):
    client = client_for(admin)
    _post(client, reverse("admin:experiments_scenario_add"), _form())
    scenario = Scenario.objects.get(slug="invert-checks")
    url = reverse("admin:experiments_scenario_change", args=[scenario.pk])
    data = _form(name="Invert every check", max_duration="00:07:00")
    del data["slug"]  # read-only once created
    _post(client, url, data)
    event = AuditEvent.objects.get(action="admin.change")
    assert (event.actor, event.source) == (admin.username, AuditSource.ADMIN)
    assert event.object_id == str(scenario.pk)
    assert (event.before["name"], event.after["name"]) == ("Invert the checks", "Invert every check")
    assert event.before["max_duration"] != event.after["max_duration"]


def test_deleting_a_scenario_in_the_admin_is_audited(client_for, admin):
    client = client_for(admin)
    _post(client, reverse("admin:experiments_scenario_add"), _form())
    scenario = Scenario.objects.get(slug="invert-checks")
    _post(client, reverse("admin:experiments_scenario_delete", args=[scenario.pk]), {"post": "yes"})
    assert not Scenario.objects.filter(pk=scenario.pk).exists()
    event = AuditEvent.objects.get(action="admin.delete")
    assert (event.actor, event.source, event.object_type) == (admin.username, AuditSource.ADMIN,
                                                              "experiments.scenario")
    assert event.object_repr == "Invert the checks"
    assert event.before["slug"] == "invert-checks"
