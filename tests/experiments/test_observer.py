import time

import pytest

from experiments.observer import (
    GlobalEndpointObserver,
    Observation,
    RemoteSamples,
    failover_figures,
    measurability,
    vantage_figures,
)
from tests.regions.test_probes import LocalServer
from tests.sandbox_support import wait_for


def _s(at, ok, region, latency=10.0):
    return Observation(at, ok, 200 if ok else 503, region if ok else "", latency)


def test_failover_and_recovery_times_come_from_the_first_success_elsewhere_and_back():
    samples = [_s(0.0, True, "us-east-1"), _s(0.5, True, "us-east-1"),
               _s(1.0, False, "us-east-1"), _s(1.5, False, ""), _s(2.5, True, "us-west-2"),
               _s(3.0, True, "us-west-2"), _s(4.2, True, "us-west-2"), _s(4.6, True, "us-east-1")]
    figures = failover_figures(samples, region="us-east-1", injected_at=1.0, reverted_at=4.0)
    assert figures["time_to_failover"] == pytest.approx(1.5)
    assert figures["time_to_recover"] == pytest.approx(0.6)
    assert figures["error_rate"] == pytest.approx(2 / 4)
    assert figures["regions_during"] == ["us-west-2"]
    assert figures["served_by_target_before"] is True


def test_a_client_never_sent_to_the_target_cannot_measure_failover():
    samples = [_s(0.0, True, "us-west-2"), _s(2.0, True, "us-west-2")]
    figures = failover_figures(samples, region="us-east-1", injected_at=1.0, reverted_at=3.0)
    assert figures["time_to_failover"] is None
    assert "cannot be measured" in figures["note"]


def test_no_failover_seen_is_none_not_zero():
    samples = [_s(0.0, True, "us-east-1"), _s(1.5, False, ""), _s(2.0, False, "")]
    figures = failover_figures(samples, region="us-east-1", injected_at=1.0)
    assert figures["time_to_failover"] is None
    assert figures["error_rate"] == 1.0


@pytest.mark.sandbox
def test_the_observer_sees_orders_fail_over_when_its_health_check_is_inverted(sandbox):
    orders = sandbox.state["applications"]["orders"]
    observer = GlobalEndpointObserver(orders["global_endpoint"], period=0.05).start()
    try:
        wait_for(lambda: any(s.ok and s.region == "us-east-1" for s in observer.snapshot()),
                 10, "orders served by us-east-1")
        check_id = sandbox.stack("orders", "us-east-1").health_check_id
        route53 = sandbox.client("route53", "us-east-1")
        route53.update_health_check(HealthCheckId=check_id, Inverted=True)
        injected = time.monotonic()
        wait_for(lambda: any(s.at > injected and s.ok and s.region == "us-west-2"
                             for s in observer.snapshot()), 20, "failover to us-west-2")
        route53.update_health_check(HealthCheckId=check_id, Inverted=False)
        reverted = time.monotonic()
        wait_for(lambda: any(s.at > reverted and s.ok and s.region == "us-east-1"
                             for s in observer.snapshot()), 20, "back to us-east-1")
    finally:
        observer.stop()
    figures = failover_figures(observer.snapshot(), region="us-east-1",
                               injected_at=injected, reverted_at=reverted)
    # Route 53's checkers need about interval x threshold (10 s x 3 at time scale 0.1).
    assert 0.5 < figures["time_to_failover"] < 15
    assert 0 < figures["time_to_recover"] < 15
    assert "us-west-2" in figures["regions_during"]


@pytest.mark.parametrize(
    ("path", "ok", "region", "error"),
    [
        ("/health", True, "eu-central-1", ""),
        ("/body-region", True, "us-west-2", ""),
        ("/unhealthy-body", False, "us-west-2", "bad_body"),  # a 2xx saying unhealthy
        ("/header-and-unhealthy-body", False, "eu-central-1", "bad_body"),
        ("/status/302", False, "", "other"),  # a redirect is not a success
        ("/status/503", False, "", "http_5xx"),
    ],
)
def test_the_observer_judges_each_answer_as_the_probes_do(path, ok, region, error):
    server = LocalServer().start()
    observer = GlobalEndpointObserver(server.url(path), period=0.01)
    try:
        observer.start()
        wait_for(lambda: observer.snapshot(), 10, what="one observation")
    finally:
        observer.stop()
        server.stop()
    first = observer.snapshot()[0]
    assert (first.ok, first.region, first.error) == (ok, region, error)


def test_the_timeline_and_the_figures_agree_when_the_target_never_served_this_client():
    # Served by us-east-1 before and after injecting into us-west-2: no failover to report
    # (the runner's timeline asks this function too: test_drill_checks checks the page).
    samples = [_s(t / 10, True, "us-east-1") for t in range(50)]
    figures = failover_figures(samples, region="us-west-2", injected_at=2.0)
    assert figures["time_to_failover"] is None
    assert figures["served_by_target_before"] is False


# --- several vantages ---------------------------------------------------------------


def _failover(start, region="us-west-2", to="us-east-1", after=1.5, revert_after=4.0):
    """Samples of a client served by `region`, failed over to `to` `after` s after the
    injection at `start`, back `revert_after` s after it."""
    return [_s(start - 1.0, True, region), _s(start + 0.2, False, ""), _s(start + after, True, to),
            _s(start + revert_after + 0.3, True, region)]


def test_overall_figures_are_the_worst_of_the_vantages_that_the_region_served():
    by_vantage = {
        "us-west-2": _failover(10.0, after=2.5),
        "us-west-1": _failover(10.0, after=1.0),
        "eu-central-1": [_s(9.0, True, "us-east-1"), _s(10.5, True, "us-east-1"), _s(11.0, False, "")],
    }
    per, overall = vantage_figures(by_vantage, region="us-west-2", injected_at=10.0, reverted_at=14.0)
    assert per["us-west-2"]["time_to_failover"] == pytest.approx(2.5)
    assert per["us-west-1"]["time_to_failover"] == pytest.approx(1.0)
    assert overall["time_to_failover"] == pytest.approx(2.5)  # the slowest vantage
    assert overall["time_to_recover"] == pytest.approx(0.3)
    assert overall["measured_from"] == ["us-west-2", "us-west-1"]
    assert overall["served_by_target_before"] is True
    # eu-central-1 never reached us-west-2: it does not count for failover, and says so
    assert per["eu-central-1"]["served_by_target_before"] is False
    assert "did not serve eu-central-1" in overall["note"]
    # error rate: the worst of the vantages that measure (1 of 2 failed during)
    assert overall["error_rate"] == pytest.approx(1 / 2)
    assert overall["regions_during"] == ["us-east-1"]


def test_one_measuring_vantage_without_failover_leaves_the_overall_time_unmeasured():
    by_vantage = {
        "us-west-2": _failover(10.0),
        "us-west-1": [_s(9.0, True, "us-west-2"), _s(10.5, False, ""), _s(11.0, False, "")],
    }
    _per, overall = vantage_figures(by_vantage, region="us-west-2", injected_at=10.0)
    assert overall["time_to_failover"] is None
    assert overall["error_rate"] == 1.0


def test_no_vantage_served_by_the_region_says_so_for_all():
    by_vantage = {"a": [_s(0.0, True, "us-east-1")], "b": [_s(0.0, True, "us-east-1")]}
    _per, overall = vantage_figures(by_vantage, region="us-west-2", injected_at=1.0)
    assert overall["served_by_target_before"] is False
    assert overall["measured_from"] == []
    assert "cannot be measured from any vantage" in overall["note"]


def test_measurability_names_the_vantages_the_region_serves_now_and_warns_when_none():
    now = object()  # opaque: measurability does not compute with the time
    serving = {"us-east-1": ("us-east-1", True, now), "us-west-2": ("us-west-2", True, now),
               "eu-central-1": ("", False, now)}
    seen = measurability(serving, ["us-east-1", "us-west-2", "eu-central-1", "ap-south-1"], "us-west-2",
                         expects_failover=True)
    assert seen["measurable_from"] == ["us-west-2"]
    assert seen["warning"] == ""
    rows = {r["vantage"]: r for r in seen["vantages"]}
    assert rows["eu-central-1"]["served_by"].startswith("no region")
    assert rows["ap-south-1"]["served_by"].startswith("unknown")

    seen = measurability(serving, ["us-east-1", "eu-central-1"], "us-west-2", expects_failover=True)
    assert seen["measurable_from"] == []
    assert "No vantage is served by us-west-2 now" in seen["warning"]
    assert "us-east-1 -> us-east-1" in seen["warning"]
    assert "INCONCLUSIVE" in seen["warning"]
    # A scenario that expects no failover (pause replication) has nothing to warn about.
    assert measurability(serving, ["us-east-1"], "us-west-2", expects_failover=False)["warning"] == ""


@pytest.mark.django_db
def test_remote_samples_are_read_in_order_on_the_runners_clock(make_drill):
    from experiments.models import ObserverBatch

    drill = make_drill()
    offset = 1_000_000.0
    ObserverBatch.objects.create(drill=drill, vantage="us-west-2", seq=0,
                                 samples=[[offset + 5.0, True, 200, "us-west-2", 12.5, ""]])
    # seq 2 before seq 1: not read until the gap is filled (batches stay in order)
    ObserverBatch.objects.create(drill=drill, vantage="us-west-2", seq=2,
                                 samples=[[offset + 6.0, True, 200, "us-east-1", 9.0, ""]])
    ObserverBatch.objects.create(drill=drill, vantage="eu-central-1", seq=0,
                                 samples=[[offset + 5.0, False, None, "", 1.0, "timeout"]])
    remote = RemoteSamples(drill.pk, "us-west-2", offset=offset, min_interval=0)
    first = remote.snapshot()
    assert [(s.at, s.ok, s.region) for s in first] == [(5.0, True, "us-west-2")]
    ObserverBatch.objects.create(drill=drill, vantage="us-west-2", seq=1,
                                 samples=[[offset + 5.5, False, 503, "", 3.0, "http_5xx"]])
    assert [(s.at, s.ok, s.status, s.error) for s in remote.snapshot()] == [
        (5.0, True, 200, ""), (5.5, False, 503, "http_5xx"), (6.0, True, 200, ""),
    ]


@pytest.mark.sandbox
def test_each_vantage_is_routed_as_a_client_there(sandbox):
    """The observer names its vantage; the sandbox's latency routing honours it, so a
    client at us-west-2 reaches orders in us-west-2 and one elsewhere us-east-1."""
    url = sandbox.state["applications"]["orders"]["global_endpoint"]
    seen = {}
    for vantage in ("us-west-2", "eu-central-1", ""):
        observer = GlobalEndpointObserver(url, period=0.02, vantage=vantage).start()
        try:
            wait_for(lambda o=observer: len(o.snapshot()) >= 3, 10, what="three observations")
        finally:
            observer.stop()
        seen[vantage] = {s.region for s in observer.snapshot() if s.ok}
    assert seen == {"us-west-2": {"us-west-2"}, "eu-central-1": {"us-east-1"}, "": {"us-east-1"}}
