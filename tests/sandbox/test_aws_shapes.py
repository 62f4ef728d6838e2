"""The sandbox answers as AWS does for the calls peers make.

The AWS CLI runs as a subprocess against a running sandbox (dummy credentials, a short
read timeout, --debug to count its HTTP attempts): a supported call exits 0 with AWS's
shape on the first attempt; an unsupported one fails on the first attempt with AWS's
error code and a message that says so, where moto alone answered an HTML 500 that the
CLI retried nine times. Then the boto3 calls chaostoolkit-aws's actions and probes
make (Lambda concurrency, SSM parameter, Route 53 health check) and the GA endpoint
group calls, each response checked against botocore's output shape.
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.sandbox.shapes import output_errors, recording_client
from tests.sandbox_support import wait_for

pytestmark = pytest.mark.sandbox

AWS_CLI = Path(sys.executable).with_name("aws")
# A CLI call is a fresh Python process: a few seconds on a busy machine. Nine retries
# with backoff took 26 s.
PROMPT_SECONDS = 15


def aws_cli(sandbox, *args, region="us-east-1"):
    """Run `aws <args>` on the sandbox -> (exit code, parsed stdout or None, stderr, attempts)."""
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "dummy",
        "AWS_SECRET_ACCESS_KEY": "dummy",
        "AWS_DEFAULT_REGION": region,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    command = [str(AWS_CLI), "--endpoint-url", sandbox.aws_endpoint, "--cli-read-timeout", "5"]
    command += ["--cli-connect-timeout", "5", "--output", "json", "--debug", *args]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    elapsed = time.monotonic() - started
    assert elapsed < PROMPT_SECONDS, f"aws {' '.join(args)} took {elapsed:.1f}s"
    attempts = done.stderr.count("Sending http request:")  # botocore logs every attempt
    output = json.loads(done.stdout) if done.returncode == 0 and done.stdout.strip() else None
    return done.returncode, output, done.stderr, attempts


def stacks(sandbox, app):
    return sandbox.state["applications"][app]["stacks"]


def test_dynamodb_global_table_reads_answer_from_the_replicas(sandbox):
    regions = sorted(stacks(sandbox, "orders"))
    code, listed, err, attempts = aws_cli(sandbox, "dynamodb", "list-global-tables")
    assert (code, attempts) == (0, 1), err[-2000:]
    groups = {
        t["GlobalTableName"]: sorted(r["RegionName"] for r in t["ReplicationGroup"])
        for t in listed["GlobalTables"]
    }
    assert groups == {"orders": regions}  # payments has no replica in us-east-1

    code, described, err, attempts = aws_cli(
        sandbox, "dynamodb", "describe-global-table", "--global-table-name", "orders"
    )
    assert (code, attempts) == (0, 1), err[-2000:]
    table = described["GlobalTableDescription"]
    assert table["GlobalTableStatus"] == "ACTIVE" and table["GlobalTableArn"].endswith(":global-table/orders")
    assert {r["RegionName"]: r["ReplicaStatus"] for r in table["ReplicationGroup"]} == dict.fromkeys(
        regions, "ACTIVE"
    )

    code, scaling, err, attempts = aws_cli(
        sandbox,
        "dynamodb",
        "describe-table-replica-auto-scaling",
        "--table-name",
        "payments",
        region="eu-central-1",
    )
    assert (code, attempts) == (0, 1), err[-2000:]
    assert sorted(r["RegionName"] for r in scaling["TableAutoScalingDescription"]["Replicas"]) == sorted(
        stacks(sandbox, "payments")
    )

    code, _, err, attempts = aws_cli(
        sandbox, "dynamodb", "describe-global-table", "--global-table-name", "nope"
    )
    assert (code, attempts) != (0, 1) and attempts == 1
    assert "GlobalTableNotFoundException" in err


def test_global_table_reads_show_a_paused_replica(sandbox, sandbox_aws):
    west = stacks(sandbox, "orders")["us-west-2"]["table_arn"]
    sandbox_aws("dynamodb", "us-west-2").tag_resource(
        ResourceArn=west, Tags=[{"Key": "sandbox:replication-paused", "Value": "true"}]
    )
    ddb = recording_client(sandbox, "dynamodb", "us-east-1")
    described = ddb.describe_global_table(GlobalTableName="orders")
    assert output_errors(ddb, described) == []
    statuses = {
        r["RegionName"]: r["ReplicaStatus"] for r in described["GlobalTableDescription"]["ReplicationGroup"]
    }
    assert statuses == {"us-east-1": "ACTIVE", "us-west-2": "REPLICATION_NOT_AUTHORIZED"}
    for call, params in (
        (ddb.list_global_tables, {}),
        (ddb.describe_table_replica_auto_scaling, {"TableName": "orders"}),
        (ddb.describe_table, {"TableName": "orders"}),
    ):
        assert output_errors(ddb, call(**params)) == []


@pytest.mark.parametrize(
    ("args", "region", "code", "says"),
    [
        (
            ["dynamodb", "describe-contributor-insights", "--table-name", "orders"],
            "us-east-1",
            "UnknownOperationException",
            "DynamoDB DescribeContributorInsights is not supported by the sandbox",
        ),
        (
            ["route53", "list-traffic-policies"],
            "us-east-1",
            "UnknownOperationException",
            "Route 53 ListTrafficPolicies is not supported by the sandbox",
        ),
        (
            ["elbv2", "describe-trust-stores"],
            "us-west-2",
            "InvalidAction",
            "DescribeTrustStores is not supported by the sandbox",
        ),
        (
            ["globalaccelerator", "list-custom-routing-accelerators"],
            "us-west-2",
            "UnknownOperationException",
            "ListCustomRoutingAccelerators is not supported by the sandbox",
        ),
        (
            ["globalaccelerator", "list-accelerators"],
            "us-east-1",
            "InvalidSignatureException",
            "served from us-west-2 only",
        ),
    ],
)
def test_what_the_sandbox_does_not_serve_fails_at_once_with_aws_error(sandbox, args, region, code, says):
    exit_code, _, err, attempts = aws_cli(sandbox, *args, region=region)
    assert exit_code != 0
    assert attempts == 1, "the CLI retried"
    assert f"An error occurred ({code})" in err and says in err


@pytest.mark.parametrize(
    ("args", "region", "key"),
    [
        (["dynamodb", "describe-table", "--table-name", "orders"], "us-east-1", "Table"),
        (["route53", "list-health-checks"], "us-east-1", "HealthChecks"),
        (["globalaccelerator", "list-accelerators"], "us-west-2", "Accelerators"),
        (["route53-recovery-cluster", "list-routing-controls"], "us-west-2", "RoutingControls"),
        (["route53-recovery-control-config", "list-clusters"], "us-west-2", "Clusters"),
        (["lambda", "get-function", "--function-name", "orders-api"], "us-east-1", "Configuration"),
        (["ssm", "get-parameter", "--name", "/orders/us-east-1/failure-injection"], "us-east-1", "Parameter"),
    ],
)
def test_common_reads_answer_at_once(sandbox, args, region, key):
    code, output, err, attempts = aws_cli(sandbox, *args, region=region)
    assert (code, attempts) == (0, 1), err[-2000:]
    assert output[key]


def test_route53_reads_by_id_and_the_soa_record(sandbox):
    orders = stacks(sandbox, "orders")
    check = orders["us-east-1"]["health_check_id"]
    code, status, err, attempts = aws_cli(
        sandbox, "route53", "get-health-check-status", "--health-check-id", check
    )
    assert (code, attempts) == (0, 1), err[-2000:]
    assert status["HealthCheckObservations"][0]["StatusReport"]["Status"].startswith("Success")

    code, count, err, attempts = aws_cli(sandbox, "route53", "get-health-check-count")
    assert (code, attempts) == (0, 1), err[-2000:]
    seeded = [
        s["health_check_id"] for app in sandbox.state["applications"] for s in stacks(sandbox, app).values()
    ]
    assert count == {"HealthCheckCount": len([c for c in seeded if c])}

    code, _, err, attempts = aws_cli(
        sandbox, "route53", "get-health-check-last-failure-reason", "--health-check-id", "nope"
    )
    assert (code, attempts) != (0, 1) and attempts == 1 and "NoSuchHealthCheck" in err

    zone = sandbox.state["applications"]["orders"]["hosted_zone_id"]
    code, records, err, attempts = aws_cli(
        sandbox, "route53", "list-resource-record-sets", "--hosted-zone-id", zone
    )
    assert (code, attempts) == (0, 1), err[-2000:]
    (soa,) = [r for r in records["ResourceRecordSets"] if r["Type"] == "SOA"]
    assert re.fullmatch(r"\S+\. \S+\. \d+ \d+ \d+ \d+ \d+", soa["ResourceRecords"][0]["Value"])


def test_a_zone_created_through_the_api_has_a_text_soa_record(sandbox):
    r53 = recording_client(sandbox, "route53", "us-east-1")
    zone = r53.create_hosted_zone(Name="shapes.example.com", CallerReference=f"shapes-{time.time_ns()}")
    zone_id = zone["HostedZone"]["Id"]
    try:
        records = r53.list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
        (soa,) = [r for r in records if r["Type"] == "SOA"]
        assert not soa["ResourceRecords"][0]["Value"].startswith("{")
    finally:
        r53.delete_hosted_zone(Id=zone_id)


# --- the calls chaostoolkit-aws makes (chaosaws.awslambda, .route53; SSM and GA as the fault library) ---


def test_lambda_concurrency_as_chaosaws_sets_and_reads_it(sandbox):
    lam = recording_client(sandbox, "lambda", "us-east-1")
    lam.put_function_concurrency(FunctionName="orders-api", ReservedConcurrentExecutions=0)
    function = lam.get_function(FunctionName="orders-api")
    assert output_errors(lam, function) == []
    # chaosaws.awslambda.probes.get_function_concurrency reads exactly this
    assert function["Concurrency"]["ReservedConcurrentExecutions"] == 0
    assert lam.get_function_concurrency(FunctionName="orders-api")["ReservedConcurrentExecutions"] == 0
    lam.delete_function_concurrency(FunctionName="orders-api")
    assert "Concurrency" not in lam.get_function(FunctionName="orders-api")


def test_ssm_failure_flag_round_trip(sandbox):
    name = stacks(sandbox, "orders")["us-east-1"]["ssm_fault_parameter"]
    ssm = recording_client(sandbox, "ssm", "us-east-1")
    flag = json.dumps({"is_enabled": True, "fault_type": "status_code", "error_code": 503, "rate": 1})
    ssm.put_parameter(Name=name, Value=flag, Type="String", Overwrite=True)
    parameter = ssm.get_parameter(Name=name)
    assert output_errors(ssm, parameter) == []
    assert json.loads(parameter["Parameter"]["Value"])["is_enabled"] is True


def test_inverted_health_check_is_reported_with_its_last_failure(sandbox):
    check = stacks(sandbox, "orders")["us-east-1"]["health_check_id"]
    r53 = recording_client(sandbox, "route53", "us-east-1")
    r53.update_health_check(HealthCheckId=check, Inverted=True)

    def failing():
        report = r53.get_health_check_status(HealthCheckId=check)
        observations = report["HealthCheckObservations"]
        return observations and observations[0]["StatusReport"]["Status"].startswith("Failure") and report

    status = wait_for(failing, 30, "the checkers to see the inverted check fail")
    assert output_errors(r53, status) == []
    reason = r53.get_health_check_last_failure_reason(HealthCheckId=check)
    assert output_errors(r53, reason) == []
    statuses = {o["StatusReport"]["Status"] for o in reason["HealthCheckObservations"]}
    assert len(reason["HealthCheckObservations"]) == 3
    assert all(s.startswith("Failure: Inverted health check") for s in statuses)
    assert output_errors(r53, r53.get_health_check_count()) == []


def test_ga_endpoint_group_in_us_west_2_only(sandbox):
    arn = stacks(sandbox, "payments")["eu-central-1"]["endpoint_group_arn"]
    ga = recording_client(sandbox, "globalaccelerator", "us-west-2")
    updated = ga.update_endpoint_group(EndpointGroupArn=arn, TrafficDialPercentage=0)
    assert output_errors(ga, updated) == []
    described = ga.describe_endpoint_group(EndpointGroupArn=arn)
    assert output_errors(ga, described) == []
    assert described["EndpointGroup"]["TrafficDialPercentage"] == 0

    elsewhere = recording_client(sandbox, "globalaccelerator", "us-east-1")
    with pytest.raises(elsewhere.exceptions.ClientError) as raised:
        elsewhere.describe_endpoint_group(EndpointGroupArn=arn)
    error = raised.value.response
    assert error["Error"]["Code"] == "InvalidSignatureException"
    assert error["ResponseMetadata"]["RetryAttempts"] == 0
