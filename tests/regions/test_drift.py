"""Drift (regions/drift.py): every fault left on is found after injecting it through
boto3 against the sandbox, with its undo, and disappears once reverted."""

import json

import pytest

from regions import aws_health, drift, monitoring
from regions.discovery import run_discovery
from regions.models import Application, ComponentKind
from regions.routing import ComponentView

REGIONS = ["eu-central-1", "us-east-1", "us-west-2"]
FAULT_OFF = {"is_enabled": False, "fault_type": "exception", "delay": 400, "error_code": 503, "rate": 1}


def findings(app):
    drift.refresh_live_config(application_ids=[app.pk])
    aws_health.poll(application_ids=[app.pk])
    return monitoring.load_picture(application_ids=[app.pk])[app.pk].drift


def _hc(sb, **flags):
    sb.client("route53", "us-east-1").update_health_check(
        HealthCheckId=sb.stack("orders", "us-east-1").health_check_id, **flags
    )


def _dial(sb, value):
    sb.client("globalaccelerator", "us-west-2").update_endpoint_group(
        EndpointGroupArn=sb.stack("payments", "eu-central-1").endpoint_group_arn, TrafficDialPercentage=value
    )


def _weight(sb, value):
    stack = sb.stack("payments", "eu-central-1")
    sb.client("globalaccelerator", "us-west-2").update_endpoint_group(
        EndpointGroupArn=stack.endpoint_group_arn,
        EndpointConfigurations=[{"EndpointId": stack.load_balancer_arn, "Weight": value}],
    )


def _concurrency(sb, on):
    lam = sb.client("lambda", "us-east-1")
    if on:
        lam.put_function_concurrency(FunctionName="orders-api", ReservedConcurrentExecutions=0)
    else:
        lam.delete_function_concurrency(FunctionName="orders-api")


def _ssm(sb, on):
    sb.client("ssm", "us-east-1").put_parameter(
        Name=sb.stack("orders", "us-east-1").ssm_fault_parameter, Type="String", Overwrite=True,
        Value=json.dumps({**FAULT_OFF, "is_enabled": on}),
    )


def _throttle(sb, limit):
    stack = sb.stack("orders", "us-east-1")
    sb.client("apigateway", "us-east-1").update_stage(
        restApiId=stack.rest_api_id, stageName=stack.stage_name,
        patchOperations=[{"op": "replace", "path": "/*/*/throttling/rateLimit", "value": str(limit)}],
    )


def _listener(sb, fixed):
    stack = sb.stack("payments", "eu-central-1")
    fixed_503 = {"StatusCode": "503", "ContentType": "text/plain"}
    action = (
        {"Type": "fixed-response", "FixedResponseConfig": fixed_503}
        if fixed else {"Type": "forward", "TargetGroupArn": stack.target_group_arn}
    )
    elb = sb.client("elbv2", "eu-central-1")
    elb.modify_listener(ListenerArn=stack.listener_arn, DefaultActions=[action])


def _arc(sb, state):
    sb.client("route53-recovery-cluster", "us-west-2").update_routing_control_state(
        RoutingControlArn=sb.stack("orders", "us-east-1").routing_control_arn, RoutingControlState=state
    )


def _pause(sb, on):
    ddb = sb.client("dynamodb", "us-west-2")
    arn = sb.stack("orders", "us-west-2").table_arn
    if on:
        ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "sandbox:replication-paused", "Value": "true"}])
    else:
        ddb.untag_resource(ResourceArn=arn, TagKeys=["sandbox:replication-paused"])


FAULTS = {
    # name: (application, region, component kind, inject, revert, words in `what`, words in `undo`)
    "inverted": ("orders", "us-east-1", ComponentKind.ROUTE53_HEALTH_CHECK,
                 lambda sb: _hc(sb, Inverted=True), lambda sb: _hc(sb, Inverted=False),
                 "is inverted", "UpdateHealthCheck Inverted=false"),
    "disabled": ("orders", "us-east-1", ComponentKind.ROUTE53_HEALTH_CHECK,
                 lambda sb: _hc(sb, Disabled=True), lambda sb: _hc(sb, Disabled=False),
                 "is disabled", "UpdateHealthCheck Disabled=false"),
    "dial": ("payments", "eu-central-1", ComponentKind.GA_ENDPOINT_GROUP,
             lambda sb: _dial(sb, 0), lambda sb: _dial(sb, 100),
             "traffic dial", "TrafficDialPercentage=100"),
    "weight": ("payments", "eu-central-1", ComponentKind.GA_ENDPOINT_GROUP,
               lambda sb: _weight(sb, 0), lambda sb: _weight(sb, 128), "weight 0", "Weight: 128"),
    "concurrency": ("orders", "us-east-1", ComponentKind.LAMBDA_FUNCTION,
                    lambda sb: _concurrency(sb, True), lambda sb: _concurrency(sb, False),
                    "orders-api has reserved concurrency 0", "DeleteFunctionConcurrency"),
    "ssm": ("orders", "us-east-1", ComponentKind.SSM_FAULT_PARAMETER,
            lambda sb: _ssm(sb, True), lambda sb: _ssm(sb, False),
            "failure injection is enabled", '"is_enabled": false'),
    "stage": ("orders", "us-east-1", ComponentKind.API_GATEWAY_STAGE,
              lambda sb: _throttle(sb, 0), lambda sb: _throttle(sb, 10000),
              "is throttled", "throttling/rateLimit"),
    "listener": ("payments", "eu-central-1", ComponentKind.ALB_LISTENER,
                 lambda sb: _listener(sb, True), lambda sb: _listener(sb, False),
                 "answers a fixed 503", "ModifyListener"),
    "routing_control": ("orders", "us-east-1", ComponentKind.ARC_ROUTING_CONTROL,
                        lambda sb: _arc(sb, "Off"), lambda sb: _arc(sb, "On"),
                        "is Off", "RoutingControlState=On"),
    "replication": ("orders", "us-west-2", ComponentKind.DYNAMODB_REPLICA,
                    lambda sb: _pause(sb, True), lambda sb: _pause(sb, False),
                    "is paused", "UntagResource"),
}


@pytest.mark.sandbox
@pytest.mark.django_db
@pytest.mark.parametrize("name", list(FAULTS))
def test_a_fault_left_on_is_drift_until_reverted(name, sandbox_settings):
    sb = sandbox_settings
    app_name, region, kind, inject, revert, what, undo = FAULTS[name]
    run_discovery(actor="test", regions=REGIONS)
    app = Application.objects.get(name=app_name)
    assert findings(app) == []

    inject(sb)
    found = findings(app)

    assert len(found) == 1, found
    (finding,) = found
    assert (finding.region, finding.kind) == (region, kind)
    assert what in finding.what
    assert undo in finding.undo

    revert(sb)
    assert findings(app) == []


@pytest.mark.django_db
def test_no_drift_while_a_drill_runs_on_the_application(operator):
    check = ComponentView(1, 7, 1, "us-east-1", ComponentKind.ROUTE53_HEALTH_CHECK, "hc-1", "",
                          {"Inverted": True}, {})

    (finding,) = drift.find_drift([check])
    assert finding.as_dict() == {
        "region": "us-east-1", "component_kind": "route53_health_check", "identifier": "hc-1",
        "what": "health check hc-1 is inverted", "undo": "UpdateHealthCheck Inverted=false",
    }
    assert drift.find_drift([check], running={7}) == []

    from experiments.models import Drill, DrillState, Scenario
    from experiments.queries import live_drills
    from experiments.scenarios import ensure_builtin_scenarios
    from regions import monitoring
    from regions.models import Application, Component, Region, Stack

    ensure_builtin_scenarios()
    apps = [Application.objects.create(name=n, architecture="A") for n in ("calm", "drilled")]
    region = Region.objects.create(code="us-east-1")
    for app, state in zip(apps, [DrillState.PASSED, DrillState.RUNNING], strict=True):
        Drill.objects.create(scenario=Scenario.objects.get(slug="fail-region-health-check"),
                             application=app, region=region, requested_by=operator, state=state,
                             plan={"calls": []}, plan_hash="0" * 64)
        Component.objects.create(stack=Stack.objects.create(application=app, region=region),
                                 kind=ComponentKind.ROUTE53_HEALTH_CHECK, identifier=f"hc-{app.name}",
                                 config={"Inverted": True})
    (live,) = live_drills([a.pk for a in apps])
    assert (live.application_id, live.state, live.region) == (apps[1].pk, DrillState.RUNNING, "us-east-1")
    # Registered with monitoring at startup: the running drill's fault is not drift.
    pictures = monitoring.load_picture()
    assert [f.identifier for f in pictures[apps[0].pk].drift] == ["hc-calm"]
    assert pictures[apps[1].pk].drift == []


def test_drift_shows_red_on_the_overview_and_the_stack_page(client_for, viewer):
    from django.urls import reverse

    from tests.regions.test_status_api import add_routing_components, populate

    (app,) = populate()
    add_routing_components(app)
    client = client_for(viewer)

    page = client.get(reverse("regions:overview")).content.decode()

    assert "drift: 1 fault left on" in page
    assert page.count("cell--drift") == 1
    assert f"health check hc-{app.pk}-us-west-2 is inverted" in page
    assert "UpdateHealthCheck Inverted=false" in page
    assert "no traffic: health check inverted" in page

    stack_page = client.get(reverse("regions:stack", args=[app.name, "us-west-2"])).content.decode()
    assert "UpdateHealthCheck Inverted=false" in stack_page
    assert "receives no traffic" in stack_page
