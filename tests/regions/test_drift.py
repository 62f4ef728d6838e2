"""Drift (regions/drift.py) and its undo (regions/undo.py): every fault left on is found
after injecting it through boto3 against the sandbox, with its undo as data; applying
that undo from the console (as an operator) turns the fault off, as an independent
boto3 read confirms, and is audited. A fault a drill has reverted is not drift, even
before the live configuration is read again."""

import json
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils import timezone

from controlplane.models import AuditEvent
from regions import aws_health, drift, monitoring, undo
from regions.discovery import run_discovery
from regions.models import Application, Component, ComponentKind, Stack
from regions.routing import ComponentView

REGIONS = ["eu-central-1", "us-east-1", "us-west-2"]
FAULT_OFF = {"is_enabled": False, "fault_type": "exception", "delay": 400, "error_code": 503, "rate": 1}
PAUSE_TAG = "sandbox:replication-paused"


def findings(app):
    drift.refresh_live_config(application_ids=[app.pk])
    aws_health.poll(application_ids=[app.pk])
    return monitoring.load_picture(application_ids=[app.pk])[app.pk].drift


# --- faults, injected and read with boto3 (an independent client of the sandbox) -------

def _check(sb):
    return sb.client("route53", "us-east-1").get_health_check(
        HealthCheckId=sb.stack("orders", "us-east-1").health_check_id
    )["HealthCheck"]["HealthCheckConfig"]


def _hc(sb, **flags):
    sb.client("route53", "us-east-1").update_health_check(
        HealthCheckId=sb.stack("orders", "us-east-1").health_check_id, **flags
    )


def _group(sb):
    return sb.client("globalaccelerator", "us-west-2").describe_endpoint_group(
        EndpointGroupArn=sb.stack("payments", "eu-central-1").endpoint_group_arn
    )["EndpointGroup"]


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


def _concurrency(sb):
    sb.client("lambda", "us-east-1").put_function_concurrency(
        FunctionName="orders-api", ReservedConcurrentExecutions=0
    )


def _reserved(sb):
    return sb.client("lambda", "us-east-1").get_function_concurrency(FunctionName="orders-api").get(
        "ReservedConcurrentExecutions"
    )


def _ssm(sb, on):
    sb.client("ssm", "us-east-1").put_parameter(
        Name=sb.stack("orders", "us-east-1").ssm_fault_parameter, Type="String", Overwrite=True,
        Value=json.dumps({**FAULT_OFF, "is_enabled": on}),
    )


def _flag(sb):
    name = sb.stack("orders", "us-east-1").ssm_fault_parameter
    return json.loads(sb.client("ssm", "us-east-1").get_parameter(Name=name)["Parameter"]["Value"])


def _throttle(sb, limit):
    stack = sb.stack("orders", "us-east-1")
    sb.client("apigateway", "us-east-1").update_stage(
        restApiId=stack.rest_api_id, stageName=stack.stage_name,
        patchOperations=[{"op": "replace", "path": "/*/*/throttling/rateLimit", "value": str(limit)}],
    )


def _rate_limit(sb):
    stack = sb.stack("orders", "us-east-1")
    apigw = sb.client("apigateway", "us-east-1")
    stage = apigw.get_stage(restApiId=stack.rest_api_id, stageName=stack.stage_name)
    return (stage.get("methodSettings") or {}).get("*/*", {}).get("throttlingRateLimit")


def _listener(sb, fixed):
    stack = sb.stack("payments", "eu-central-1")
    fixed_503 = {"StatusCode": "503", "ContentType": "text/plain"}
    action = (
        {"Type": "fixed-response", "FixedResponseConfig": fixed_503}
        if fixed else {"Type": "forward", "TargetGroupArn": stack.target_group_arn}
    )
    elb = sb.client("elbv2", "eu-central-1")
    elb.modify_listener(ListenerArn=stack.listener_arn, DefaultActions=[action])


def _default_action(sb):
    stack = sb.stack("payments", "eu-central-1")
    (listener,) = sb.client("elbv2", "eu-central-1").describe_listeners(ListenerArns=[stack.listener_arn])[
        "Listeners"
    ]
    (action,) = listener["DefaultActions"]
    return action["Type"], action.get("TargetGroupArn")


def _arc(sb, state):
    sb.client("route53-recovery-cluster", "us-west-2").update_routing_control_state(
        RoutingControlArn=sb.stack("orders", "us-east-1").routing_control_arn, RoutingControlState=state
    )


def _arc_state(sb):
    return sb.client("route53-recovery-cluster", "us-west-2").get_routing_control_state(
        RoutingControlArn=sb.stack("orders", "us-east-1").routing_control_arn
    )["RoutingControlState"]


def _pause(sb):
    sb.client("dynamodb", "us-west-2").tag_resource(
        ResourceArn=sb.stack("orders", "us-west-2").table_arn, Tags=[{"Key": PAUSE_TAG, "Value": "true"}]
    )


def _paused(sb):
    tags = sb.client("dynamodb", "us-west-2").list_tags_of_resource(
        ResourceArn=sb.stack("orders", "us-west-2").table_arn
    )["Tags"]
    return any(t["Key"] == PAUSE_TAG for t in tags)


FAULTS = {
    # name: (application, region, component kind, inject, is the fault on (boto3), words in
    #        `what`, the undo's service, operation and some of its parameters)
    "inverted": ("orders", "us-east-1", ComponentKind.ROUTE53_HEALTH_CHECK,
                 lambda sb: _hc(sb, Inverted=True), lambda sb: _check(sb)["Inverted"],
                 "is inverted", ("route53", "UpdateHealthCheck", {"Inverted": False})),
    "disabled": ("orders", "us-east-1", ComponentKind.ROUTE53_HEALTH_CHECK,
                 lambda sb: _hc(sb, Disabled=True), lambda sb: _check(sb)["Disabled"],
                 "is disabled", ("route53", "UpdateHealthCheck", {"Disabled": False})),
    "dial": ("payments", "eu-central-1", ComponentKind.GA_ENDPOINT_GROUP,
             lambda sb: _dial(sb, 0), lambda sb: _group(sb)["TrafficDialPercentage"] == 0,
             "traffic dial", ("globalaccelerator", "UpdateEndpointGroup", {"TrafficDialPercentage": 100.0})),
    "weight": ("payments", "eu-central-1", ComponentKind.GA_ENDPOINT_GROUP,
               lambda sb: _weight(sb, 0), lambda sb: _group(sb)["EndpointDescriptions"][0]["Weight"] == 0,
               "weight 0", ("globalaccelerator", "UpdateEndpointGroup", {})),
    "concurrency": ("orders", "us-east-1", ComponentKind.LAMBDA_FUNCTION,
                    _concurrency, lambda sb: _reserved(sb) == 0, "orders-api has reserved concurrency 0",
                    ("lambda", "DeleteFunctionConcurrency", {"FunctionName": "orders-api"})),
    "ssm": ("orders", "us-east-1", ComponentKind.SSM_FAULT_PARAMETER,
            lambda sb: _ssm(sb, True), lambda sb: _flag(sb)["is_enabled"],
            "failure injection is enabled", ("ssm", "PutParameter", {"Overwrite": True})),
    "stage": ("orders", "us-east-1", ComponentKind.API_GATEWAY_STAGE,
              lambda sb: _throttle(sb, 0), lambda sb: _rate_limit(sb) == 0,
              "is throttled", ("apigateway", "UpdateStage", {})),
    "listener": ("payments", "eu-central-1", ComponentKind.ALB_LISTENER,
                 lambda sb: _listener(sb, True), lambda sb: _default_action(sb)[0] == "fixed-response",
                 "answers a fixed 503", ("elbv2", "ModifyListener", {})),
    "routing_control": ("orders", "us-east-1", ComponentKind.ARC_ROUTING_CONTROL,
                        lambda sb: _arc(sb, "Off"), lambda sb: _arc_state(sb) == "Off",
                        "is Off", ("route53-recovery-cluster", "UpdateRoutingControlState",
                                   {"RoutingControlState": "On"})),
    "replication": ("orders", "us-west-2", ComponentKind.DYNAMODB_REPLICA,
                    _pause, _paused, "is paused",
                    ("dynamodb", "UntagResource", {"TagKeys": [PAUSE_TAG]})),
}


@pytest.mark.sandbox
@pytest.mark.django_db
@pytest.mark.parametrize("name", list(FAULTS))
def test_a_fault_left_on_is_drift_with_its_undo_as_data_and_the_operator_s_undo_turns_it_off(
    name, sandbox_settings, operator
):
    sb = sandbox_settings
    app_name, region, kind, inject, is_on, what, (service, operation, parameters) = FAULTS[name]
    run_discovery(actor="test", regions=REGIONS)
    app = Application.objects.get(name=app_name)
    assert findings(app) == []

    inject(sb)
    assert is_on(sb)
    found = findings(app)

    assert len(found) == 1, found
    (finding,) = found
    assert (finding.region, finding.kind) == (region, kind)
    assert what in finding.what
    data = finding.as_dict()["undo"]
    assert (data["service"], data["operation"]) == (service, operation)
    assert parameters.items() <= data["parameters"].items()
    assert set(data) == {"service", "region", "operation", "parameters"}
    assert str(finding.undo).startswith(f"{operation} ")  # still readable

    stack = Stack.objects.get(application=app, region__code=region)
    undone = undo.apply_undo(operator, stack, finding.component, finding.undo.key)

    assert undone == finding
    assert not is_on(sb), "the undo left the fault on in AWS"
    assert monitoring.load_picture(application_ids=[app.pk])[app.pk].drift == []  # read again at once
    (event,) = AuditEvent.objects.filter(action="drift.undo")
    assert event.actor == operator.username
    assert (event.object_type, event.object_id) == ("regions.component", str(finding.component))
    assert event.before["finding"]["what"] == finding.what
    assert event.after["call"] == data


@pytest.mark.sandbox
@pytest.mark.django_db
def test_the_listener_undo_forwards_to_the_load_balancer_s_target_group(sandbox_settings, operator):
    sb = sandbox_settings
    run_discovery(actor="test", regions=REGIONS)
    app = Application.objects.get(name="payments")
    _listener(sb, True)
    (finding,) = findings(app)

    undo.apply_undo(operator, Stack.objects.get(application=app, region__code="eu-central-1"),
                    finding.component, finding.undo.key)

    assert _default_action(sb) == ("forward", sb.stack("payments", "eu-central-1").target_group_arn)


# --- not drift: a live drill's faults, and a fault a drill has reverted ----------------


def view(pk, app_id, config, read_at=None):
    return ComponentView(pk, app_id, pk, "us-east-1", ComponentKind.ROUTE53_HEALTH_CHECK, f"hc-{pk}", "",
                         config, {}, read_at)


def test_a_live_drill_s_faults_and_a_fault_reverted_after_it_was_read_are_not_drift():
    now = timezone.now()
    read = now - timedelta(seconds=8)
    checks = [view(1, 7, {"Inverted": True}, read), view(2, 8, {"Inverted": True}, read),
              view(3, 9, {"Inverted": True}, read), view(4, 9, {"Inverted": True}, None)]

    (finding, *_) = drift.find_drift(checks)
    assert finding.as_dict() == {
        "region": "us-east-1", "component_kind": "route53_health_check", "identifier": "hc-1",
        "what": "health check hc-1 is inverted",
        "undo": {"service": "route53", "region": "us-east-1", "operation": "UpdateHealthCheck",
                 "parameters": {"HealthCheckId": "hc-1", "Inverted": False}},
        "undo_text": "UpdateHealthCheck HealthCheckId=hc-1 Inverted=false (route53 in us-east-1)",
        "applicable": True,
    }
    assert len(drift.find_drift(checks)) == 4

    deliberate = monitoring.DeliberateChanges(
        drills=(monitoring.ActiveDrill(1, "running", 7, "us-east-1", "/drills/1/"),),  # on application 7
        # check 2's fault was reverted after its config was read; check 3's before (a
        # later fault, not the drill's); check 4's config was never stamped
        reverted={2: now - timedelta(seconds=3), 3: now - timedelta(seconds=60),
                  4: now - timedelta(seconds=60)},
    )
    assert [f.identifier for f in drift.find_drift(checks, deliberate)] == ["hc-3"]


def _drill(operator, app, region, state):
    from experiments.models import Drill, Scenario
    from experiments.scenarios import ensure_builtin_scenarios

    ensure_builtin_scenarios()
    return Drill.objects.create(
        scenario=Scenario.objects.get(slug="fail-region-health-check"), application=app, region=region,
        requested_by=operator, state=state, plan={"calls": []}, plan_hash="0" * 64,
    )


@pytest.mark.django_db
def test_the_drills_app_tells_monitoring_which_changes_are_deliberate(operator):
    from experiments.models import Compensation, CompensationState, DrillState
    from experiments.queries import deliberate_changes
    from regions.models import Region

    region = Region.objects.create(code="us-east-1")
    apps = [Application.objects.create(name=n, architecture="A") for n in ("calm", "drilled", "done")]
    components = []
    for app in apps:
        components.append(Component.objects.create(
            stack=Stack.objects.create(application=app, region=region),
            kind=ComponentKind.ROUTE53_HEALTH_CHECK, identifier=f"hc-{app.name}", config={"Inverted": True},
            config_read_at=timezone.now() - timedelta(seconds=5),
        ))
    _drill(operator, apps[0], region, DrillState.PASSED)
    running = _drill(operator, apps[1], region, DrillState.RUNNING)
    done = _drill(operator, apps[2], region, DrillState.PASSED)
    reverted_at = timezone.now() - timedelta(seconds=1)
    Compensation.objects.create(
        drill=done, component=components[2], fault_kind="route53_health_check_invert", target={}, call={},
        inverse={}, deadline=timezone.now(), state=CompensationState.REVERTED, reverted_at=reverted_at,
    )

    changes = deliberate_changes([a.pk for a in apps], timezone.now() - timedelta(hours=1))

    assert changes.live == {apps[1].pk}
    (live,) = changes.drills  # what the console marks on the application and the region
    assert live == monitoring.ActiveDrill(
        running.pk, DrillState.RUNNING, apps[1].pk, "us-east-1",
        reverse("experiments:detail", args=[running.pk]),
    )
    assert changes.reverted == {components[2].pk: reverted_at}
    # Registered with monitoring at startup: neither the running drill's fault nor the
    # one reverted after the configuration was read is drift; the calm one is.
    pictures = monitoring.load_picture()
    assert [f.identifier for f in pictures[apps[0].pk].drift] == ["hc-calm"]
    assert pictures[apps[1].pk].drift == []
    assert pictures[apps[2].pk].drift == []
    # read again after the revert, still inverted: a fault of its own, drift again
    Component.objects.filter(pk=components[2].pk).update(config_read_at=timezone.now())
    assert [f.identifier for f in monitoring.load_picture()[apps[2].pk].drift] == ["hc-done"]


@pytest.mark.sandbox
@pytest.mark.django_db
@pytest.mark.parametrize("fault_kind", ["ga_traffic_dial", "arc_routing_control_off"])
def test_no_drift_once_the_drill_has_reverted_its_fault_before_anything_is_read_again(
    fault_kind, sandbox_settings, operator
):
    """A drill injects through the ledger, the live configuration (or AWS's observation)
    is read while the fault is on, the drill reverts and ends: the evidence read before
    the revert must not make drift, as it did for 4-8 s before the next read."""
    from experiments import ledger
    from experiments.faults import REGISTRY, Target
    from experiments.models import DrillState, FaultKind

    sb = sandbox_settings
    run_discovery(actor="test", regions=REGIONS)
    app_name, region_code, kind = {
        "ga_traffic_dial": ("payments", "eu-central-1", ComponentKind.GA_ENDPOINT_GROUP),
        "arc_routing_control_off": ("orders", "us-east-1", ComponentKind.ARC_ROUTING_CONTROL),
    }[fault_kind]
    app = Application.objects.get(name=app_name)
    component = Component.objects.select_related("stack__region", "stack__application").get(
        kind=kind, stack__application=app, stack__region__code=region_code
    )
    drill = _drill(operator, app, component.stack.region, DrillState.RUNNING)
    compensation = ledger.inject(
        drill, REGISTRY[FaultKind(fault_kind)], Target.from_component(component),
        deadline=timezone.now() + timedelta(minutes=5),
    )
    assert findings(app) == []  # on, read, but the drill is running: deliberate

    assert ledger.revert(compensation) == ""
    type(drill).objects.filter(pk=drill.pk).update(state=DrillState.PASSED, finished_at=timezone.now())
    if kind == ComponentKind.GA_ENDPOINT_GROUP:
        assert _group(sb)["TrafficDialPercentage"] == 100  # reverted in AWS (boto3)
    else:
        assert _arc_state(sb) == "On"

    # Nothing read again yet: the evidence still shows the fault.
    picture = monitoring.load_picture(application_ids=[app.pk])[app.pk]
    assert picture.drift == []
    # A fault put back by hand after the revert is drift as soon as it is read.
    (_dial(sb, 0) if kind == ComponentKind.GA_ENDPOINT_GROUP else _arc(sb, "Off"))
    assert [f.component for f in findings(app)] == [component.pk]


# --- the console: apply the undo, refused for viewers, bad input and AWS errors --------


def _stack_with_drift(function_name="orders-api"):
    """A stack whose Lambda shows reserved concurrency 0 in its last-seen configuration
    (no AWS behind it: what an undo does is not under test here)."""
    from regions.models import Region

    app = Application.objects.create(name="orders", architecture="A")
    stack = Stack.objects.create(application=app, region=Region.objects.create(code="us-east-1"))
    component = Component.objects.create(
        stack=stack, kind=ComponentKind.LAMBDA_FUNCTION, identifier=f"arn:fn:{function_name}",
        name=function_name, config={"FunctionName": function_name, "ReservedConcurrentExecutions": 0},
        config_read_at=timezone.now(),
    )
    (finding,) = monitoring.load_picture()[app.pk].drift
    return stack, component, finding


def _post(client, stack, **data):
    url = reverse("regions:apply-undo", args=[stack.application.name, stack.region.code])
    return client.post(url, data, follow=True)


@pytest.mark.django_db
def test_the_stack_page_offers_the_undo_to_operators_only(client_for, operator, viewer):
    *_, finding = _stack_with_drift()
    url = reverse("regions:stack", args=["orders", "us-east-1"])

    page = client_for(operator).get(url).content.decode()
    assert "DeleteFunctionConcurrency FunctionName=orders-api (lambda in us-east-1)" in page
    assert f'name="undo" value="{finding.undo.key}"' in page
    assert "Apply undo" in page

    viewer_page = client_for(viewer).get(url).content.decode()
    assert "DeleteFunctionConcurrency FunctionName=orders-api" in viewer_page
    assert "Apply undo" not in viewer_page


@pytest.mark.django_db
def test_a_viewer_cannot_apply_an_undo(client_for, viewer):
    stack, component, finding = _stack_with_drift()

    response = _post(client_for(viewer), stack, component=component.pk, undo=finding.undo.key)

    assert response.status_code == 403
    assert not AuditEvent.objects.filter(action__startswith="drift.").exists()
    with pytest.raises(PermissionDenied):
        undo.apply_undo(viewer, stack, component.pk, finding.undo.key)


@pytest.mark.django_db
@pytest.mark.parametrize("data, message", [
    ({}, "Name a drift finding to undo"),
    ({"component": "x", "undo": "k"}, "Name a drift finding to undo"),
    ({"component": "99999999999999999999999", "undo": "k"}, "Name a drift finding to undo"),
    ({"component": "-1", "undo": "k"}, "Name a drift finding to undo"),
    ({"component": "424242", "undo": "k"}, "has no such component"),
    ({"component": "OWN", "undo": "not-the-key"}, "shows no such drift now"),
])
def test_bad_input_gets_a_clear_message_changes_nothing_and_is_never_a_500(
    client_for, operator, data, message
):
    stack, component, _ = _stack_with_drift()
    if data.get("component") == "OWN":
        data = {**data, "component": component.pk}

    response = _post(client_for(operator), stack, **data)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not AuditEvent.objects.filter(action__startswith="drift.").exists()


@pytest.mark.django_db
def test_a_component_of_another_stack_is_refused(client_for, operator):
    from regions.models import Region

    stack, component, finding = _stack_with_drift()
    west = Stack.objects.create(application=stack.application, region=Region.objects.create(code="us-west-2"))

    response = _post(client_for(operator), west, component=component.pk, undo=finding.undo.key)

    assert "has no such component" in response.content.decode()
    assert not AuditEvent.objects.filter(action__startswith="drift.").exists()


@pytest.mark.django_db
def test_an_undo_to_be_made_by_hand_is_not_called(client_for, operator):
    from regions.models import Region

    app = Application.objects.create(name="orders", architecture="A")
    stack = Stack.objects.create(application=app, region=Region.objects.create(code="us-east-1"))
    listener = Component.objects.create(
        stack=stack, kind=ComponentKind.ALB_LISTENER, identifier="arn:listener", name="alb:80",
        config={"DefaultActions": [{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "503"}}],
                "TargetGroupArns": ["arn:tg-a", "arn:tg-b"]},
        config_read_at=timezone.now(),
    )
    (finding,) = monitoring.load_picture()[app.pk].drift
    assert finding.undo.manual and not finding.as_dict()["applicable"]

    page = client_for(operator).get(reverse("regions:stack", args=["orders", "us-east-1"])).content.decode()
    assert "to be made by hand" in page
    response = _post(client_for(operator), stack, component=listener.pk, undo=finding.undo.key)

    assert "is made by hand, not from the console: the load balancer has 2 target groups" in (
        response.content.decode().replace("&#x27;", "'")
    )
    assert not AuditEvent.objects.filter(action__startswith="drift.").exists()


@pytest.mark.sandbox
@pytest.mark.django_db
def test_an_aws_error_is_a_clear_message_audited_not_a_500(client_for, operator, sandbox_settings):
    # The last-seen configuration names a function AWS does not have.
    stack, component, finding = _stack_with_drift(function_name="no-such-function")

    response = _post(client_for(operator), stack, component=component.pk, undo=finding.undo.key)

    assert response.status_code == 200
    page = response.content.decode()
    assert "AWS did not make DeleteFunctionConcurrency (ResourceNotFoundException" in page
    assert "the fault is still on" in page
    (event,) = AuditEvent.objects.filter(action="drift.undo_failed")
    assert event.actor == operator.username
    assert event.after["call"]["parameters"] == {"FunctionName": "no-such-function"}
    assert "ResourceNotFoundException" in event.after["error"]
    assert not AuditEvent.objects.filter(action="drift.undo").exists()


@pytest.mark.sandbox
@pytest.mark.django_db
def test_the_operator_applies_an_undo_from_the_stack_page(client_for, operator, sandbox_settings):
    sb = sandbox_settings
    run_discovery(actor="test", regions=REGIONS)
    app = Application.objects.get(name="orders")
    _concurrency(sb)
    (finding,) = findings(app)
    stack = Stack.objects.get(application=app, region__code="us-east-1")
    client = client_for(operator)
    stack_url = reverse("regions:stack", args=["orders", "us-east-1"])
    assert finding.undo.key in client.get(stack_url).content.decode()

    response = _post(client, stack, component=finding.component, undo=finding.undo.key)

    assert response.status_code == 200
    page = response.content.decode()
    assert "Undone: Lambda orders-api has reserved concurrency 0 (DeleteFunctionConcurrency in us-east-1" in (
        page
    )
    assert "Apply undo" not in page  # read again: no drift left to undo
    assert _reserved(sb) is None  # boto3: no reserved concurrency any more
    assert AuditEvent.objects.filter(action="drift.undo", actor=operator.username).count() == 1


def test_drift_shows_red_on_the_overview_and_the_stack_page(client_for, viewer):
    from tests.regions.test_status_api import add_routing_components, populate

    (app,) = populate()
    add_routing_components(app)
    client = client_for(viewer)

    page = client.get(reverse("regions:overview")).content.decode()

    assert "drift: 1 fault left on" in page
    assert page.count("cell--drift") == 1
    assert f"health check hc-{app.pk}-us-west-2 is inverted" in page
    undo_text = f"UpdateHealthCheck HealthCheckId=hc-{app.pk}-us-west-2 Inverted=false (route53 in us-east-1)"
    assert undo_text in page
    assert "no traffic: clients: not serving any vantage" in page
    assert "AWS: health check inverted, as of " in page

    stack_page = client.get(reverse("regions:stack", args=[app.name, "us-west-2"])).content.decode()
    assert undo_text in stack_page
    assert "receives no traffic" in stack_page
