import time

import pytest

from experiments.observer import GlobalEndpointObserver, Observation, failover_figures
from sandbox.testing import wait_for
from tests.regions.test_probes import LocalServer


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
