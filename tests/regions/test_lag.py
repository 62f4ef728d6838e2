"""Replication lag (regions/lag.py): the canary and CloudWatch ReplicationLatency,
against the sandbox's replicator (300 +/- 100 ms), with boto3 as an independent client
of the tables; and the current lag the status, the API and a drill's preflight read
(regions.monitoring.latest_lags, regions.status.current_lags)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane.models import ServiceHeartbeat
from regions import lag, monitoring
from regions.discovery import run_discovery
from regions.models import Application, Architecture, LagMethod, LagSample, Region, Stack
from regions.status import HealthStatus
from tests.regions.samples import store_lag
from tests.regions.test_aws_health import count_calls
from tests.sandbox_support import wait_for

REGIONS = ["eu-central-1", "us-east-1", "us-west-2"]
PAUSE_TAG = "sandbox:replication-paused"


@pytest.fixture
def orders(sandbox_settings):
    run_discovery(actor="test", regions=REGIONS)
    return Application.objects.get(name="orders")


def replication_into(app, region, now=None):
    status = monitoring.load_picture(now, application_ids=[app.pk], aws_view=False)[app.pk].status
    return next(r for r in status.regions if r.region == region).replication


@pytest.mark.sandbox
@pytest.mark.django_db
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


def _item(key):
    return {"id": {"S": key}, "note": {"S": "written by the test, not the control plane"}}


@pytest.mark.sandbox
@pytest.mark.django_db
def test_lag_grows_with_the_oldest_unreplicated_canary_during_a_pause_and_drops_after_resume(
    orders, sandbox_settings
):
    sb = sandbox_settings
    east, west = sb.client("dynamodb", "us-east-1"), sb.client("dynamodb", "us-west-2")
    west_arn = sb.stack("orders", "us-west-2").table_arn
    west.tag_resource(ResourceArn=west_arn, Tags=[{"Key": PAUSE_TAG, "Value": "true"}])
    # An independent write, read back with boto3: it must not arrive while paused.
    east.put_item(TableName="orders", Item=_item("test-lag-probe"))

    (first,) = lag.run_canary(orders.pk, timeout=1.0, sources=["us-east-1"])
    (second,) = lag.run_canary(orders.pk, timeout=2.5, sources=["us-east-1"])

    assert (first.replicated, second.replicated) == (False, False)
    assert first.lag_ms == 1000  # its own canary, written 1 s before it gave up
    # the second reports the age of the first canary, still not replicated
    first_written = first.at - timedelta(milliseconds=first.lag_ms)
    assert second.lag_ms == pytest.approx((second.at - first_written).total_seconds() * 1000, abs=1)
    assert second.lag_ms >= first.lag_ms + 2500
    assert "Item" not in west.get_item(TableName="orders", Key={"id": {"S": "test-lag-probe"}},
                                       ConsistentRead=True)
    # and the lag keeps growing with the clock until measured again
    now = second.at + timedelta(seconds=20)
    verdict = replication_into(orders, "us-west-2", now)
    assert verdict.status == HealthStatus.UNHEALTHY
    grown = (second.lag_ms + 20000) / 1000
    assert verdict.reason == f"replication outage: canary from us-east-1 not replicated for {grown:.1f} s"

    west.untag_resource(ResourceArn=west_arn, TagKeys=[PAUSE_TAG])
    wait_for(lambda: "Item" in west.get_item(TableName="orders", Key={"id": {"S": "test-lag-probe"}},
                                            ConsistentRead=True), 10, "the backlog to drain")
    # CloudWatch's maximum for the period holds the drained backlog's lag ...
    wait_for(lambda: lag.sample_metrics(application_ids=[orders.pk]), 20, "ReplicationLatency", interval=0.3)
    held = LagSample.objects.filter(application=orders, method=LagMethod.METRIC, source_region="us-east-1",
                                    receiving_region="us-west-2").latest("at")
    assert held.lag_ms > 2000
    # ... but the lag now is what was measured last: the canary after the resume.
    (after,) = lag.run_canary(orders.pk, timeout=5, sources=["us-east-1"])

    assert after.replicated and after.lag_ms < 2000
    assert after.at > held.at
    verdict = replication_into(orders, "us-west-2")
    assert (verdict.status, verdict.reason) == (HealthStatus.HEALTHY, f"lag ≤ {after.lag_ms / 1000:.1f} s")
    (current,) = [x for x in monitoring.load_picture(application_ids=[orders.pk])[orders.pk].lags
                  if x.receiving_region == "us-west-2"]
    assert current.lag_ms == after.lag_ms
    assert monitoring.replication_now(orders.pk)["us-west-2"] == verdict  # what a preflight reads


@pytest.mark.sandbox
@pytest.mark.django_db
def test_replication_latency_metrics_become_lag_samples_in_one_call_per_source_region(orders):
    calls = {code: count_calls("cloudwatch", "GetMetricData", code) for code in REGIONS}
    lag.run_canary(orders.pk, timeout=5)  # writes: the replicator publishes ReplicationLatency
    sampled = []

    def sample_now():
        sampled.append(timezone.now())
        return lag.sample_metrics(application_ids=[orders.pk])

    wait_for(sample_now, 20, "ReplicationLatency datapoints", interval=0.3)

    rows = list(LagSample.objects.filter(application=orders, method=LagMethod.METRIC))
    assert rows
    assert {(r.source_region, r.receiving_region) for r in rows} <= {
        ("us-east-1", "us-west-2"), ("us-west-2", "us-east-1"),
    }
    assert all(r.lag_ms is not None and r.lag_ms > 0 for r in rows)
    # stamped with their datapoint's time (the start of the period they describe), from
    # before they were read, not with when they were read
    assert all(r.at < sampled[-1] for r in rows)
    # each sampling pass: one GetMetricData per source region, for all its pairs
    per_pass = {code: len(c) for code, c in calls.items()}
    assert per_pass["eu-central-1"] == 0
    assert per_pass["us-east-1"] == per_pass["us-west-2"] >= 1
    queries = calls["us-east-1"][-1]["MetricDataQueries"]
    assert {q["MetricStat"]["Stat"] for q in queries} == {"Average", "Maximum"}


# --- the current lag: staleness bound and restarts ------------------------------------


@pytest.fixture
def shop(db):
    app = Application.objects.create(name="shop", architecture=Architecture.DNS)
    for code in ("us-east-1", "us-west-2"):
        Stack.objects.create(application=app, region=Region.objects.create(code=code))
    return app


def test_a_lag_never_outlives_its_staleness_bound(shop, settings):
    settings.CONTROLPLANE_LAG_STALE_SECONDS = 60
    now = timezone.now()
    store_lag(shop, 59, now=now)
    assert replication_into(shop, "us-west-2", now).status == HealthStatus.DEGRADED

    later = now + timedelta(seconds=2)  # 61 s after the sample
    verdict = replication_into(shop, "us-west-2", later)

    assert (verdict.status, verdict.reason) == (HealthStatus.UNKNOWN, "no lag sample for 1 min 1 s")
    assert monitoring.load_picture(later, application_ids=[shop.pk])[shop.pk].lags == []
    assert monitoring.replication_now(shop.pk, later)["us-west-2"] == verdict


def test_the_api_shows_no_lag_past_its_staleness_bound(shop, settings, client, viewer):
    from controlplane.api import issue_token

    settings.CONTROLPLANE_LAG_STALE_SECONDS = 60
    store_lag(shop, 61)
    store_lag(shop, 1, lag_ms=300, source="us-west-2", receiving="us-east-1")
    token = issue_token(viewer)[1]

    response = client.get("/api/v1/status", headers={"Authorization": f"Bearer {token}"})

    (entry,) = response.json()["applications"]
    assert [(x["source_region"], x["receiving_region"]) for x in entry["lag"]] == [("us-west-2", "us-east-1")]


def test_a_lag_measured_before_a_restart_is_not_current(shop):
    now = timezone.now()
    store_lag(shop, 20, lag_ms=66800, now=now)
    assert replication_into(shop, "us-west-2", now).status == HealthStatus.DEGRADED

    # beat (the scheduler of every sampler) started again 10 s ago
    ServiceHeartbeat.objects.create(kind=ServiceHeartbeat.Kind.BEAT, hostname="beat@test", last_seen=now,
                                    started_at=now - timedelta(seconds=10))

    verdict = replication_into(shop, "us-west-2", now)
    assert (verdict.status, verdict.reason) == (HealthStatus.UNKNOWN, "no lag samples")
    assert monitoring.replication_now(shop.pk, now) == {}
    # measured again since: that is the lag
    store_lag(shop, 5, lag_ms=300, now=now)
    verdict = replication_into(shop, "us-west-2", now)
    assert (verdict.status, verdict.reason) == (HealthStatus.HEALTHY, "lag ≤ 0.3 s")


def test_the_status_loader_reads_the_current_lags_in_one_query(shop, django_assert_num_queries):
    now = timezone.now()
    for seconds in (50, 40, 30):
        store_lag(shop, seconds, now=now, method=LagMethod.METRIC)
    newest_at = store_lag(shop, 10, lag_ms=250, now=now)

    with django_assert_num_queries(1):
        lags = monitoring.latest_lags([shop.pk], now)

    assert [x.at for x in lags[shop.pk]] == [newest_at]


def test_a_sample_stored_late_never_replaces_a_newer_one(shop, django_assert_num_queries):
    from regions.models import LagState
    from regions.status import Lag

    now = timezone.now()

    def lag_at(seconds_ago, lag_ms):
        return Lag("us-east-1", "us-west-2", now - timedelta(seconds=seconds_ago), lag_ms, LagMethod.CANARY)

    monitoring.store_lag_samples([lag_at(5, 300)], shop.pk)
    # an older batch arrives after it (a slow metric poll), then one out of order in itself
    monitoring.store_lag_samples([lag_at(20, 9000)], shop.pk)
    monitoring.store_lag_samples([lag_at(2, 450), lag_at(15, 7000)], shop.pk)

    with django_assert_num_queries(1):
        lags = monitoring.latest_lags([shop.pk], now)
    assert [(x.at, x.lag_ms) for x in lags[shop.pk]] == [(now - timedelta(seconds=2), 450)]
    assert LagState.objects.filter(application=shop).count() == 1
    assert replication_into(shop, "us-west-2", now).status == HealthStatus.HEALTHY

    shop.delete()  # the application's pairs go with it
    assert not LagState.objects.exists()
