"""Monitoring storage: per-minute rollups, retention, and the status loader."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from regions import monitoring
from regions.models import (
    Application,
    ErrorClass,
    HealthRollup,
    HealthSample,
    LagMethod,
    LagRollup,
    LagSample,
    ProbeTargetKind,
    Region,
    Stack,
    TargetState,
)
from regions.status import HealthStatus
from tests.regions.samples import load_status, replay, store_samples

NOW = datetime(2026, 11, 29, 12, 0, 30, tzinfo=UTC)
MINUTE = datetime(2026, 11, 29, 11, 58, tzinfo=UTC)


@pytest.fixture
def app(db):
    return Application.objects.create(name="shop", architecture="A")


def make_stacks(app, count):
    stacks = []
    for n in range(count):
        region = Region.objects.create(code=f"us-east-{n + 1}" if n < 9 else f"eu-test-{n}")
        stacks.append(Stack.objects.create(application=app, region=region, health_url=f"http://x/{n}"))
    return stacks


def sample(stack, at, ok=True, latency=10.0, vantage="local", **kw):
    return HealthSample(
        stack=stack,
        application_id=stack.application_id,
        target=ProbeTargetKind.STACK_HEALTH,
        vantage=vantage,
        at=at,
        ok=ok,
        status_code=200 if ok else 503,
        latency_ms=latency,
        error_class="" if ok else ErrorClass.HTTP_5XX,
        **kw,
    )


def test_rollup_aggregates_complete_minutes(app):
    stack = make_stacks(app, 1)[0]
    HealthSample.objects.bulk_create(
        [sample(stack, MINUTE + timedelta(seconds=s), latency=lat) for s, lat in [(0, 10), (2, 30), (4, 20)]]
        + [sample(stack, MINUTE + timedelta(seconds=6), ok=False, latency=2000)]
        + [sample(stack, MINUTE + timedelta(seconds=8), vantage="eu-west-1", latency=50)]
        # the current minute is not complete: not rolled
        + [sample(stack, NOW - timedelta(seconds=1))]
    )

    assert monitoring.rollup_minutes(NOW) == {"health": 1, "lag": 0}

    rollups = {r.vantage: r for r in HealthRollup.objects.all()}
    assert set(rollups) == {"local", "eu-west-1"}
    local = rollups["local"]
    assert (local.minute, local.count, local.ok_count) == (MINUTE, 4, 3)
    assert local.latency_p50_ms == 20  # of successful probes only
    assert local.latency_max_ms == 30
    assert local.latency_avg_ms == 20
    assert (local.stack_id, local.application_id, local.target) == (
        stack.pk, app.pk, ProbeTargetKind.STACK_HEALTH)


def test_rollup_is_idempotent_and_takes_in_late_samples(app):
    stack = make_stacks(app, 1)[0]
    HealthSample.objects.bulk_create([sample(stack, MINUTE + timedelta(seconds=1))])
    monitoring.rollup_minutes(NOW)
    monitoring.rollup_minutes(NOW)
    assert HealthRollup.objects.get().count == 1

    # A slow batch stores a sample of that minute late: the next run re-rolls it.
    HealthSample.objects.bulk_create([sample(stack, MINUTE + timedelta(seconds=59), ok=False)])
    monitoring.rollup_minutes(NOW + timedelta(minutes=1))
    rollup = HealthRollup.objects.get()
    assert (rollup.count, rollup.ok_count) == (2, 1)


def test_rollup_skips_empty_minutes_and_resumes(app):
    stack = make_stacks(app, 1)[0]
    first = MINUTE - timedelta(hours=3)
    HealthSample.objects.bulk_create(
        [sample(stack, first), sample(stack, first + timedelta(minutes=1)), sample(stack, MINUTE)]
    )
    assert monitoring.rollup_minutes(NOW, max_minutes=2)["health"] == 2
    assert monitoring.rollup_minutes(NOW)["health"] == 3  # re-rolls the lookback, then MINUTE
    assert list(HealthRollup.objects.order_by("minute").values_list("minute", flat=True)) == [
        first, first + timedelta(minutes=1), MINUTE]


def test_lag_rollup_counts_not_replicated_canaries(app):
    LagSample.objects.bulk_create(
        [
            LagSample(application=app, source_region="us-east-1", receiving_region="us-west-2",
                      at=MINUTE + timedelta(seconds=s), lag_ms=lag, method=LagMethod.METRIC)
            for s, lag in [(1, 400), (20, 800)]
        ]
        + [LagSample(application=app, source_region="us-east-1", receiving_region="us-west-2",
                     at=MINUTE + timedelta(seconds=30), lag_ms=5000, method=LagMethod.CANARY,
                     replicated=False)]
    )
    assert monitoring.rollup_minutes(NOW) == {"health": 0, "lag": 1}
    rollup = LagRollup.objects.get()
    assert (rollup.count, rollup.not_replicated_count) == (3, 1)
    assert (rollup.avg_lag_ms, rollup.max_lag_ms) == (600, 800)


def test_prune_deletes_raw_samples_after_48_hours_and_rollups_after_30_days(app):
    stack = make_stacks(app, 1)[0]
    HealthSample.objects.bulk_create(
        [sample(stack, NOW - timedelta(hours=49, seconds=s)) for s in range(7)]
        + [sample(stack, NOW - timedelta(hours=47))]
    )
    LagSample.objects.create(application=app, source_region="a", receiving_region="b",
                             at=NOW - timedelta(hours=50), lag_ms=1, method=LagMethod.METRIC)
    for days in (31, 29):
        HealthRollup.objects.create(application=app, stack=stack, target=ProbeTargetKind.STACK_HEALTH,
                                    vantage="local", minute=NOW - timedelta(days=days), count=1,
                                    ok_count=1)

    deleted = monitoring.prune(NOW, batch_size=3)

    assert deleted == {"HealthSample": 7, "LagSample": 1, "HealthRollup": 1, "LagRollup": 0}
    assert HealthSample.objects.count() == 1
    assert HealthRollup.objects.get().minute == NOW - timedelta(days=29)


def fill(app, stacks, outcomes_by_stack, now=NOW):
    rows = []
    for stack, outcomes in zip(stacks, outcomes_by_stack, strict=True):
        for i, ok in enumerate(outcomes):
            at = now - timedelta(seconds=2 * (len(outcomes) - 1 - i))
            rows.append(sample(stack, at, ok=ok))
    store_samples(rows)  # raw rows and the TargetState rows (what load_status reads)


def test_load_status_computes_the_application_picture(app):
    stacks = make_stacks(app, 3)
    fill(app, stacks, [[True] * 5, [True, True, False, False, False], [True] * 30])
    LagSample.objects.create(application=app, source_region="us-east-1", receiving_region="us-east-3",
                             at=NOW - timedelta(seconds=10), lag_ms=4200, method=LagMethod.METRIC)
    # An older lag sample of the same pair is superseded by the latest.
    LagSample.objects.create(application=app, source_region="us-east-1", receiving_region="us-east-3",
                             at=NOW - timedelta(seconds=20), lag_ms=100, method=LagMethod.METRIC)

    status = load_status(NOW)[app.pk]

    assert status.status == HealthStatus.DEGRADED
    regions = {r.region: r for r in status.regions}
    assert regions["us-east-1"].status == HealthStatus.HEALTHY
    assert regions["us-east-2"].status == HealthStatus.UNHEALTHY
    assert regions["us-east-2"].reason == "3 consecutive 503 from /health"
    assert regions["us-east-3"].status == HealthStatus.DEGRADED
    assert regions["us-east-3"].reason == "lag 4.2 s > 2 s threshold from us-east-1"
    assert status.reason.startswith("us-east-2 unhealthy: 3 consecutive 503 from /health")


def test_load_status_says_how_long_a_silent_stack_has_been_silent(app):
    stacks = make_stacks(app, 1)
    fill(app, stacks, [[True]], now=NOW - timedelta(hours=1))
    status = load_status(NOW)[app.pk]
    assert status.status == HealthStatus.UNKNOWN
    assert status.regions[0].reason == "no sample for 1 h"


def test_load_status_honours_the_application_probe_interval(app):
    app.probe_interval = timedelta(seconds=20)
    app.save()
    stacks = make_stacks(app, 1)
    fill(app, stacks, [[True]], now=NOW - timedelta(seconds=40))
    assert load_status(NOW)[app.pk].status == HealthStatus.HEALTHY  # stale after 60 s


def queries_for_load_status():
    with CaptureQueriesContext(connection) as ctx:
        result = load_status(NOW)
    return len(ctx.captured_queries), result


def test_load_status_query_count_does_not_grow_with_stacks(db):
    small = Application.objects.create(name="small", architecture="A")
    fill(small, make_stacks(small, 2), [[True] * 25] * 2)
    count_small, _ = queries_for_load_status()

    big = Application.objects.create(name="big", architecture="B", global_endpoint_url="http://ga/")
    regions = [Region.objects.create(code=f"ap-test-{n}") for n in range(30)]
    stacks = [Stack.objects.create(application=big, region=r, health_url="http://x/") for r in regions]
    fill(big, stacks, [[True] * 25] * 30)
    count_big, result = queries_for_load_status()

    # applications, stacks, target states, lag samples
    assert count_small == count_big == 4
    assert len(result[big.pk].regions) == 30
    # A global endpoint without samples yet does not hide what the regions say.
    assert result[big.pk].status == HealthStatus.HEALTHY
    assert result[big.pk].global_endpoint.status == HealthStatus.UNKNOWN
    assert result[small.pk].status == HealthStatus.HEALTHY


def test_store_results_folds_each_sample_into_the_target_state(app):
    from regions.status import Thresholds

    stack = make_stacks(app, 1)[0]
    rows = [
        sample(stack, NOW - timedelta(seconds=2 * (9 - i)), ok=i < 7, latency=10.0 + i) for i in range(10)
    ]
    for row in rows[:4]:  # one batch per probe cycle
        assert store_samples([row]) == 1
    store_samples(reversed(rows[4:]))  # a batch holding several samples of a target, any order

    state = TargetState.objects.get()
    assert (state.target_key, state.vantage, state.last_at) == (f"s:{stack.pk}", "local", NOW)
    assert (state.status, state.ok_streak, state.run_count, state.run_same) == ("unhealthy", 0, 3, True)
    assert (state.run_status_code, state.run_error_class, state.run_latency_ms) == (503, "http_5xx", 19.0)
    # the same state as replaying every sample at once
    every = replay([monitoring.Sample(r.at, r.ok, r.status_code, r.latency_ms, r.error_class) for r in rows],
                   Thresholds())  # the oracle: every sample folded at once
    stored = TargetState.objects.values_list(*monitoring._TRACK_COLUMNS).get()
    assert monitoring.track_from_row(*stored) == every
    # read from the state alone: applications, stacks, target states, lag samples
    count, result = queries_for_load_status()
    assert count == 4
    assert result[app.pk].regions[0].reason == "3 consecutive 503 from /health"
    assert HealthSample.objects.count() == 10


def test_a_late_sample_is_stored_but_does_not_move_the_state_back(app):

    stack = make_stacks(app, 1)[0]
    store_samples([sample(stack, NOW - timedelta(seconds=s), ok=False) for s in (2, 0)])
    store_samples([sample(stack, NOW - timedelta(seconds=4), ok=True)])  # a slow batch, stored late

    state = TargetState.objects.get()
    assert (state.status, state.run_count, state.last_at) == ("unhealthy", 2, NOW)
    assert HealthSample.objects.count() == 3
    assert load_status(NOW)[app.pk].regions[0].reason == "2 consecutive 503 from /health"


def test_a_target_without_a_state_row_reads_no_samples_yet(app):
    # Samples written other than by store_results are not the status: only the state rows.
    stack = make_stacks(app, 1)[0]
    HealthSample.objects.bulk_create([sample(stack, NOW - timedelta(seconds=s), ok=False) for s in (0, 2, 4)])
    count, result = queries_for_load_status()
    assert count == 4
    assert result[app.pk].regions[0].status == HealthStatus.UNKNOWN
    assert result[app.pk].regions[0].reason == "no samples yet"


def test_due_target_keys_and_targets_for_keys(app, django_assert_max_num_queries):
    stacks = make_stacks(app, 3)
    Stack.objects.filter(pk=stacks[2].pk).update(health_url="")
    app.global_endpoint_url = "http://global/"
    app.probe_interval = timedelta(seconds=1)
    app.save()
    with django_assert_max_num_queries(2):
        keys = monitoring.due_target_keys(range(12345, 12346))
    assert sorted(keys) == sorted([f"a:{app.pk}", f"s:{stacks[0].pk}", f"s:{stacks[1].pk}"])
    with django_assert_max_num_queries(2):
        targets = monitoring.targets_for_keys(keys)
    assert {t.url for t in targets} == {"http://global/", "http://x/0", "http://x/1"}


def test_the_state_counts_whole_runs_of_failures(app):
    # 2 failures down, 2 successes up (settings); the state is folded sample by sample,
    # so a run of failures is counted whole, however long.
    stacks = make_stacks(app, 3)
    fill(app, stacks, [
        [True] * 20 + [False] * 12,  # a long outage
        [True] * 20 + [False] * 5,
        [True] * 20 + [False] * 4 + [True],  # recovering
    ])

    regions = {r.region: r for r in load_status(NOW)[app.pk].regions}

    assert regions["us-east-1"].status == HealthStatus.UNHEALTHY
    assert regions["us-east-1"].reason == "12 consecutive 503 from /health"
    assert regions["us-east-2"].reason == "5 consecutive 503 from /health"
    assert regions["us-east-3"].status == HealthStatus.UNHEALTHY
    assert regions["us-east-3"].reason == "recovering (1 of 2 successes) after 4 consecutive 503 from /health"


def test_samples_stored_raw_are_folded_into_the_same_states_as_store_results_makes(app):
    # Two identical histories: one through store_results (the probe workers' path),
    # one bulk-inserted raw (a restore) and folded afterwards.
    stacks = make_stacks(app, 2)
    history = [True, True, False, False, False, True]
    at = [NOW - timedelta(seconds=2 * (len(history) - n)) for n in range(len(history))]
    store_samples([sample(stacks[0], t, ok=ok) for t, ok in zip(at, history, strict=True)])
    HealthSample.objects.bulk_create([sample(stacks[1], t, ok=ok) for t, ok in zip(at, history, strict=True)])
    assert not TargetState.objects.filter(stack=stacks[1]).exists()

    read, until = monitoring.fold_stored_samples(NOW - timedelta(minutes=1), NOW)

    assert (read, until) == (2 * len(history), NOW)
    columns = ("status", "ok_streak", "run_count", "run_same", "run_at", "run_status_code",
               "last_at", "last_ok", "last_status_code")
    by_probe_path, folded = (TargetState.objects.filter(stack=s).values(*columns).get() for s in stacks)
    assert folded == by_probe_path
    assert (folded["status"], folded["run_count"], folded["last_ok"]) == ("unhealthy", 3, True)
    # Folding the same window again moves nothing back or forward.
    monitoring.fold_stored_samples(NOW - timedelta(minutes=1), NOW)
    assert TargetState.objects.filter(stack=stacks[1]).values(*columns).get() == folded


def test_rebuild_target_states_folds_samples_that_arrived_around_the_probes(app):
    from django.core.management import call_command
    from django.core.management.base import CommandError
    from django.utils import timezone

    stack = make_stacks(app, 1)[0]
    now = timezone.now()
    HealthSample.objects.bulk_create(  # a restore: raw rows, no TargetState
        [sample(stack, now - timedelta(seconds=2 * n), ok=False) for n in range(3)]
    )
    assert not TargetState.objects.exists()
    call_command("rebuild_target_states", minutes=1)
    state = TargetState.objects.get(stack=stack)
    assert (state.status, state.run_count) == ("unhealthy", 3)
    with pytest.raises(CommandError, match="at most a week"):
        call_command("rebuild_target_states", minutes=0)
