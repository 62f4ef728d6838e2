"""Discovery against a moto server: tagged resources in, inventory out."""

import io
import json
import zipfile

import pytest
from django.core.management import call_command

from controlplane import aws
from controlplane.models import AuditEvent
from regions import discovery, tasks
from regions.discovery import route53
from regions.models import Application, Component, Region, Stack

pytestmark = pytest.mark.django_db
APP_TAG = "controlplane:application"


class World:
    """Creates tagged resources in moto through the client factory."""

    def __init__(self, url):
        self.url = url

    def client(self, service, region="us-east-1"):
        return aws.client(service, region, endpoint_url=self.url)

    def role(self):
        iam = self.client("iam")
        try:
            return iam.get_role(RoleName="lambda-exec")["Role"]["Arn"]
        except aws.ClientError:
            return iam.create_role(RoleName="lambda-exec", AssumeRolePolicyDocument="{}")[
                "Role"
            ]["Arn"]

    def function(self, region, name, tags):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("app.py", "def handler(event, context):\n    return {}\n")
        return self.client("lambda", region).create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=self.role(),
            Handler="app.handler",
            Code={"ZipFile": buf.getvalue()},
            MemorySize=512,
            Tags=tags,
        )["FunctionArn"]

    def table(self, region, name, tags):
        return self.client("dynamodb", region).create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )["TableDescription"]["TableArn"]

    def stage(self, region, name, tags):
        apigw = self.client("apigateway", region)
        api = apigw.create_rest_api(name=name)
        root = apigw.get_resources(restApiId=api["id"])["items"][0]["id"]
        apigw.put_method(
            restApiId=api["id"], resourceId=root, httpMethod="GET", authorizationType="NONE"
        )
        apigw.put_integration(restApiId=api["id"], resourceId=root, httpMethod="GET", type="MOCK")
        deployment = apigw.create_deployment(restApiId=api["id"])
        apigw.create_stage(
            restApiId=api["id"], stageName="prod", deploymentId=deployment["id"], tags=tags
        )
        return f"arn:aws:apigateway:{region}::/restapis/{api['id']}/stages/prod"

    def parameter(self, region, name, value, tags):
        self.client("ssm", region).put_parameter(
            Name=name,
            Value=json.dumps(value),
            Type="String",
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )

    def alarm(self, region, name, tags):
        self.client("cloudwatch", region).put_metric_alarm(
            AlarmName=name,
            Namespace="AWS/ApiGateway",
            MetricName="5XXError",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=3,
            Threshold=5.0,
            ComparisonOperator="GreaterThanThreshold",
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )

    def fis_template(self, region, tags):
        return self.client("fis", region).create_experiment_template(
            clientToken="orders-throttle",
            description="Throttle orders-api",
            stopConditions=[{"source": "none"}],
            targets={},
            actions={"wait": {"actionId": "aws:fis:wait", "parameters": {"duration": "PT1M"}}},
            roleArn=self.role(),
            tags=tags,
        )["experimentTemplate"]["id"]

    def load_balancer(self, region, name, tags):
        ec2 = self.client("ec2", region)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{region}{az}")[
                "Subnet"
            ]["SubnetId"]
            for i, az in enumerate("ab", start=1)
        ]
        elb = self.client("elbv2", region)
        lb = elb.create_load_balancer(
            Name=name, Subnets=subnets, Tags=[{"Key": k, "Value": v} for k, v in tags.items()]
        )["LoadBalancers"][0]
        listener = elb.create_listener(
            LoadBalancerArn=lb["LoadBalancerArn"],
            Protocol="HTTP",
            Port=80,
            DefaultActions=[
                {"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "200"}}
            ],
        )["Listeners"][0]
        return listener["ListenerArn"]

    def health_check(self, app, region, fqdn):
        r53 = self.client("route53")
        check = r53.create_health_check(
            CallerReference=f"{app}-{region}",
            HealthCheckConfig={
                "Type": "HTTPS",
                "FullyQualifiedDomainName": fqdn,
                "Port": 443,
                "ResourcePath": "/health",
                "RequestInterval": 10,
                "FailureThreshold": 3,
            },
        )["HealthCheck"]
        r53.change_tags_for_resource(
            ResourceType="healthcheck",
            ResourceId=check["Id"],
            AddTags=[
                {"Key": APP_TAG, "Value": app},
                {"Key": "controlplane:region", "Value": region},
                {"Key": "Name", "Value": f"{app}-{region}-health"},
            ],
        )
        return check["Id"]

    def zone(self, name, tags):
        r53 = self.client("route53")
        zone_id = r53.create_hosted_zone(Name=name, CallerReference=name)["HostedZone"]["Id"]
        zone_id = zone_id.split("/")[-1]
        r53.change_tags_for_resource(
            ResourceType="hostedzone",
            ResourceId=zone_id,
            AddTags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )
        return zone_id

    def latency_record(self, zone_id, name, region, check_id, target):
        self.client("route53").change_resource_record_sets(
            HostedZoneId=zone_id,
            ChangeBatch={
                "Changes": [
                    {
                        "Action": "CREATE",
                        "ResourceRecordSet": {
                            "Name": name,
                            "Type": "CNAME",
                            "SetIdentifier": region,
                            "Region": region,
                            "TTL": 60,
                            "HealthCheckId": check_id,
                            "ResourceRecords": [{"Value": target}],
                        },
                    }
                ]
            },
        )


@pytest.fixture
def world(moto):
    return World(moto)


@pytest.fixture
def orders(world):
    """Architecture A in two regions, tagged per docs/DISCOVERY.md."""
    tags = {APP_TAG: "orders"}
    zone_id = world.zone(
        "orders.example.com",
        {
            APP_TAG: "orders",
            "controlplane:architecture": "A",
            "controlplane:global-endpoint-url": "https://api.orders.example.com/",
        },
    )
    made = {"zone": zone_id}
    for region in ("us-east-1", "us-west-2"):
        made[region] = {
            "function": world.function(region, "orders-api", tags),
            "table": world.table(region, "orders", tags),
            "stage": world.stage(region, "orders-api", tags),
            "check": world.health_check("orders", region, f"api.{region}.orders.example.com"),
        }
        world.parameter(region, "/orders/failure-injection", {"is_enabled": False}, tags)
        world.alarm(region, f"orders-{region}-5xx", tags)
        world.latency_record(
            zone_id,
            "api.orders.example.com",
            region,
            made[region]["check"],
            f"abc.execute-api.{region}.amazonaws.com",
        )
    made["fis"] = world.fis_template("us-east-1", tags)
    # Untagged, and tagged for something else: both must be ignored.
    world.function("us-east-1", "scratch", {})
    world.function("us-east-1", "billing-api", {"team": "billing"})
    return made


@pytest.fixture
def regions(db):
    return [Region.objects.create(code=code) for code in ("us-east-1", "us-west-2")]


def _kinds(app, region):
    return set(
        Component.objects.filter(
            stack__application__name=app, stack__region__code=region
        ).values_list("kind", flat=True)
    )


def test_discovery_builds_the_inventory_from_tagged_resources(orders, regions):
    report = discovery.run_discovery(actor="otto-operator")

    app = Application.objects.get(name="orders")
    assert app.architecture == "A"
    assert app.global_endpoint_url == "https://api.orders.example.com/"
    assert app.global_endpoint == "api.orders.example.com"
    for region in ("us-east-1", "us-west-2"):
        assert _kinds("orders", region) == {
            "lambda_function",
            "dynamodb_replica",
            "api_gateway_stage",
            "ssm_fault_parameter",
            "cloudwatch_alarm",
            "route53_health_check",
            "route53_record",
        } | ({"fis_experiment_template"} if region == "us-east-1" else set())
    stack = Stack.objects.get(application=app, region__code="us-east-1")
    assert stack.health_url == "https://api.us-east-1.orders.example.com/health"
    assert stack.discovered_at is not None
    assert report.summary.as_dict()["stack"]["created"] == 2
    assert not report.summary.as_dict()["region"]["created"]


def test_discovery_records_each_components_last_seen_config(orders, regions):
    discovery.run_discovery()

    stack = Stack.objects.get(application__name="orders", region__code="us-west-2")
    function = stack.components.get(kind="lambda_function")
    assert function.identifier == orders["us-west-2"]["function"]
    assert function.name == "orders-api"
    assert function.config["MemorySize"] == 512
    assert function.config["ReservedConcurrentExecutions"] is None
    assert function.discovered_at is not None
    parameter = stack.components.get(kind="ssm_fault_parameter")
    assert parameter.identifier == "/orders/failure-injection"
    assert parameter.config["Value"] == {"is_enabled": False}
    record = stack.components.get(kind="route53_record")
    zone = orders["zone"]
    assert record.identifier == f"{zone}/api.orders.example.com./CNAME/us-west-2"
    assert record.config["HealthCheckId"] == orders["us-west-2"]["check"]
    check = stack.components.get(kind="route53_health_check")
    assert check.identifier == orders["us-west-2"]["check"]
    assert check.name == "orders-us-west-2-health"
    assert stack.components.get(kind="api_gateway_stage").identifier == orders["us-west-2"]["stage"]
    assert stack.components.get(kind="dynamodb_replica").identifier == orders["us-west-2"]["table"]
    fis = Component.objects.get(kind="fis_experiment_template")
    assert fis.identifier == orders["fis"]


def test_untagged_and_otherwise_tagged_resources_are_ignored(orders, regions):
    report = discovery.run_discovery()

    identifiers = {f.identifier for f in report.found}
    assert not any("scratch" in i or "billing" in i for i in identifiers)
    assert not Component.objects.filter(identifier__contains="scratch").exists()
    assert not Component.objects.filter(identifier__contains="billing").exists()
    assert set(Application.objects.values_list("name", flat=True)) == {"orders"}


def test_a_second_discovery_changes_nothing_and_writes_no_audit_rows(orders, regions):
    discovery.run_discovery()
    audit_rows = AuditEvent.objects.count()
    components = list(Component.objects.order_by("pk").values("pk", "config", "name"))

    report = discovery.run_discovery()

    assert report.changes == []
    assert report.summary.changed == 0
    assert report.summary.as_dict()["component"]["unchanged"] == len(components)
    assert AuditEvent.objects.count() == audit_rows
    assert list(Component.objects.order_by("pk").values("pk", "config", "name")) == components


def test_a_changed_resource_is_updated_and_audited(orders, world, regions):
    discovery.run_discovery()
    world.client("lambda", "us-east-1").put_function_concurrency(
        FunctionName="orders-api", ReservedConcurrentExecutions=0
    )

    report = discovery.run_discovery(actor="otto-operator")

    assert report.summary.as_dict()["component"]["updated"] == 1
    function = Component.objects.get(identifier=orders["us-east-1"]["function"])
    assert function.config["ReservedConcurrentExecutions"] == 0
    event = AuditEvent.objects.get(action="inventory.update")
    assert event.actor == "otto-operator"
    assert event.source == "system"
    assert event.before["config"]["ReservedConcurrentExecutions"] is None
    assert event.after["config"]["ReservedConcurrentExecutions"] == 0


def test_discovery_creates_audit_events_for_what_it_creates(orders, regions):
    discovery.run_discovery(actor="otto-operator")

    created = AuditEvent.objects.filter(action="inventory.create", actor="otto-operator")
    assert created.filter(object_type="regions.application").count() == 1
    assert created.filter(object_type="regions.stack").count() == 2
    assert created.filter(object_type="regions.component").count() == Component.objects.count()


def test_services_that_are_not_available_become_warnings(orders, regions):
    report = discovery.run_discovery()

    joined = "\n".join(report.warnings)
    assert "globalaccelerator" in joined
    assert "route53-recovery-control-config" in joined
    assert Application.objects.filter(name="orders").exists()


def test_an_unreachable_endpoint_is_a_warning_not_a_crash(regions, settings, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:9"
    settings.AWS_MAX_ATTEMPTS = 1
    settings.AWS_CONNECT_TIMEOUT = 0.5

    report = discovery.run_discovery()

    assert report.found == []
    assert any("tagging in us-east-1" in w for w in report.warnings)
    assert not Application.objects.exists()


def test_the_application_filter_limits_discovery(orders, world, regions):
    world.function("us-east-1", "search-api", {APP_TAG: "search"})
    world.stage("us-east-1", "search-api", {APP_TAG: "search"})

    discovery.run_discovery(applications=["search"])

    assert set(Application.objects.values_list("name", "architecture")) == {("search", "A")}


def test_a_region_passed_explicitly_is_created_when_something_is_found_there(world, moto, db):
    world.function("eu-central-1", "payments-api", {APP_TAG: "payments"})
    arn = world.load_balancer(
        "eu-central-1",
        "payments-alb",
        {APP_TAG: "payments", "controlplane:health-url": "https://api.eu-central-1.payments.example.com/health"},
    )

    report = discovery.run_discovery(regions=["eu-central-1"])

    assert report.regions == ["eu-central-1"]
    assert Region.objects.filter(code="eu-central-1").exists()
    app = Application.objects.get(name="payments")
    assert app.architecture == "B"  # implied by the ALB listener
    stack = Stack.objects.get(application=app)
    assert stack.health_url == "https://api.eu-central-1.payments.example.com/health"
    listener = stack.components.get(kind="alb_listener")
    assert listener.identifier == arn
    assert listener.config["Port"] == 80
    assert listener.name == "payments-alb:80"


def test_an_application_without_a_known_architecture_is_not_created(world, moto, regions):
    world.function("us-east-1", "mystery", {APP_TAG: "mystery"})

    report = discovery.run_discovery()

    assert not Application.objects.exists()
    assert any("mystery: architecture unknown" in w for w in report.warnings)


def test_discovery_with_no_regions_says_what_to_do(moto, db):
    report = discovery.run_discovery()

    assert report.found == []
    assert "no regions to scan" in report.warnings[0]


def test_a_region_code_that_aws_does_not_have_is_skipped_with_a_warning(db):
    report = discovery.run_discovery(regions=["zz-mars-1"])

    assert report.regions == []
    assert any(
        w.startswith("'zz-mars-1': zz-mars-1 is not an AWS region known to botocore") for w in report.warnings
    )
    assert not Region.objects.exists()


def test_health_url_is_derived_from_the_route53_health_check_config():
    derive = route53.health_url_from_check
    assert (
        derive({"Type": "HTTPS", "FullyQualifiedDomainName": "a.example.com", "Port": 443,
                "ResourcePath": "/health"})
        == "https://a.example.com/health"
    )
    assert (
        derive({"Type": "HTTP_STR_MATCH", "IPAddress": "192.0.2.10", "Port": 8080,
                "ResourcePath": "health"})
        == "http://192.0.2.10:8080/health"
    )
    assert derive({"Type": "TCP", "IPAddress": "192.0.2.10", "Port": 443}) == ""


def test_discover_command_prints_what_it_found_and_changed(orders, regions, capsys):
    call_command("discover", "--region", "us-east-1", "--application", "orders")

    out = capsys.readouterr().out
    assert "Scanned regions: us-east-1" in out
    assert "orders/us-east-1  lambda_function" in out
    assert "created application orders" in out
    assert "Warnings" in out
    assert AuditEvent.objects.filter(action="inventory.create", source="command").exists()


def test_the_discover_task_runs_discovery(orders, regions):
    tasks.discover_inventory.run(actor="otto-operator")

    assert Application.objects.filter(name="orders").exists()
    assert AuditEvent.objects.filter(actor="otto-operator", source="system").exists()
