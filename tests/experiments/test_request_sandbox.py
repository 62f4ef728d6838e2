"""Requesting a drill plans it from the inventory: the literal calls, hashed."""

import pytest

from controlplane.models import AuditEvent
from experiments import ledger, plans, services
from experiments.faults import REGISTRY, FaultError
from experiments.models import Compensation, CompensationState, DrillState, Scenario
from regions.models import Application, Region

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db]


def test_a_requested_drill_carries_its_plan_and_a_stable_hash(inventory, operator):
    scenario = Scenario.objects.get(slug="throttle-region-functions")
    orders, east = Application.objects.get(name="orders"), Region.objects.get(code="us-east-1")
    drill = services.request(user=operator, scenario=scenario, application=orders, region=east)
    assert drill.state == DrillState.REQUESTED
    functions = sorted(c["params"]["FunctionName"].split(":")[-1] for c in drill.plan["calls"])
    assert functions == ["orders-api", "orders-health"]
    assert {c["inverse"]["operation"] for c in drill.plan["calls"]} == {"DeleteFunctionConcurrency"}
    assert drill.plan["max_duration_seconds"] == 600
    _, again = plans.make_plan(scenario, orders, east)
    assert again == drill.plan_hash
    assert AuditEvent.objects.get(action="drill.requested").after["plan_hash"] == drill.plan_hash


def test_a_scenario_for_the_other_architecture_is_refused(inventory, operator):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        services.request(
            user=operator,
            scenario=Scenario.objects.get(slug="dial-region-to-zero"),
            application=Application.objects.get(name="orders"),
            region=Region.objects.get(code="us-east-1"),
        )


def test_a_region_without_the_component_cannot_be_planned(inventory):
    with pytest.raises(FaultError):
        plans.make_plan(Scenario.objects.get(slug="fail-region-health-check"),
                           Application.objects.get(name="payments"), Region.objects.get(code="us-west-2"))


def test_a_ledger_row_whose_value_was_never_read_reverts_without_a_call(inventory, make_drill, deadline):
    from experiments.faults import Target
    from regions.models import Component

    fault = REGISTRY["lambda_reserved_concurrency"]
    component = Component.objects.select_related("stack__region", "stack__application").get(
        kind="lambda_function", name="orders-api", stack__region__code="us-east-1"
    )
    target = Target.from_component(component)
    row = ledger.open_compensation(make_drill(), fault, target, fault.plan(target)[0], deadline=deadline)
    assert not row.previous_read  # the worker died here, before the call
    assert ledger.revert(row) == ""
    assert Compensation.objects.get(pk=row.pk).state == CompensationState.REVERTED
    assert ledger.verify_reverted(row)
    event = AuditEvent.objects.get(action="drill.fault_reverted", after__compensation=row.pk)
    assert event.after["call"] is None
    assert "never made" in event.after["note"]
