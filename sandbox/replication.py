"""Global-table replication between an application's regional DynamoDB tables.

Each regional table has a DynamoDB stream (NEW_AND_OLD_IMAGES), as real global tables
do. The replicator tails every replica's stream in moto, so any write replicates —
through /items or straight through the DynamoDB API (PutItem, UpdateItem, DeleteItem,
batch writes) — and applies each change to every other replica after
`delay_ms ± jitter_ms`.

Pausing (what FIS's aws:dynamodb:global-table-pause-replication does): tag the
*receiving* replica with `sandbox:replication-paused=true` (dynamodb TagResource);
changes bound for it queue up, its entry in DescribeTable's `Replicas` reports
`REPLICATION_NOT_AUTHORIZED`, and ReplicationLatency keeps growing. UntagResource (or
the value "false") resumes; the queue drains in order and the tables converge.

ReplicationLatency (AWS/DynamoDB, dimensions TableName + ReceivingRegion, Milliseconds)
is published through the CloudWatch API in the source region every metric period while
there is activity or a backlog: the largest latency applied in the period, or the age of
the oldest change still waiting, whichever is larger.
"""

import collections
import json
import logging
import random
import threading
import time
from datetime import UTC, datetime

from controlplane import aws
from controlplane.aws import SANDBOX_PAUSE_TAG as PAUSE_TAG
from sandbox import motostate

log = logging.getLogger("sandbox.replication")
TICK = 0.02  # seconds between stream polls


def _fingerprint(record):
    data = record["dynamodb"]
    return json.dumps([record["eventName"] == "REMOVE", data["Keys"], data.get("NewImage")], sort_keys=True)


class Replicator:
    def __init__(self, world):
        self.world = world
        self.topology = world.topology
        self.account_id = world.topology.account_id
        self._stop = threading.Event()
        self._thread = None
        self._cursor = {}  # (app, region) -> index into the replica's stream
        # (app, receiving region) -> deque of (due, first_seen, source region, record)
        self._queues = collections.defaultdict(collections.deque)
        # (app, region) -> Counter of fingerprints of changes we applied there: their
        # stream records are our own echoes and must not replicate back.
        self._echoes = collections.defaultdict(collections.Counter)
        # (app, source, receiver) -> largest latency (ms) applied this metric period
        self._latency = {}
        self._paused_cache = {}
        self._clients = {}
        self.lock = threading.Lock()

    # --- lifecycle -----------------------------------------------------------------------
    def start(self):
        for app, region in self.topology.stacks():
            self._cursor[(app.name, region)] = len(self._shard(app, region).items)
        self._thread = threading.Thread(target=self._run, name="sandbox-replicator", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _shard(self, app, region):
        table = motostate.backend("dynamodb", self.account_id, region).get_table(app.table)
        return table.stream_shard

    # --- state the control plane can read ---------------------------------------------------
    def paused(self, app, region, fresh=False):
        """Whether the replica in `region` is tagged paused (cached 0.2 s unless fresh)."""
        key = (app.name, region)
        cached = self._paused_cache.get(key)
        now = time.monotonic()
        if cached and now - cached[1] < 0.2 and not fresh:
            return cached[0]
        stack = self.world.registry.stacks[key]
        try:
            with motostate.DATA_LOCK:
                tags = motostate.table_tags(self.account_id, region, stack.table_arn)
            value = tags.get(PAUSE_TAG, "").lower() == "true"
        except Exception:
            value = True
        self._paused_cache[key] = (value, now)
        return value

    # --- the loop ----------------------------------------------------------------------
    def _run(self):
        next_publish = time.monotonic() + self._period()
        while not self._stop.wait(TICK):
            try:
                self._tail_streams()
                self._apply_due()
                if time.monotonic() >= next_publish:
                    next_publish = time.monotonic() + self._period()
                    self._publish()
            except Exception:
                log.exception("replication round failed")

    def _period(self):
        return max(0.2, self.topology.metric_period_s * self.world.time_scale)

    def _delay(self):
        ms = self.topology.replication_delay_ms + random.uniform(
            -self.topology.replication_jitter_ms, self.topology.replication_jitter_ms
        )
        return max(0.0, ms) / 1000

    def _tail_streams(self):
        now = time.monotonic()
        for app, region in self.topology.stacks():
            with motostate.DATA_LOCK:
                shard = self._shard(app, region)
                cursor = self._cursor.get((app.name, region), 0)
                if cursor > len(shard.items):  # moto truncated the shard
                    cursor = 0
                new = [r.record for r in shard.items[cursor:]]
                self._cursor[(app.name, region)] = cursor + len(new)
            echoes = self._echoes[(app.name, region)]
            for record in new:
                fp = _fingerprint(record)
                if echoes[fp] > 0:
                    echoes[fp] -= 1
                    if not echoes[fp]:
                        del echoes[fp]
                    continue
                for receiver in app.regions:
                    if receiver != region:
                        self._queues[(app.name, receiver)].append((now + self._delay(), now, region, record))

    def _apply_due(self):
        now = time.monotonic()
        for app, receiver in self.topology.stacks():
            queue = self._queues[(app.name, receiver)]
            if not queue or self.paused(app, receiver):
                continue
            ddb = motostate.backend("dynamodb", self.account_id, receiver)
            # In order; a change that is not yet due holds back the ones behind it.
            while queue and queue[0][0] <= now:
                _, first_seen, source, record = queue.popleft()
                data = record["dynamodb"]
                with motostate.DATA_LOCK:
                    self._echoes[(app.name, receiver)][_fingerprint(record)] += 1
                    if record["eventName"] == "REMOVE":
                        ddb.delete_item(app.table, data["Keys"])
                    else:
                        ddb.put_item(app.table, data["NewImage"])
                latency = (time.monotonic() - first_seen) * 1000
                key = (app.name, source, receiver)
                self._latency[key] = max(self._latency.get(key, 0.0), latency)

    def _publish(self):
        now = time.monotonic()
        values = dict(self._latency)
        self._latency.clear()
        for app, receiver in self.topology.stacks():
            for _, first_seen, source, _ in self._queues[(app.name, receiver)]:
                key = (app.name, source, receiver)
                values[key] = max(values.get(key, 0.0), (now - first_seen) * 1000)
        stamp = datetime.now(UTC)
        for (app_name, source, receiver), value in values.items():
            table = self.topology.applications[app_name].table
            try:
                self._cloudwatch(source).put_metric_data(
                    Namespace="AWS/DynamoDB",
                    MetricData=[
                        {
                            "MetricName": "ReplicationLatency",
                            "Dimensions": [
                                {"Name": "TableName", "Value": table},
                                {"Name": "ReceivingRegion", "Value": receiver},
                            ],
                            "Timestamp": stamp,
                            "Value": round(value, 1),
                            "Unit": "Milliseconds",
                        }
                    ],
                )
            except aws.ClientError:
                log.exception("publishing ReplicationLatency failed")

    def _cloudwatch(self, region):
        if region not in self._clients:
            self._clients[region] = aws.client("cloudwatch", region, endpoint_url=self.world.aws_endpoint)
        return self._clients[region]
