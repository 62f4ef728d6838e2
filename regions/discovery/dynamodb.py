"""DynamoDB: a regional replica of a global table (docs/DISCOVERY.md)."""

from regions.discovery.reader import pick
from regions.models import ComponentKind


def read_table(reader, region, app, arn, name):
    result = reader.read("dynamodb", region, "describe_table", arn, TableName=name)
    if result is None:
        return
    table = result["Table"]
    config = pick(table, "TableName", "TableStatus", "KeySchema", "GlobalTableVersion")
    config["BillingMode"] = table.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
    config["Replicas"] = [pick(r, "RegionName", "ReplicaStatus") for r in table.get("Replicas", [])]
    if "StreamSpecification" in table:
        config["StreamSpecification"] = table["StreamSpecification"]
    reader.add(app, region.code, ComponentKind.DYNAMODB_REPLICA, table.get("TableArn", arn), name, config)
