"""Replication lag (regions/lag.py): the canary and CloudWatch ReplicationLatency,
against the sandbox's replicator (300 +/- 100 ms)."""

import pytest

from regions import lag, monitoring
from regions.discovery import run_discovery
from regions.models import Application, LagMethod, LagSample
from regions.status import HealthStatus
from tests.regions.test_aws_health import count_calls
from tests.sandbox_support import wait_for

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db]

REGIONS = ["eu-central-1", "us-east-1", "us-west-2"]
PAUSE_TAG = "sandbox:replication-paused"


@pytest.fixture
def orders(sandbox_settings):
    run_discovery(actor="test", regions=REGIONS)
    return Application.objects.get(name="orders")


def test_the_canary_measures_a_lag_of_a_few_hundred_ms(orders):
    lags = lag.run_canary(orders.pk, timeout=5)

    pairs = {(x.source_region, x.receiving_region) for x in lags}
    assert pairs == {("us-east-1", "us-west-2"), ("us-west-2", "us-east-1")}
    for item in lags:
        assert item.replicated
        assert item.method == LagMethod.CANARY
        assert 100 <= item.lag_ms <= 2000, item
    rows = LagSample.objects.filter(application=orders, method=LagMethod.CANARY)
    assert rows.count() == 2
    assert all(r.replicated for r in rows)


def test_a_paused_replica_is_reported_not_replicated_after_the_timeout(orders, sandbox_settings):
    sb = sandbox_settings
    west = sb.stack("orders", "us-west-2")
    sb.client("dynamodb", "us-west-2").tag_resource(
        ResourceArn=west.table_arn, Tags=[{"Key": PAUSE_TAG, "Value": "true"}]
    )

    lags = lag.run_canary(orders.pk, timeout=1.5, sources=["us-east-1"])

    (item,) = lags
    assert (item.source_region, item.receiving_region) == ("us-east-1", "us-west-2")
    assert item.replicated is False
    assert item.lag_ms == 1500
    status = monitoring.load_picture(application_ids=[orders.pk], aws_view=False)[orders.pk].status
    west_status = next(r for r in status.regions if r.region == "us-west-2")
    assert west_status.replication.status == HealthStatus.UNHEALTHY
    assert "canary from us-east-1 not replicated after 1.5 s" in west_status.replication.reason


def test_replication_latency_metrics_become_lag_samples_in_one_call_per_source_region(orders):
    calls = {code: count_calls("cloudwatch", "GetMetricData", code) for code in REGIONS}
    lag.run_canary(orders.pk, timeout=5)  # writes: the replicator publishes ReplicationLatency

    wait_for(lambda: lag.sample_metrics(application_ids=[orders.pk]), 20, "ReplicationLatency datapoints",
             interval=0.3)

    rows = list(LagSample.objects.filter(application=orders, method=LagMethod.METRIC))
    assert rows
    assert {(r.source_region, r.receiving_region) for r in rows} <= {
        ("us-east-1", "us-west-2"), ("us-west-2", "us-east-1"),
    }
    assert all(r.lag_ms is not None and r.lag_ms > 0 for r in rows)
    # each sampling pass: one GetMetricData per source region, for all its pairs
    per_pass = {code: len(c) for code, c in calls.items()}
    assert per_pass["eu-central-1"] == 0
    assert per_pass["us-east-1"] == per_pass["us-west-2"] >= 1
    queries = calls["us-east-1"][-1]["MetricDataQueries"]
    assert {q["MetricStat"]["Stat"] for q in queries} == {"Average", "Maximum"}
