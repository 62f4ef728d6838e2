"""Replication lag between the replicas of each application's DynamoDB global table.

Two samplers, both reading the tables from the inventory's `dynamodb_replica`
components, both storing `LagSample` rows through `monitoring.store_lag_samples`:

- **CloudWatch** (`sample_metrics`): `ReplicationLatency` (namespace AWS/DynamoDB,
  dimensions TableName and ReceivingRegion, published in the *source* region) through
  one batched `GetMetricData` call per source region (and credentials) for all its
  tables and receiving regions (Average and Maximum over the last
  CONTROLPLANE_LAG_METRIC_MINUTES minutes, CONTROLPLANE_LAG_METRIC_PERIOD seconds per
  point; at most 500 queries per call). The newest period's Maximum becomes
  `LagSample(method=metric)` stamped with its datapoint's time; a pair without
  datapoints (no writes) is not sampled.
- **Canary** (`run_canary`): write a marker item to each replica (PutItem; hash key
  `controlplane-canary#<uuid>`, a TTL attribute CONTROLPLANE_CANARY_TTL_ATTRIBUTE set
  CONTROLPLANE_CANARY_TTL_SECONDS ahead) and poll every other replica (GetItem,
  ConsistentRead, every CONTROLPLANE_CANARY_POLL_INTERVAL, one thread per pair) until it
  appears -> `LagSample(method=canary, replicated=True, lag_ms=...)`, or give up after
  CONTROLPLANE_CANARY_TIMEOUT -> `replicated=False` (a replication outage), its lag_ms
  the age of the pair's oldest canary still not replicated (`outage_starts`). The lag is
  measured between the midpoints of the PutItem call and of the first GetItem that saw
  the item (resolution: the poll interval plus one GetItem). The markers are deleted
  afterwards (best effort; the TTL removes the rest).
"""

import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from controlplane import aws
from regions import monitoring
from regions.models import Component, ComponentKind, LagMethod, LagSample
from regions.status import Lag

log = logging.getLogger(__name__)

CANARY_PREFIX = "controlplane-canary#"
MAX_QUERIES_PER_CALL = 500


def _replicas(application_ids=None):
    """{application id: [Component (dynamodb_replica, with stack__region)]}. One query."""
    rows = Component.objects.filter(kind=ComponentKind.DYNAMODB_REPLICA).select_related("stack__region")
    if application_ids is not None:
        rows = rows.filter(stack__application_id__in=application_ids)
    out = {}
    for c in rows.order_by("stack__region__code"):
        out.setdefault(c.stack.application_id, []).append(c)
    return out


def _table_name(component):
    return component.config.get("TableName") or component.name or component.identifier.rsplit("/", 1)[-1]


# --- CloudWatch ReplicationLatency -----------------------------------------------------


def sample_metrics(now=None, *, application_ids=None):
    """One GetMetricData call per source region (per 500 queries); store a metric
    LagSample per (source, receiving) pair with datapoints. Returns the rows stored."""
    now = now or timezone.now()
    pairs = {}  # (region code, role, external id) -> [(app id, region row, table, receiving)]
    for app_id, replicas in _replicas(application_ids).items():
        for source in replicas:
            region = source.stack.region
            key = (region.code, region.role_arn, region.external_id)
            for receiving in replicas:
                if receiving.stack.region.code != region.code:
                    pairs.setdefault(key, []).append(
                        (app_id, region, _table_name(source), receiving.stack.region.code)
                    )
    start = now - timedelta(minutes=settings.CONTROLPLANE_LAG_METRIC_MINUTES)
    period = settings.CONTROLPLANE_LAG_METRIC_PERIOD
    lags = {}
    for items in pairs.values():
        cw = aws.client_for_region("cloudwatch", items[0][1])
        per_call = MAX_QUERIES_PER_CALL // 2
        for offset in range(0, len(items), per_call):
            batch = items[offset : offset + per_call]
            queries = []
            for i, (_, _, table, receiving) in enumerate(batch):
                metric = {
                    "Namespace": "AWS/DynamoDB",
                    "MetricName": "ReplicationLatency",
                    "Dimensions": [
                        {"Name": "TableName", "Value": table},
                        {"Name": "ReceivingRegion", "Value": receiving},
                    ],
                }
                for stat in ("Average", "Maximum"):
                    queries.append({
                        "Id": f"q{i}_{stat.lower()}",
                        "MetricStat": {
                            "Metric": metric, "Period": period, "Stat": stat, "Unit": "Milliseconds",
                        },
                        "ReturnData": True,
                    })
            try:
                results = _metric_data(cw, queries, start, now)
            except (aws.ClientError, aws.BotoCoreError) as exc:
                log.warning("lag metrics in %s: %s", items[0][1].code, exc)
                continue
            for i, (app_id, region, _, receiving) in enumerate(batch):
                newest = results.get(f"q{i}_maximum")
                if newest is None:
                    continue
                # Stamped with its period's start: a canary measured after that is newer.
                at, maximum = newest
                lags.setdefault(app_id, []).append(
                    Lag(region.code, receiving, min(at, now), float(maximum), LagMethod.METRIC, True)
                )
    stored = 0
    for app_id, app_lags in lags.items():
        stored += monitoring.store_lag_samples(app_lags, app_id)
    return stored


def _metric_data(cw, queries, start, end):
    """{query id: (timestamp, value) of its newest datapoint} over all pages of one
    GetMetricData request."""
    newest = {}
    kwargs = {
        "MetricDataQueries": queries, "StartTime": start, "EndTime": end,
        "ScanBy": "TimestampDescending",
    }
    while True:
        page = cw.get_metric_data(**kwargs)
        for result in page.get("MetricDataResults", []):
            points = sorted(
                zip(result.get("Timestamps", []), result.get("Values", []), strict=False), reverse=True
            )
            if points and result["Id"] not in newest:
                newest[result["Id"]] = points[0]
        if not page.get("NextToken"):
            return newest
        kwargs["NextToken"] = page["NextToken"]


# --- the canary ------------------------------------------------------------------------


def _key(component, marker):
    schema = component.config.get("KeySchema") or [{"AttributeName": "id", "KeyType": "HASH"}]
    key = {}
    for part in schema:
        value = marker if part.get("KeyType") == "HASH" else "controlplane-canary"
        key[part["AttributeName"]] = {"S": value}
    return key


def _poll(receiving, key, timeout, interval, deadline_base):
    """Seconds (monotonic) at which `key` was first readable in `receiving`, or None."""
    deadline = deadline_base + timeout
    ddb = dynamodb_for(receiving)
    while True:
        try:
            seen = read_marker(receiving, key, ddb)
        except (aws.ClientError, aws.BotoCoreError) as exc:
            if not aws.is_transient(exc):
                log.warning("canary GetItem in %s: %s", receiving.stack.region.code, exc)
            seen = None
        if seen is not None:
            return seen
        done = time.monotonic()
        if done >= deadline:
            return None
        time.sleep(min(interval, max(0.0, deadline - done)))


def _canary_from(source, others, timeout, interval, pool, outages):
    """Write one marker in `source`, poll `others`; [(Lag), ...]. A marker not seen in
    time is a Lag with replicated=False whose lag_ms is the age of the pair's oldest
    canary not replicated: this one's, or the start of the outage in `outages`."""
    ddb = dynamodb_for(source)
    try:
        key, written = write_marker(source, ddb)
    except (aws.ClientError, aws.BotoCoreError) as exc:
        log.warning("canary PutItem in %s: %s", source.stack.region.code, exc)
        return [], None
    futures = [(r, pool.submit(_poll, r, key, timeout, interval, written)) for r in others]
    lags = []
    for receiving, future in futures:
        seen = future.result()
        at = timezone.now()
        if seen is None:
            pair = (source.stack.region.code, receiving.stack.region.code)
            since = outages.get(pair)
            age = max(timeout, (at - since).total_seconds() if since is not None else 0.0)
            lags.append(Lag(*pair, at, round(age * 1000, 1), LagMethod.CANARY, False))
        else:
            lags.append(Lag(source.stack.region.code, receiving.stack.region.code, at,
                            round(max(0.0, seen - written) * 1000, 1), LagMethod.CANARY, True))
    return lags, (ddb, _table_name(source), key)


def replicas_of(application_id):
    """[Component (dynamodb_replica, with stack__region)] of one application, by region."""
    return _replicas([application_id]).get(application_id, [])


def dynamodb_for(component):
    """A DynamoDB client for `component`'s region (make it once per poller: creating a
    client costs more than the call)."""
    return aws.client_for_region("dynamodb", component.stack.region)


def write_marker(component, ddb=None):
    """Write one canary marker item to `component`'s table -> (key, written), where
    `written` is the time.monotonic() midpoint of the PutItem call. Raises the AWS error."""
    ddb = ddb or dynamodb_for(component)
    key = _key(component, f"{CANARY_PREFIX}{uuid.uuid4()}")
    now = timezone.now()
    item = {
        **key,
        "controlplane_canary": {"S": "true"},
        "written_at": {"S": now.isoformat()},
        "source_region": {"S": component.stack.region.code},
        settings.CONTROLPLANE_CANARY_TTL_ATTRIBUTE: {
            "N": str(int(now.timestamp()) + settings.CONTROLPLANE_CANARY_TTL_SECONDS)
        },
    }
    sent = time.monotonic()
    ddb.put_item(TableName=_table_name(component), Item=item)
    return key, (sent + time.monotonic()) / 2


def read_marker(component, key, ddb=None):
    """The time.monotonic() midpoint of a consistent GetItem that found `key` in
    `component`'s table, or None (not there yet). Raises the AWS error."""
    ddb = ddb or dynamodb_for(component)
    sent = time.monotonic()
    item = ddb.get_item(TableName=_table_name(component), Key=key, ConsistentRead=True).get("Item")
    return (sent + time.monotonic()) / 2 if item else None


def run_canary(application_id, *, timeout=None, sources=None, store=True):
    """Measure replication lag with marker items, from each replica (or the `sources`
    region codes) to every other; store and return the Lag tuples. Bounded by about
    `timeout` (default CONTROLPLANE_CANARY_TIMEOUT) plus one PutItem and one GetItem."""
    timeout = settings.CONTROLPLANE_CANARY_TIMEOUT if timeout is None else timeout
    interval = settings.CONTROLPLANE_CANARY_POLL_INTERVAL
    replicas = _replicas([application_id]).get(application_id, [])
    if len(replicas) < 2:
        return []
    chosen = [r for r in replicas if sources is None or r.stack.region.code in sources]
    pollers = len(chosen) * (len(replicas) - 1)
    outages = outage_starts(application_id)
    lags, cleanup = [], []
    with ThreadPoolExecutor(max_workers=pollers) as poll_pool, ThreadPoolExecutor(
        max_workers=len(chosen)
    ) as writers:
        futures = [
            writers.submit(
                _canary_from, source, [r for r in replicas if r.pk != source.pk], timeout, interval,
                poll_pool, outages,
            )
            for source in chosen
        ]
        for future in futures:
            found, written = future.result()
            lags.extend(found)
            if written:
                cleanup.append(written)
    for ddb, table, key in cleanup:
        try:
            ddb.delete_item(TableName=table, Key=key)
        except (aws.ClientError, aws.BotoCoreError) as exc:  # the TTL removes it later
            log.info("canary DeleteItem in %s: %s", table, exc)
    if store and lags:
        monitoring.store_lag_samples(lags, application_id)
    return lags


def outage_starts(application_id, now=None):
    """{(source, receiving): when the pair's oldest canary still not replicated was
    written} for the pairs whose latest canary (within CONTROLPLANE_LAG_STALE_SECONDS)
    was not replicated: that sample's time minus its lag. One query."""
    now = now or timezone.now()
    rows = (
        LagSample.objects.filter(
            application_id=application_id, method=LagMethod.CANARY,
            at__gte=now - timedelta(seconds=settings.CONTROLPLANE_LAG_STALE_SECONDS),
        )
        .order_by("source_region", "receiving_region", "-at")
        .values_list("source_region", "receiving_region", "at", "lag_ms", "replicated")
    )
    starts, seen = {}, set()
    for source, receiving, at, lag_ms, replicated in rows:
        if (source, receiving) in seen:
            continue
        seen.add((source, receiving))
        if not replicated and lag_ms is not None:
            starts[source, receiving] = at - timedelta(milliseconds=lag_ms)
    return starts


def canary_application_ids():
    """Applications with at least two replicas (the canary has work there). One query."""
    return sorted(app_id for app_id, replicas in _replicas().items() if len(replicas) >= 2)
