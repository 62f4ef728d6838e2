"""Regional tables replicate like a global table, can be paused, and report lag."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.sandbox_support import http, wait_for

pytestmark = pytest.mark.sandbox
PAUSE = "sandbox:replication-paused"


def _has(ddb, item_id):
    return "Item" in ddb.get_item(TableName="orders", Key={"id": {"S": item_id}})


def test_writes_through_items_and_through_the_api_replicate(sandbox, sandbox_aws):
    east, west = sandbox_aws("dynamodb", "us-east-1"), sandbox_aws("dynamodb", "us-west-2")
    url = sandbox.state["applications"]["orders"]["regions"]["us-east-1"]
    first, second = f"item-{uuid.uuid4().hex}", f"canary-{uuid.uuid4().hex}"
    assert http("POST", f"{url}/items", {"id": first})[0] == 201
    wait_for(lambda: _has(west, first), 3, "the /items write to reach us-west-2")
    # A monitoring canary writes a marker straight into one replica.
    west.put_item(TableName="orders", Item={"id": {"S": second}})
    wait_for(lambda: _has(east, second), 3, "the PutItem to reach us-east-1")
    east.delete_item(TableName="orders", Key={"id": {"S": first}})
    wait_for(lambda: not _has(west, first), 3, "the delete to replicate")


def test_paused_replication_lags_reports_and_converges_on_resume(sandbox, sandbox_aws):
    east, west = sandbox_aws("dynamodb", "us-east-1"), sandbox_aws("dynamodb", "us-west-2")
    west_arn = sandbox.stack("orders", "us-west-2").table_arn
    west.tag_resource(ResourceArn=west_arn, Tags=[{"Key": PAUSE, "Value": "true"}])
    replicas = east.describe_table(TableName="orders")["Table"]["Replicas"]
    assert replicas == [
        {
            "RegionName": "us-west-2",
            "ReplicaStatus": "REPLICATION_NOT_AUTHORIZED",
            "ReplicaTableClassSummary": {"TableClass": "STANDARD"},
        }
    ]
    started = datetime.now(UTC) - timedelta(minutes=1)
    marker = f"marker-{uuid.uuid4().hex}"
    east.put_item(TableName="orders", Item={"id": {"S": marker}})
    cloudwatch = sandbox_aws("cloudwatch", "us-east-1")

    def lag_ms():
        stats = cloudwatch.get_metric_statistics(
            Namespace="AWS/DynamoDB",
            MetricName="ReplicationLatency",
            Dimensions=[
                {"Name": "TableName", "Value": "orders"},
                {"Name": "ReceivingRegion", "Value": "us-west-2"},
            ],
            StartTime=started,
            EndTime=datetime.now(UTC) + timedelta(minutes=1),
            Period=60,
            Statistics=["Maximum"],
            Unit="Milliseconds",
        )
        return max((p["Maximum"] for p in stats["Datapoints"]), default=0)

    wait_for(lambda: lag_ms() > 1500, 8, "ReplicationLatency above 1.5 s")
    assert not _has(west, marker)

    west.untag_resource(ResourceArn=west_arn, TagKeys=[PAUSE])
    wait_for(lambda: _has(west, marker), 3, "the backlog to drain")
    assert east.describe_table(TableName="orders")["Table"]["Replicas"][0]["ReplicaStatus"] == "ACTIVE"
