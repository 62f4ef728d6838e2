"""The sandbox starts fast, describes itself, and is found through its tags."""

import os

import pytest

from tests.sandbox_support import http

pytestmark = pytest.mark.sandbox

MAX_STARTUP = float(os.environ.get("SANDBOX_MAX_STARTUP_SECONDS", "5"))


def test_starts_within_the_startup_budget(sandbox):
    # From start() to seeded and serving, as the sandbox measured it (a child process
    # also spends a second or two starting Python and Django before that).
    assert sandbox.state["startup_seconds"] < MAX_STARTUP


def test_state_names_every_endpoint(sandbox):
    state = sandbox.state
    assert state["aws_endpoint"] == sandbox.aws_endpoint
    assert set(state["applications"]) == {"orders", "payments"}
    assert set(state["applications"]["orders"]["regions"]) == {"us-east-1", "us-west-2"}
    assert set(state["applications"]["payments"]["regions"]) == {"eu-central-1", "us-west-2"}
    assert state["applications"]["orders"]["architecture"] == "A"
    assert state["applications"]["payments"]["architecture"] == "B"


def test_every_response_names_the_serving_region(sandbox):
    for app in sandbox.state["applications"].values():
        for region, url in app["regions"].items():
            status, headers, body = http("GET", f"{url}/health")
            assert status == 200
            assert body == {"region": region, "status": "healthy", "table_read_ok": True}
            assert headers["X-Served-By-Region"] == region
        status, headers, body = http("GET", f"{app['global_endpoint']}health")
        assert status == 200
        assert headers["X-Served-By-Region"] == body["region"]


def test_items_are_written_to_and_read_from_the_regional_table(sandbox, sandbox_aws):
    url = sandbox.state["applications"]["orders"]["regions"]["us-west-2"]
    status, _headers, body = http("POST", f"{url}/items", {"id": "order-1", "total": 42})
    assert (status, body["region"]) == (201, "us-west-2")
    status, _, body = http("GET", f"{url}/items/order-1")
    assert status == 200
    assert body["item"] == {"id": "order-1", "total": 42}
    item = sandbox_aws("dynamodb", "us-west-2").get_item(TableName="orders", Key={"id": {"S": "order-1"}})[
        "Item"
    ]
    assert item["total"] == {"N": "42"}


def test_regional_resources_are_tagged_for_discovery(sandbox, sandbox_aws):
    tagging = sandbox_aws("resourcegroupstaggingapi", "us-east-1")
    arns = [
        r["ResourceARN"]
        for r in tagging.get_resources(
            TagFilters=[{"Key": "controlplane:application", "Values": ["orders"]}]
        )["ResourceTagMappingList"]
    ]
    assert any(":function:orders-api" in a for a in arns)
    assert any(":table/orders" in a for a in arns)
    r53 = sandbox_aws("route53", "us-east-1")
    zone_id = sandbox.state["applications"]["orders"]["hosted_zone_id"]
    tags = {
        t["Key"]: t["Value"]
        for t in r53.list_tags_for_resource(ResourceType="hostedzone", ResourceId=zone_id)["ResourceTagSet"][
            "Tags"
        ]
    }
    assert tags["controlplane:architecture"] == "A"
    assert (
        tags["controlplane:global-endpoint-url"]
        == (sandbox.state["applications"]["orders"]["global_endpoint"])
    )
    hc_id = sandbox.stack("orders", "us-west-2").health_check_id
    hc_tags = r53.list_tags_for_resources(ResourceType="healthcheck", ResourceIds=[hc_id])
    region_tag = {t["Key"]: t["Value"] for t in hc_tags["ResourceTagSets"][0]["Tags"]}["controlplane:region"]
    assert region_tag == "us-west-2"
    config = r53.get_health_check(HealthCheckId=hc_id)["HealthCheck"]["HealthCheckConfig"]
    assert (config["Type"], config["IPAddress"], config["ResourcePath"]) == ("HTTP", "127.0.0.1", "/health")
    assert config["Port"] == sandbox.stack("orders", "us-west-2").port
    stage = sandbox_aws("apigateway", "us-east-1").get_stage(
        restApiId=sandbox.stack("orders", "us-east-1").rest_api_id, stageName="prod"
    )
    assert stage["tags"]["controlplane:health-url"] == sandbox.stack("orders", "us-east-1").health_url
