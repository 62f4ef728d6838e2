"""Scenarios exported to AWS FIS and Chaos Toolkit, and Chaos Toolkit experiments imported
as scenarios (experiments/interop): against the sandbox, botocore's model of FIS, and
Chaos Toolkit's own `chaos validate`."""

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from botocore.model import ServiceModel
from botocore.session import get_session
from botocore.validate import ParamValidator
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from controlplane.api import issue_token
from controlplane.models import AuditEvent
from experiments import plans
from experiments.faults import FIS_PAUSE_ACTION, REGISTRY
from experiments.models import Scenario
from regions.models import Application, Component, ComponentKind, Region

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db]

CHAOS = str(Path(sys.executable).with_name("chaos"))


def fis_input_shape():
    model = ServiceModel(get_session().get_service_data("fis"), "fis")
    return model.operation_model("CreateExperimentTemplate").input_shape


@pytest.fixture
def api(client):
    def call(user, method, url, body=None):
        token = issue_token(user)[1]
        return client.generic(method, url, "" if body is None else json.dumps(body),
                              content_type="application/json", headers={"Authorization": f"Bearer {token}"})

    return call


def export_url(slug, fmt, app, region, **extra):
    params = {"format": fmt, "application": app, "region": region, **extra}
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{reverse('api-scenario-export', args=[slug])}?{query}"


def plan_of(slug, app, region):
    return plans.make_plan(Scenario.objects.get(slug=slug), Application.objects.get(name=app),
                           Region.objects.get(code=region))[0]


# --- FIS ---------------------------------------------------------------------------------


def test_a_lambda_throttle_exports_as_a_fis_template_botocore_accepts_and_moto_creates(
    world, api, viewer, sandbox_aws
):
    response = api(viewer, "GET", export_url("throttle-region-functions", "fis", "orders", "us-east-1"))
    assert response.status_code == 200, response.content
    template = response.json()
    report = ParamValidator().validate(template, fis_input_shape())
    assert not report.has_errors(), report.generate_report()
    functions = sorted(t["identifier"] for t in plan_of("throttle-region-functions", "orders", "us-east-1")
                       ["target_snapshots"])
    assert template["targets"]["Functions"]["resourceArns"] == functions
    assert template["actions"]["InvocationError"]["actionId"] == "aws:lambda:invocation-error"
    assert template["actions"]["InvocationError"]["parameters"]["duration"] == "PT10M"
    # the built-in's stop conditions are measured through the global endpoint: no alarm
    assert template["stopConditions"] == [{"source": "none"}]
    assert "global_error_rate: measured through the global endpoint" in template["description"]
    fis = sandbox_aws("fis", "us-east-1")
    created = fis.create_experiment_template(**template)["experimentTemplate"]
    stored = fis.get_experiment_template(id=created["id"])["experimentTemplate"]
    assert stored["targets"]["Functions"]["resourceArns"] == functions
    assert stored["tags"]["controlplane:scenario"] == "throttle-region-functions"
    assert stored["roleArn"].endswith(":role/sandbox-fis-experiments")


def test_pause_replication_exports_with_the_fis_pause_action_and_an_alarm_as_stop_condition(
    world, api, viewer, sandbox_aws
):
    cloudwatch = sandbox_aws("cloudwatch", "us-east-1")
    cloudwatch.put_metric_alarm(
        AlarmName="orders-replication-latency", Namespace="AWS/DynamoDB", MetricName="ReplicationLatency",
        Statistic="Average", Period=60, EvaluationPeriods=1, Threshold=2000,
        ComparisonOperator="GreaterThanThreshold",
    )
    alarm = cloudwatch.describe_alarms(AlarmNames=["orders-replication-latency"])["MetricAlarms"][0]
    stack = Application.objects.get(name="orders").stacks.get(region__code="us-east-1")
    Component.objects.create(stack=stack, kind=ComponentKind.CLOUDWATCH_ALARM, identifier=alarm["AlarmArn"],
                             name=alarm["AlarmName"],
                             config={"Namespace": "AWS/DynamoDB", "MetricName": "ReplicationLatency"})
    scenario = Scenario.objects.get(slug="pause-replication")
    scenario.stop_conditions = [{"metric": "replication_lag", "threshold_ms": 5000}]
    scenario.save()
    response = api(viewer, "GET", export_url("pause-replication", "fis", "orders", "us-east-1"))
    assert response.status_code == 200, response.content
    template = response.json()
    assert not ParamValidator().validate(template, fis_input_shape()).has_errors()
    assert template["stopConditions"] == [{"source": "aws:cloudwatch:alarm", "value": alarm["AlarmArn"]}]
    assert template["actions"]["PauseReplication"]["actionId"] == FIS_PAUSE_ACTION
    plan = plan_of("pause-replication", "orders", "us-east-1")
    tables = [t["identifier"] for t in plan["target_snapshots"]]
    assert template["targets"]["Tables"]["resourceArns"] == tables
    created = sandbox_aws("fis", "us-east-1").create_experiment_template(**template)["experimentTemplate"]
    assert created["stopConditions"] == template["stopConditions"]


@pytest.mark.parametrize("slug, app, region", [
    ("fail-region-health-check", "orders", "us-east-1"),
    ("dial-region-to-zero", "payments", "eu-central-1"),
    ("error-rate-50", "orders", "us-east-1"),
])
def test_a_fault_without_a_fis_action_is_a_clear_400(world, api, viewer, slug, app, region):
    response = api(viewer, "GET", export_url(slug, "fis", app, region))
    assert response.status_code == 400
    assert response.json()["error"].startswith("no FIS action for this fault: ")
    assert response.json()["fields"] == {"format": [response.json()["error"]]}
    assert Scenario.objects.get(slug=slug).fault_kind in response.json()["error"]


def test_an_export_request_that_does_not_fit_names_each_field(world, api, viewer):
    bad = api(viewer, "GET", export_url("throttle-region-functions", "xml", "nope", "us-east-1"))
    assert bad.status_code == 400
    assert set(bad.json()["fields"]) == {"format", "application"}
    no_stack = api(viewer, "GET", export_url("throttle-region-functions", "fis", "orders", "eu-central-1"))
    assert no_stack.json()["fields"]["region"] == ["orders has no stack in eu-central-1."]
    other_arch = api(viewer, "GET", export_url("dial-region-to-zero", "chaostoolkit", "orders", "us-east-1"))
    assert other_arch.status_code == 400 and "scenario" not in other_arch.json()["fields"]
    assert "applies to architecture B" in other_arch.json()["fields"]["non_field_errors"][0]
    assert api(viewer, "GET", export_url("no-such", "fis", "orders", "us-east-1")).status_code == 404


# --- Chaos Toolkit -----------------------------------------------------------------------


def chaos_validate(experiment, tmp_path):
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(experiment))
    return subprocess.run([CHAOS, "--log-file", str(tmp_path / "chaos.log"), "validate", str(path)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)


@pytest.mark.parametrize("slug, app, region", [
    ("throttle-region-functions", "orders", "us-east-1"),
    ("fail-region-health-check", "orders", "us-east-1"),
    ("dial-region-to-zero", "payments", "eu-central-1"),
])
def test_a_chaostoolkit_export_passes_chaos_validate(world, api, viewer, tmp_path, slug, app, region):
    response = api(viewer, "GET", export_url(slug, "chaostoolkit", app, region))
    assert response.status_code == 200, response.content
    filename = f"{slug}-{app}-{region}.chaostoolkit.json"
    assert response["Content-Disposition"] == f'attachment; filename="{filename}"'
    experiment = response.json()
    result = chaos_validate(experiment, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "experiment syntax and semantic look valid" in (tmp_path / "chaos.log").read_text()
    probe = experiment["steady-state-hypothesis"]["probes"][0]
    assert probe["provider"]["url"] == Application.objects.get(name=app).global_endpoint_url
    calls = plan_of(slug, app, region)["calls"]
    assert len(experiment["method"]) == len(experiment["rollbacks"]) == len(calls)


def test_the_chaostoolkit_export_makes_the_plans_calls_and_inverses(world, api, viewer):
    url = export_url("throttle-region-functions", "chaostoolkit", "orders", "us-east-1")
    response = api(viewer, "GET", url)
    experiment = response.json()
    calls = plan_of("throttle-region-functions", "orders", "us-east-1")["calls"]
    method = [a["provider"] for a in experiment["method"]]
    assert [(p["module"], p["func"]) for p in method] == [
        ("chaosaws.awslambda.actions", "put_function_concurrency")] * len(calls)
    assert [p["arguments"] for p in method] == [
        {"function_name": c["params"]["FunctionName"], "concurrent_executions": 0} for c in calls]
    rollbacks = [a["provider"] for a in experiment["rollbacks"]]
    assert [r["arguments"]["function_name"] for r in rollbacks] == [
        c["inverse"]["params"]["FunctionName"] for c in reversed(calls)]
    assert experiment["configuration"] == {"aws_region": "us-east-1"}
    assert experiment["method"][-1]["pauses"] == {"after": 60}


def test_a_health_check_inversion_is_the_aws_cli_call_with_the_plans_parameters(world, api, viewer):
    url = export_url("fail-region-health-check", "chaostoolkit", "orders", "us-east-1")
    response = api(viewer, "GET", url)
    (action,), (rollback,) = response.json()["method"], response.json()["rollbacks"]
    (call,) = plan_of("fail-region-health-check", "orders", "us-east-1")["calls"]
    args = action["provider"]["arguments"]
    assert args[:4] == ["route53", "update-health-check", "--region", "us-east-1"]
    assert json.loads(args[args.index("--cli-input-json") + 1]) == call["params"]
    back = rollback["provider"]["arguments"]
    assert json.loads(back[back.index("--cli-input-json") + 1]) == call["inverse"]["params"]


# --- import ------------------------------------------------------------------------------


EQUIVALENT = (
    "fault_kind", "target_selector", "hypothesis", "stop_conditions", "max_duration", "architecture",
)


@pytest.mark.parametrize("slug, app, region", [
    ("throttle-region-functions", "orders", "us-east-1"),
    ("error-rate-50", "orders", "us-east-1"),
    ("fail-region-health-check", "orders", "us-east-1"),
    ("dial-region-to-zero", "payments", "eu-central-1"),
])
def test_export_then_import_gives_an_equivalent_scenario(world, api, operator, slug, app, region):
    experiment = api(operator, "GET", export_url(slug, "chaostoolkit", app, region)).json()
    response = api(operator, "POST", reverse("api-scenario-import") + f"?slug={slug}-back", experiment)
    assert response.status_code == 201, response.content
    original, back = Scenario.objects.get(slug=slug), Scenario.objects.get(slug=f"{slug}-back")
    assert {f: getattr(back, f) for f in EQUIVALENT} == {f: getattr(original, f) for f in EQUIVALENT}
    fault = REGISTRY[original.fault_kind]
    assert {**fault.defaults, **back.parameters} == {**fault.defaults, **original.parameters}
    assert back.created_by == operator and not back.built_in
    event = AuditEvent.objects.get(action="scenario.created", object_id=str(back.pk))
    made = (event.actor, event.source, event.after["imported_from"])
    assert made == (operator.username, "api", "chaostoolkit")
    # and it plans as the original does
    assert plan_of(f"{slug}-back", app, region)["calls"] == plan_of(slug, app, region)["calls"]


def _lambda_action(name, function, concurrency=0):
    return {"type": "action", "name": name, "provider": {
        "type": "python", "module": "chaosaws.awslambda.actions", "func": "put_function_concurrency",
        "arguments": {"function_name": function, "concurrent_executions": concurrency}}}


HAND_WRITTEN = {
    "version": "1.0.0",
    "title": "Throttle the orders API",
    "description": "Written by hand, no control plane extension.",
    "configuration": {"aws_region": "us-east-1"},
    "steady-state-hypothesis": {"title": "up", "probes": []},
    "method": [_lambda_action("throttle", "orders-api")],
}


def test_a_hand_written_experiment_becomes_a_scenario_on_the_named_target(db, api, operator):
    response = api(operator, "POST", reverse("api-scenario-import"), HAND_WRITTEN)
    assert response.status_code == 201, response.content
    scenario = Scenario.objects.get(slug="throttle-the-orders-api")
    assert response.json()["slug"] == scenario.slug
    assert scenario.fault_kind == "lambda_reserved_concurrency"
    assert scenario.parameters == {"reserved_concurrency": 0}
    assert scenario.target_selector == {"component_kind": "lambda_function", "name": "orders-api"}
    assert scenario.max_duration == timedelta(minutes=10)


def test_every_action_that_cannot_be_mapped_is_named_and_nothing_is_created(db, api, operator):
    experiment = {**HAND_WRITTEN, "method": [
        _lambda_action("throttle", "orders-api"),
        {"type": "action", "name": "stop-instances", "provider": {
            "type": "python", "module": "chaosaws.ec2.actions", "func": "stop_instances", "arguments": {}}},
        {"type": "probe", "name": "look", "provider": {"type": "http", "url": "http://example.com"}},
        {"type": "action", "name": "kill-pod", "provider": {"type": "process", "path": "kubectl"}},
        {"type": "action", "name": "plain-param", "provider": {
            "type": "process", "path": "aws", "arguments": [
                "ssm", "put-parameter", "--region", "us-east-1", "--cli-input-json",
                json.dumps({"Name": "x", "Value": "hello", "Type": "String"})]}},
    ]}
    scenarios, events = Scenario.objects.count(), AuditEvent.objects.count()
    response = api(operator, "POST", reverse("api-scenario-import"), experiment)
    assert response.status_code == 400
    messages = response.json()["fields"]["method"]
    assert [m.split(":")[0] for m in messages] == [
        "Cannot map action #2 stop-instances", "Cannot map action #4 kill-pod",
        "Cannot map action #5 plain-param",
    ]
    assert "chaosaws.ec2.actions.stop_instances" in messages[0]
    assert "not a failure flag" in messages[2]
    assert "#2 stop-instances" in response.json()["error"]
    assert (Scenario.objects.count(), AuditEvent.objects.count()) == (scenarios, events)


def test_actions_that_make_different_faults_are_refused(db, api, operator):
    experiment = {**HAND_WRITTEN, "method": [_lambda_action("a", "orders-api"), _lambda_action("b", "x", 5)]}
    response = api(operator, "POST", reverse("api-scenario-import"), experiment)
    assert response.status_code == 400
    assert "make different faults" in response.json()["fields"]["method"][0]
    assert not Scenario.objects.filter(slug="throttle-the-orders-api").exists()


def test_an_imported_scenario_is_validated_as_the_form_validates_it(db, api, operator):
    bad = {**HAND_WRITTEN, "method": [_lambda_action("a", "orders-api", -1)],
           "extensions": [{"name": "controlplane", "scenario": "fail-region-health-check",
                           "hypothesis": {"nonsense": 1}}]}
    response = api(operator, "POST", reverse("api-scenario-import"), bad)
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"slug", "parameters", "hypothesis"}


@pytest.mark.parametrize("body", ["[1]", "not json", '{"method": "x"}', '{"title": "a\\u0000"}'])
def test_a_body_that_is_no_experiment_is_a_400(db, client, operator, body):
    token = issue_token(operator)[1]
    response = client.post(reverse("api-scenario-import"), body, content_type="application/json",
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 400
    assert response.json()["error"]


def test_only_who_may_create_scenarios_may_import(db, api, viewer, approver):
    for user in (viewer, approver):
        assert api(user, "POST", reverse("api-scenario-import"), HAND_WRITTEN).status_code == 403
    assert not Scenario.objects.filter(slug="throttle-the-orders-api").exists()


def test_the_import_command_creates_the_scenario_and_names_what_it_cannot_map(db, operator, viewer, tmp_path):
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(HAND_WRITTEN))
    with pytest.raises(CommandError, match="may"):
        call_command("import_experiment", str(path), user=viewer.username)
    call_command("import_experiment", str(path), user=operator.username, slug="from-file")
    scenario = Scenario.objects.get(slug="from-file")
    event = AuditEvent.objects.get(action="scenario.created", object_id=str(scenario.pk))
    assert (event.actor, event.source) == (operator.username, "command")
    path.write_text(json.dumps({**HAND_WRITTEN, "method": [
        {"type": "action", "name": "reboot", "provider": {"type": "process", "path": "reboot"}}]}))
    with pytest.raises(CommandError, match="#1 reboot"):
        call_command("import_experiment", str(path), user=operator.username, slug="never")
    assert not Scenario.objects.filter(slug="never").exists()
    path.write_text("{")
    with pytest.raises(CommandError, match="as JSON"):
        call_command("import_experiment", str(path), user=operator.username)


# --- the console -------------------------------------------------------------------------


def test_the_scenario_page_downloads_an_export_or_says_why_not(world, client_for, viewer):
    client = client_for(viewer)
    page = client.get(reverse("experiments:scenario", args=["throttle-region-functions"]))
    assert reverse("experiments:scenario-export", args=["throttle-region-functions"]) in page.content.decode()
    url = reverse("experiments:scenario-export", args=["throttle-region-functions"])
    download = client.get(url, {"format": "chaostoolkit", "application": "orders", "region": "us-east-1"})
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith("attachment; ")
    assert json.loads(download.content)["method"][0]["provider"]["func"] == "put_function_concurrency"
    url = reverse("experiments:scenario-export", args=["fail-region-health-check"])
    refused = client.get(url, {"format": "fis", "application": "orders", "region": "us-east-1"})
    assert refused.status_code == 400
    assert "no FIS action for this fault" in refused.content.decode()


def test_the_scenarios_page_imports_an_uploaded_experiment(db, client_for, operator, viewer):
    def upload(client, experiment, slug=""):
        file = SimpleUploadedFile("e.json", json.dumps(experiment).encode(), "application/json")
        return client.post(reverse("experiments:scenario-import"), {"experiment": file, "slug": slug})

    client = client_for(operator)
    page = client.get(reverse("experiments:scenarios")).content.decode()
    assert "Import a Chaos Toolkit experiment" in page
    done = upload(client, HAND_WRITTEN, "uploaded")
    assert done.status_code == 302 and done["Location"] == reverse("experiments:scenario", args=["uploaded"])
    assert AuditEvent.objects.get(action="scenario.created", object_id=str(
        Scenario.objects.get(slug="uploaded").pk)).source == "console"
    refused = upload(client, {**HAND_WRITTEN, "method": [
        {"type": "action", "name": "reboot", "provider": {"type": "process", "path": "reboot"}}]}, "never")
    assert refused.status_code == 400 and "#1 reboot" in refused.content.decode()
    assert not Scenario.objects.filter(slug="never").exists()
    assert upload(client_for(viewer), HAND_WRITTEN, "viewer").status_code == 403
    assert not Scenario.objects.filter(slug="viewer").exists()
