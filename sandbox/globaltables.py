"""DynamoDB's global-table reads, answered from the sandbox's own replicas.

moto has no global tables, so it cannot answer ListGlobalTables, DescribeGlobalTable
or DescribeTableReplicaAutoScaling; the sandbox knows each application's replica
regions (the topology) and whether replication to each is paused (the replicator).
In AWS the first two cover version 2017.11.29 global tables and the third version
2019.11.21 ones; the sandbox answers all three for its global tables, so tools that
list global tables with either API find them.
"""

from datetime import UTC

from moto.dynamodb.exceptions import ResourceNotFoundException

from sandbox import motostate
from sandbox.awserrors import AwsError

MAX_LIMIT = 100  # ListGlobalTables' largest page, as in AWS


def list_global_tables(world, region, params):
    wanted = params.get("RegionName") or region
    limit = params.get("Limit", MAX_LIMIT)
    if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise AwsError("ValidationException", f"Limit must be between 1 and {MAX_LIMIT}")
    start = params.get("ExclusiveStartGlobalTableName") or ""
    groups = {app.table: app.regions for app in world.topology.applications.values() if wanted in app.regions}
    names = sorted(name for name in groups if name > start)
    page = names[:limit]
    payload = {
        "GlobalTables": [
            {"GlobalTableName": name, "ReplicationGroup": [{"RegionName": r} for r in groups[name]]}
            for name in page
        ]
    }
    if len(names) > limit:
        payload["LastEvaluatedGlobalTableName"] = page[-1]
    return payload


def describe_global_table(world, region, params):
    name = params.get("GlobalTableName", "")
    app = world.global_table(name, region)
    if app is None:
        raise AwsError(
            "GlobalTableNotFoundException", f"Global table not found: {name} has no replica in {region}"
        )
    return {
        "GlobalTableDescription": {
            "ReplicationGroup": [
                {"RegionName": r, "ReplicaStatus": world.replica_status(app, r)} for r in app.regions
            ],
            "GlobalTableArn": f"arn:aws:dynamodb::{world.topology.account_id}:global-table/{name}",
            "CreationDateTime": _created(world, region, name),
            "GlobalTableStatus": "ACTIVE",
            "GlobalTableName": name,
        }
    }


def describe_table_replica_auto_scaling(world, region, params):
    """The sandbox's tables are on demand (PAY_PER_REQUEST): no replica has auto scaling
    settings to report, so each replica comes with its status only."""
    name = params.get("TableName", "")
    _created(world, region, name)  # the table must exist in this region
    app = world.global_table(name, region)
    replicas = [] if app is None else app.regions
    return {
        "TableAutoScalingDescription": {
            "TableName": name,
            "TableStatus": "ACTIVE",
            "Replicas": [
                {"RegionName": r, "GlobalSecondaryIndexes": [], "ReplicaStatus": world.replica_status(app, r)}
                for r in replicas
            ],
        }
    }


OPERATIONS = {
    "ListGlobalTables": list_global_tables,
    "DescribeGlobalTable": describe_global_table,
    "DescribeTableReplicaAutoScaling": describe_table_replica_auto_scaling,
}


def _created(world, region, name):
    """The regional table's creation time (epoch seconds, as DynamoDB's JSON sends it)."""
    try:
        with motostate.DATA_LOCK:
            table = motostate.backend("dynamodb", world.topology.account_id, region).get_table(name)
    except ResourceNotFoundException:
        raise AwsError(
            "ResourceNotFoundException", f"Requested resource not found: Table: {name} not found"
        ) from None
    return table.created_at.replace(tzinfo=UTC).timestamp()
