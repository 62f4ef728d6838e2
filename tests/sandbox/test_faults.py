"""Each fault injected through the AWS APIs is honoured by the regional app server."""

import json
import time

import pytest

from tests.sandbox_support import http, wait_for

pytestmark = pytest.mark.sandbox


def _flag(sandbox_aws, app, region, **fault):
    value = {
        "is_enabled": True,
        "fault_type": "exception",
        "delay": 400,
        "error_code": 503,
        "rate": 1,
        **fault,
    }
    sandbox_aws("ssm", region).put_parameter(
        Name=f"/{app}/{region}/failure-injection", Value=json.dumps(value), Type="String", Overwrite=True
    )


def test_reserved_concurrency_zero_throttles_the_function(sandbox, sandbox_aws):
    url = sandbox.state["applications"]["orders"]["regions"]["us-east-1"]
    sandbox_aws("lambda", "us-east-1").put_function_concurrency(
        FunctionName="orders-api", ReservedConcurrentExecutions=0
    )
    _status, headers, body = wait_for(
        lambda: (r := http("GET", f"{url}/items"))[0] == 429 and r, 2, "429 from orders-api"
    )
    assert headers["X-Served-By-Region"] == body["region"] == "us-east-1"
    assert http("GET", f"{url}/health")[0] == 200  # orders-health is not throttled


def test_failure_flag_with_rate_one_half_fails_about_half_the_requests(sandbox, sandbox_aws):
    url = sandbox.state["applications"]["orders"]["regions"]["us-west-2"]
    _flag(sandbox_aws, "orders", "us-west-2", fault_type="exception", rate=0.5)
    wait_for(lambda: http("GET", f"{url}/items")[0] == 500, 2, "the flag to apply")
    statuses = [http("GET", f"{url}/items")[0] for _ in range(200)]
    failed = statuses.count(500)
    assert set(statuses) <= {200, 500}
    assert 60 <= failed <= 140, failed


def test_failure_flag_status_code_and_latency(sandbox, sandbox_aws):
    url = sandbox.state["applications"]["payments"]["regions"]["eu-central-1"]
    _flag(sandbox_aws, "payments", "eu-central-1", fault_type="status_code", error_code=503)
    _status, headers, _ = wait_for(
        lambda: (r := http("GET", f"{url}/items"))[0] == 503 and r, 2, "injected 503"
    )
    assert headers["X-Served-By-Region"] == "eu-central-1"
    _flag(sandbox_aws, "payments", "eu-central-1", fault_type="latency", delay=400)

    def slow():
        started = time.monotonic()
        status = http("GET", f"{url}/items")[0]
        return status == 200 and time.monotonic() - started >= 0.4

    wait_for(slow, 3, "a request delayed by 400 ms")


def test_stage_throttle_rate_zero_returns_429(sandbox, sandbox_aws):
    stack = sandbox.stack("orders", "us-east-1")
    sandbox_aws("apigateway", "us-east-1").update_stage(
        restApiId=stack.rest_api_id,
        stageName="prod",
        patchOperations=[{"op": "replace", "path": "/*/*/throttling/rateLimit", "value": "0"}],
    )
    _status, _, body = wait_for(
        lambda: (r := http("GET", f"{stack.base_url}/health"))[0] == 429 and r, 2, "429"
    )
    assert body["message"] == "Too Many Requests"


def test_alb_fixed_response_answers_for_the_stack(sandbox, sandbox_aws):
    stack = sandbox.stack("payments", "us-west-2")
    sandbox_aws("elbv2", "us-west-2").modify_listener(
        ListenerArn=stack.listener_arn,
        DefaultActions=[
            {
                "Type": "fixed-response",
                "FixedResponseConfig": {
                    "StatusCode": "503",
                    "ContentType": "text/plain",
                    "MessageBody": "maintenance",
                },
            }
        ],
    )
    _status, headers, body = wait_for(
        lambda: (r := http("GET", f"{stack.base_url}/items"))[0] == 503 and r, 2, "503"
    )
    assert body == "maintenance"
    assert headers["X-Served-By-Region"] == "us-west-2"
