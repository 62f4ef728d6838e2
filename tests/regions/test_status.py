"""The status engine: pure functions of samples, thresholds and an explicit `now`."""

from datetime import UTC, datetime, timedelta

import pytest

from regions.models import ErrorClass, LagMethod
from regions.status import (
    HealthStatus,
    Lag,
    Sample,
    Thresholds,
    Track,
    Verdict,
    application_status,
    combine_vantages,
    current_lags,
    fold,
    format_duration,
    region_status,
    replication_status,
    track_verdict,
)
from tests.regions.samples import replay

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
T = Thresholds()  # 2 failures down, 2 successes up, 2 s interval, stale after 6 s
OK = "ok"
FAIL = "503"
TIMEOUT = "timeout"


def samples(*outcomes, end=NOW, every=2.0):
    """Samples every `every` s, the last one at `end`, oldest first."""
    out = []
    for i, outcome in enumerate(outcomes):
        at = end - timedelta(seconds=every * (len(outcomes) - 1 - i))
        if outcome == OK:
            out.append(Sample(at, True, 200, 12.0))
        elif outcome == TIMEOUT:
            out.append(Sample(at, False, None, 2004.0, ErrorClass.TIMEOUT))
        else:
            out.append(Sample(at, False, int(outcome), 3.0, ErrorClass.HTTP_5XX))
    return out


def target_status(samples, thresholds, now):
    """The verdict of a target from its samples (folded in time order, as stored)."""
    return track_verdict(replay(samples, thresholds), thresholds, now)


def status_of(*outcomes, thresholds=T):
    return target_status(samples(*outcomes), thresholds, NOW)


def tracks(health):
    """{stack: {vantage: [Sample]}} -> {stack: {vantage: Track}}, as the loader reads them."""
    return {stack: {v: replay(s, T) for v, s in seen.items()} for stack, seen in health.items()}


def test_no_samples_is_unknown():
    verdict = target_status([], T, NOW)
    assert verdict.status == HealthStatus.UNKNOWN
    assert verdict.reason == "no samples yet"


def test_unknown_to_healthy_on_the_first_success():
    verdict = status_of(OK)
    assert verdict.status == HealthStatus.HEALTHY
    assert verdict.reason == "200 from /health in 12 ms"


def test_one_failure_from_unknown_stays_unknown():
    verdict = status_of(FAIL)
    assert verdict.status == HealthStatus.UNKNOWN
    assert verdict.reason == "503 from /health (1 of 2 failures before unhealthy)"


def test_healthy_to_unhealthy_only_after_n_failures():
    one = status_of(OK, OK, FAIL)
    assert one.status == HealthStatus.DEGRADED  # suspect, not down
    assert one.reason == "503 from /health (1 of 2 failures before unhealthy)"
    two = status_of(OK, OK, FAIL, FAIL)
    assert two.status == HealthStatus.UNHEALTHY
    assert two.reason == "2 consecutive 503 from /health"


def test_failure_threshold_is_configurable():
    three = Thresholds(failures=3)
    assert status_of(OK, FAIL, FAIL, thresholds=three).status == HealthStatus.DEGRADED
    verdict = status_of(OK, FAIL, FAIL, FAIL, thresholds=three)
    assert verdict.status == HealthStatus.UNHEALTHY
    assert verdict.reason == "3 consecutive 503 from /health"


def test_unhealthy_to_healthy_only_after_m_successes():
    recovering = status_of(OK, FAIL, FAIL, FAIL, OK)
    assert recovering.status == HealthStatus.UNHEALTHY
    assert recovering.reason == "recovering (1 of 2 successes) after 3 consecutive 503 from /health"
    assert status_of(OK, FAIL, FAIL, FAIL, OK, OK).status == HealthStatus.HEALTHY


def test_flapping_does_not_bring_an_unhealthy_target_back():
    verdict = status_of(FAIL, FAIL, OK, FAIL, OK, FAIL, OK)
    assert verdict.status == HealthStatus.UNHEALTHY
    assert verdict.reason.startswith("recovering (1 of 2 successes)")


def test_flapping_does_not_take_a_healthy_target_down():
    assert status_of(OK, OK, FAIL, OK, FAIL, OK, FAIL).status == HealthStatus.DEGRADED
    assert status_of(OK, OK, FAIL, OK, FAIL, OK).status == HealthStatus.HEALTHY


def test_timeouts_are_described_with_their_duration():
    assert status_of(OK, TIMEOUT).reason == (
        "timeout after 2.0 s on /health (1 of 2 failures before unhealthy)"
    )
    assert status_of(OK, TIMEOUT, TIMEOUT, TIMEOUT).reason == (
        "3 consecutive timeouts on /health (latest after 2.0 s)"
    )


def test_mixed_failures_name_the_latest():
    verdict = status_of(OK, FAIL, TIMEOUT)
    assert verdict.status == HealthStatus.UNHEALTHY
    assert verdict.reason == "2 consecutive failures, latest: timeout after 2.0 s on /health"


def test_stale_samples_make_the_target_unknown_with_the_age():
    old = samples(OK, OK, end=NOW - timedelta(seconds=30))
    verdict = target_status(old, T, NOW)
    assert verdict.status == HealthStatus.UNKNOWN
    assert verdict.reason == "no sample for 30 s"
    # Just inside the staleness window (3 x 2 s) the target keeps its state.
    fresh = samples(OK, OK, end=NOW - timedelta(seconds=6))
    assert target_status(fresh, T, NOW).status == HealthStatus.HEALTHY


def test_staleness_follows_the_interval():
    slow = Thresholds(interval=timedelta(seconds=10))
    old = samples(OK, end=NOW - timedelta(seconds=25))
    assert target_status(old, slow, NOW).status == HealthStatus.HEALTHY
    assert target_status(old, T, NOW).reason == "no sample for 25 s"


def reference_status(outcomes, thresholds):
    """The hysteresis written the plain way, over the whole list: (status, failures in
    the latest run, successes since it). The oracle for the incremental fold."""
    status, run, ok_streak = "unknown", 0, 0
    for outcome in outcomes:
        if outcome == OK:
            ok_streak += 1
            if status == "unknown" or (status == "unhealthy" and ok_streak >= thresholds.successes):
                status = "healthy"
        else:
            run = run + 1 if ok_streak == 0 else 1
            ok_streak = 0
            if run >= thresholds.failures:
                status = "unhealthy"
    return status, run, ok_streak


@pytest.mark.parametrize("thresholds", [T, Thresholds(failures=3, successes=1), Thresholds(failures=1)])
def test_folding_one_sample_at_a_time_follows_the_hysteresis(thresholds):
    import random

    rng = random.Random(20261129)
    for _ in range(300):
        outcomes = [rng.choice([OK, OK, FAIL, TIMEOUT]) for _ in range(rng.randint(1, 40))]
        track = Track()
        for sample in samples(*outcomes):  # as the probe workers store them, one cycle at a time
            track = fold(track, sample, thresholds)
        status, run, ok_streak = reference_status(outcomes, thresholds)
        assert (track.status.value, track.run.count if track.run else 0, track.ok_streak) == (
            status, run, ok_streak
        ), outcomes
        # the verdict of the folded state names the whole latest run, however long
        verdict = track_verdict(track, thresholds, NOW)
        if status == "unhealthy" and not ok_streak and run > 1 and len(set(outcomes[-run:])) == 1:
            assert verdict.reason.startswith(f"{run} consecutive "), (outcomes, verdict)


def verdict(status, reason="", seconds_ago=0):
    return Verdict(status, reason, Sample(NOW - timedelta(seconds=seconds_ago), True, 200))


def test_vantages_all_healthy_or_all_unhealthy():
    assert combine_vantages(
        {"a": verdict(HealthStatus.HEALTHY), "b": verdict(HealthStatus.HEALTHY)}
    ).status == HealthStatus.HEALTHY
    down = combine_vantages(
        {"a": verdict(HealthStatus.UNHEALTHY, "x"), "b": verdict(HealthStatus.UNHEALTHY, "x")}
    )
    assert down.status == HealthStatus.UNHEALTHY
    assert down.reason == "from every vantage: x"


def test_vantages_disagreeing_is_degraded_and_names_the_vantage():
    mixed = combine_vantages(
        {"eu-west-1": verdict(HealthStatus.UNHEALTHY, "2 consecutive 503 from /health"),
         "us-east-1": verdict(HealthStatus.HEALTHY)}
    )
    assert mixed.status == HealthStatus.DEGRADED
    assert mixed.reason == "unhealthy from eu-west-1: 2 consecutive 503 from /health"


def test_a_silent_vantage_is_ignored_while_another_speaks():
    combined = combine_vantages(
        {"a": verdict(HealthStatus.UNKNOWN, "no sample for 40 s"), "b": verdict(HealthStatus.HEALTHY)}
    )
    assert combined.status == HealthStatus.HEALTHY


def lag(source, receiving, lag_ms, *, replicated=True, seconds_ago=1, method=LagMethod.METRIC):
    return Lag(source, receiving, NOW - timedelta(seconds=seconds_ago), lag_ms, method, replicated)


def test_lag_under_the_threshold_is_healthy():
    verdict = replication_status([lag("us-east-1", "us-west-2", 800)], T, NOW)
    assert verdict.status == HealthStatus.HEALTHY
    assert verdict.reason == "lag ≤ 0.8 s"


def test_lag_over_the_threshold_is_degraded():
    verdict = replication_status(
        [lag("us-east-1", "us-west-2", 4200), lag("eu-central-1", "us-west-2", 300)], T, NOW
    )
    assert verdict.status == HealthStatus.DEGRADED
    assert verdict.reason == "lag 4.2 s > 2 s threshold from us-east-1"


def test_canary_not_replicated_is_a_replication_outage_whose_lag_grows_until_measured_again():
    # The oldest canary still not replicated was 5 s old when sampled, 1 s ago.
    outage = [lag("us-east-1", "us-west-2", 5000, replicated=False, method=LagMethod.CANARY)]

    verdict = replication_status(outage, T, NOW)

    assert verdict.status == HealthStatus.UNHEALTHY
    assert verdict.reason == "replication outage: canary from us-east-1 not replicated for 6.0 s"
    later = replication_status(outage, T, NOW + timedelta(seconds=20))
    assert later.reason == "replication outage: canary from us-east-1 not replicated for 26.0 s"
    (now,) = current_lags(outage, T, NOW + timedelta(seconds=20))[0]
    assert now.lag_ms == 26000


def test_the_current_lag_is_the_newest_measurement_of_the_pair_whatever_the_method():
    # A ReplicationLatency maximum of 66.8 s (the backlog drained after a pause),
    # stamped with its period's start, then a canary measured after it: 0.3 s.
    held_over = lag("us-east-1", "us-west-2", 66800, seconds_ago=40)
    canary = lag("us-east-1", "us-west-2", 300, seconds_ago=10, method=LagMethod.CANARY)
    other_pair = lag("us-west-2", "us-east-1", 250, seconds_ago=5)

    current, stale_at = current_lags([held_over, canary, other_pair], T, NOW)

    assert current == [canary, other_pair]
    assert stale_at is None
    verdict = replication_status([held_over, canary], T, NOW)
    assert (verdict.status, verdict.reason) == (HealthStatus.HEALTHY, "lag ≤ 0.3 s")
    # and the other way round: a newer large measurement is the lag now
    assert replication_status([held_over._replace(at=NOW), canary], T, NOW).status == HealthStatus.DEGRADED


def test_a_stale_lag_is_left_out_once_past_its_bound_however_large():
    big = lag("us-east-1", "us-west-2", 66800, seconds_ago=299)
    assert replication_status([big], T, NOW).status == HealthStatus.DEGRADED

    current, stale_at = current_lags([big], T, NOW + timedelta(seconds=2))

    assert current == []
    assert stale_at == big.at
    verdict = replication_status([big], T, NOW + timedelta(seconds=2))
    assert (verdict.status, verdict.reason) == (HealthStatus.UNKNOWN, "no lag sample for 5 min 1 s")


def test_the_replication_verdict_carries_the_figure_behind_it():
    under = replication_status(
        [lag("us-east-1", "us-west-2", 800), lag("eu-central-1", "us-west-2", 300)], T, NOW
    )
    assert (under.lag.source_region, under.lag_seconds, under.lag_text) == ("us-east-1", 0.8, "0.8 s")
    over = replication_status(
        [lag("us-east-1", "us-west-2", 4200), lag("eu-central-1", "us-west-2", 9100, seconds_ago=2)], T, NOW
    )
    assert (over.lag.source_region, over.lag_text) == ("eu-central-1", "9.1 s")
    outage = replication_status(
        [lag("us-east-1", "us-west-2", 9100),
         lag("eu-central-1", "us-west-2", 5000, replicated=False, method=LagMethod.CANARY)], T, NOW
    )
    # the outage sets the figure, not the larger lag of a source that replicates: ">=" the
    # age now of the canary not replicated (5.0 s when measured 1 s ago)
    assert (outage.lag.source_region, outage.lag_text) == ("eu-central-1", "≥ 6.0 s")
    stale = lag("us-east-1", "us-west-2", 10, seconds_ago=600)
    for unmeasured in ([], [stale], [lag("us-east-1", "us-west-2", None)]):
        verdict = replication_status(unmeasured, T, NOW)
        assert (verdict.lag, verdict.lag_seconds, verdict.lag_text) == (None, None, "")
        assert verdict.reason  # says why


def test_old_lag_samples_are_unknown():
    verdict = replication_status([lag("us-east-1", "us-west-2", 10, seconds_ago=600)], T, NOW)
    assert verdict.status == HealthStatus.UNKNOWN
    assert verdict.reason == "no lag sample for 10 min"
    assert replication_status([], T, NOW).reason == "no lag samples"


def test_replication_trouble_degrades_a_serving_region_but_never_takes_it_down():
    healthy = Verdict(HealthStatus.HEALTHY, "200 from /health in 12 ms")
    outage = Verdict(HealthStatus.UNHEALTHY, "replication outage: canary from us-east-1 not replicated")
    assert region_status(healthy, outage) == (HealthStatus.DEGRADED, outage.reason)
    no_lag = Verdict(HealthStatus.UNKNOWN, "no lag samples")
    assert region_status(healthy, no_lag) == (HealthStatus.HEALTHY, healthy.reason)
    down = Verdict(HealthStatus.UNHEALTHY, "2 consecutive 503 from /health")
    assert region_status(down, outage) == (HealthStatus.UNHEALTHY, down.reason)


STACKS = [(1, "eu-central-1", True), (2, "us-east-1", True), (3, "us-west-2", True)]


def app_status(health, lags=(), global_samples=None):
    if global_samples is not None:
        global_samples = {v: replay(s, T) for v, s in global_samples.items()}
    return application_status(7, STACKS, tracks(health), list(lags), T, NOW, global_samples=global_samples)


def test_application_is_healthy_when_every_region_is():
    status = app_status({1: {"v": samples(OK)}, 2: {"v": samples(OK)}, 3: {"v": samples(OK)}})
    assert status.status == HealthStatus.HEALTHY
    assert status.reason == "all 3 regions healthy"
    assert [r.region for r in status.regions] == ["eu-central-1", "us-east-1", "us-west-2"]


def test_application_is_degraded_and_says_which_region_when_some_are_unhealthy():
    status = app_status({1: {"v": samples(OK)}, 2: {"v": samples(OK, FAIL, FAIL, FAIL)},
                         3: {"v": samples(OK)}})
    assert status.status == HealthStatus.DEGRADED
    assert status.reason == (
        "us-east-1 unhealthy: 3 consecutive 503 from /health; serving from eu-central-1, us-west-2"
    )


def test_application_is_unhealthy_when_no_region_serves():
    status = app_status({1: {"v": samples(FAIL, FAIL)}, 2: {"v": samples(TIMEOUT, TIMEOUT)},
                         3: {"v": samples(FAIL, FAIL)}})
    assert status.status == HealthStatus.UNHEALTHY
    assert status.reason.startswith("no healthy region: eu-central-1 unhealthy: 2 consecutive 503")


def test_application_is_unknown_without_data():
    status = app_status({})
    assert status.status == HealthStatus.UNKNOWN
    assert status.reason.startswith("no data from any region")
    no_stacks = application_status(7, [], {}, [], T, NOW)
    assert (no_stacks.status, no_stacks.reason) == (HealthStatus.UNKNOWN, "no stacks")


def test_a_region_without_samples_degrades_the_application():
    status = app_status({1: {"v": samples(OK)}, 2: {"v": samples(OK)},
                         3: {"v": samples(OK, end=NOW - timedelta(seconds=30))}})
    assert status.status == HealthStatus.DEGRADED
    assert status.reason.startswith("us-west-2 unknown: no sample for 30 s")


def test_lag_into_a_region_degrades_the_application_with_the_lag_in_the_reason():
    status = app_status(
        {1: {"v": samples(OK)}, 2: {"v": samples(OK)}, 3: {"v": samples(OK)}},
        lags=[lag("us-east-1", "us-west-2", 4200), lag("us-west-2", "us-east-1", 200)],
    )
    assert status.status == HealthStatus.DEGRADED
    assert "us-west-2 degraded: lag 4.2 s > 2 s threshold from us-east-1" in status.reason
    west = status.regions[2]
    assert west.health.status == HealthStatus.HEALTHY
    assert west.replication.status == HealthStatus.DEGRADED


def test_a_failing_global_endpoint_makes_the_application_unhealthy():
    health = {1: {"v": samples(OK)}, 2: {"v": samples(OK)}, 3: {"v": samples(OK)}}
    status = app_status(health, global_samples={"v": samples(TIMEOUT, TIMEOUT)})
    assert status.status == HealthStatus.UNHEALTHY
    assert status.reason.startswith("global endpoint: 2 consecutive timeouts on the global endpoint")
    served = [Sample(NOW, True, 200, 30.0, "", "us-west-2")]
    fine = app_status(health, global_samples={"v": served})
    assert fine.status == HealthStatus.HEALTHY
    assert fine.served_region == "us-west-2"


def test_a_global_endpoint_answering_again_from_every_vantage_is_degraded_while_it_recovers():
    # Clients failed over: the global endpoint answers again (served by us-west-2), but
    # one success is short of the 2 the hysteresis needs to call it healthy.
    health = {1: {"v": samples(OK)}, 2: {"v": samples(OK, FAIL, FAIL, FAIL)}, 3: {"v": samples(OK)}}
    failing = samples(OK, FAIL, FAIL, end=NOW - timedelta(seconds=2))
    answered = Sample(NOW, True, 200, 30.0, "", "us-west-2")

    status = app_status(health, global_samples={"a": [*failing, answered], "b": [*failing, answered]})

    assert status.global_endpoint.status == HealthStatus.DEGRADED
    assert status.global_endpoint.reason.startswith(
        "clients served again by us-west-2; from every vantage: recovering"
    )
    assert status.status == HealthStatus.DEGRADED
    # while one vantage still fails, the endpoint is unhealthy for its clients
    still = app_status(health, global_samples={"a": [*failing, answered], "b": samples(OK, FAIL, FAIL, FAIL)})
    assert still.global_endpoint.status == HealthStatus.UNHEALTHY
    assert still.status == HealthStatus.UNHEALTHY


def test_choices_carry_label_and_badge_colour():
    assert HealthStatus.UNHEALTHY.label == "Unhealthy"
    assert HealthStatus.UNHEALTHY.colour == "red"
    assert HealthStatus.DEGRADED.badge_class == "badge--orange"
    assert {s.colour for s in HealthStatus} == {"green", "orange", "red", "gray"}


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.4, "0.4 s"), (30, "30 s"), (125, "2 min 5 s"), (120, "2 min"), (12000, "3 h 20 min"),
     (187200, "2 d 4 h")],
)
def test_format_duration(seconds, text):
    assert format_duration(timedelta(seconds=seconds)) == text
