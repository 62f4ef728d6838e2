"""Discovery against the sandbox: the same code as against AWS finds both
architectures, including the Global Accelerator and ARC resources moto lacks."""

import pytest

from controlplane.models import AuditEvent
from regions.discovery import run_discovery
from regions.models import Application, ComponentKind, Stack

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db]

REGIONS = ["eu-central-1", "us-east-1", "us-west-2"]


def test_discovery_fills_the_inventory_from_the_sandbox(sandbox_settings):
    sb = sandbox_settings
    report = run_discovery(actor="test", regions=REGIONS)
    assert report.warnings == []

    orders = Application.objects.get(name="orders")
    payments = Application.objects.get(name="payments")
    assert orders.architecture == "A"
    assert payments.architecture == "B"
    global_endpoint = sb.state["applications"]["orders"]["global_endpoint"]
    assert orders.global_endpoint_url.rstrip("/") == global_endpoint.rstrip("/")

    stacks = {
        (s.application.name, s.region.code): s
        for s in Stack.objects.select_related("application", "region")
    }
    assert set(stacks) == {
        ("orders", "us-east-1"), ("orders", "us-west-2"),
        ("payments", "eu-central-1"), ("payments", "us-west-2"),
    }
    for (app, region), stack in stacks.items():
        assert stack.health_url.startswith(sb.state["applications"][app]["regions"][region].rstrip("/"))
        assert stack.health_url.endswith("/health")

    kinds = lambda app, region: set(  # noqa: E731
        stacks[(app, region)].components.values_list("kind", flat=True)
    )
    assert {
        ComponentKind.ROUTE53_HEALTH_CHECK, ComponentKind.ROUTE53_RECORD,
        ComponentKind.API_GATEWAY_STAGE, ComponentKind.LAMBDA_FUNCTION,
        ComponentKind.DYNAMODB_REPLICA, ComponentKind.SSM_FAULT_PARAMETER,
        ComponentKind.ARC_ROUTING_CONTROL,
    } <= kinds("orders", "us-east-1")
    assert {
        ComponentKind.GA_ENDPOINT_GROUP, ComponentKind.ALB_LISTENER,
        ComponentKind.LAMBDA_FUNCTION, ComponentKind.DYNAMODB_REPLICA,
        ComponentKind.SSM_FAULT_PARAMETER, ComponentKind.ARC_ROUTING_CONTROL,
    } <= kinds("payments", "eu-central-1")
    endpoint_group = stacks[("payments", "eu-central-1")].components.get(
        kind=ComponentKind.GA_ENDPOINT_GROUP
    )
    assert endpoint_group.config["EndpointGroupRegion"] == "eu-central-1"
    assert AuditEvent.objects.filter(action="inventory.create", actor="test").count() > 10


def test_discovering_the_sandbox_twice_changes_nothing(sandbox_settings):
    run_discovery(actor="test", regions=REGIONS)
    events = AuditEvent.objects.count()
    report = run_discovery(actor="test", regions=REGIONS)
    assert report.changes == []
    assert AuditEvent.objects.count() == events


def test_discovery_with_prune_forgets_components_that_are_gone(sandbox_settings):
    run_discovery(actor="test", regions=REGIONS)
    stack = Stack.objects.get(application__name="orders", region__code="us-east-1")
    ghost = stack.components.create(
        kind=ComponentKind.LAMBDA_FUNCTION,
        identifier="arn:aws:lambda:us-east-1:123456789012:function:deleted-last-week",
        name="deleted-last-week",
    )
    report = run_discovery(actor="test", regions=REGIONS)
    assert stack.components.filter(pk=ghost.pk).exists()  # without prune, kept

    report = run_discovery(actor="test", regions=REGIONS, prune=True)
    assert not stack.components.filter(pk=ghost.pk).exists()
    assert any("deleted-last-week" in line for line in report.changes)
    deleted = AuditEvent.objects.get(action="inventory.delete", object_id=str(ghost.pk))
    assert deleted.before["identifier"].endswith("deleted-last-week")
    assert stack.components.count() > 5
