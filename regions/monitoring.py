"""Monitoring service functions: which targets to probe, storing samples, per-minute
rollups, retention, and the status loader the console and the API read.

Everything that touches the database for monitoring lives here; the probe engine
(regions/probes.py) does only HTTP and the status engine (regions/status.py) is pure.
"""

import dataclasses
import statistics
from collections import defaultdict
from datetime import timedelta
from types import MappingProxyType
from typing import NamedTuple

from django.conf import settings
from django.db import IntegrityError, connections, router, transaction
from django.db.models import DateTimeField, Max, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from controlplane import events
from controlplane.models import ServiceHeartbeat
from regions import probes
from regions.models import (
    LAG_STATE_COLUMNS,
    Application,
    HealthRollup,
    HealthSample,
    LagRollup,
    LagSample,
    LagState,
    ProbeClock,
    ProbeTargetKind,
    Stack,
    TargetState,
)
from regions.status import (
    HealthStatus,
    Lag,
    Run,
    Sample,
    Thresholds,
    Track,
    application_status,
    current_lags,
    fold,
    replication_status,
)

MINUTE = timedelta(minutes=1)
# Re-roll this many already-rolled minutes on each run, for samples stored late (a slow
# batch stores its samples up to connect + read timeout after their `at`).
ROLLUP_LOOKBACK_MINUTES = 2


# --- targets -----------------------------------------------------------------------


def default_interval():
    return timedelta(seconds=settings.CONTROLPLANE_PROBE_INTERVAL)


# probe_cycle catches up at most this many missed seconds (after that, everything due
# in them is probed once anyway: each application's interval is at most this long).
MAX_CATCH_UP_TICKS = 60


def claim_ticks(tick):
    """The seconds up to `tick` that no probe_cycle has handled yet (a range, maybe
    empty), claimed for this run: one row of ProbeClock, a conditional UPDATE, so
    concurrent runs never claim the same second. At most MAX_CATCH_UP_TICKS back."""
    tick = int(tick)
    while True:
        clock, created = ProbeClock.objects.get_or_create(name="probes", defaults={"last_tick": tick})
        if created:
            return range(tick, tick + 1)
        if clock.last_tick >= tick:
            return range(0)  # this second is done (beat ran twice in it)
        claimed = ProbeClock.objects.filter(pk=clock.pk, last_tick=clock.last_tick).update(last_tick=tick)
        if claimed:
            return range(max(clock.last_tick + 1, tick - MAX_CATCH_UP_TICKS + 1), tick + 1)


def due_target_keys(ticks):
    """Keys ("s:<stack>", "a:<application>") of the targets due in any of the seconds
    `ticks` (a range of epoch seconds, as `claim_ticks` returns: one second, or several
    when a run catches up).

    Two queries whatever the number of applications and stacks."""
    if not ticks:
        return []
    fallback = default_interval()
    apps = Application.objects.values_list("pk", "probe_interval", "global_endpoint_url")
    due_apps = [
        (pk, url)
        for pk, interval, url in apps
        if any(probes.is_due(pk, interval or fallback, tick) for tick in ticks)
    ]
    if not due_apps:
        return []
    keys = [f"a:{pk}" for pk, url in due_apps if url]
    stack_ids = (
        Stack.objects.filter(application_id__in=[pk for pk, _ in due_apps])
        .exclude(health_url="")
        .values_list("pk", flat=True)
    )
    keys.extend(f"s:{pk}" for pk in stack_ids)
    return keys


def targets_for_keys(keys):
    """ProbeTargets for target keys (unknown or URL-less targets are skipped); two queries."""
    stack_ids, app_ids = [], []
    for key in keys:
        kind, _, pk = key.partition(":")
        (stack_ids if kind == "s" else app_ids).append(int(pk))
    targets = []
    if stack_ids:
        rows = (
            Stack.objects.filter(pk__in=stack_ids)
            .exclude(health_url="")
            .values_list("pk", "application_id", "health_url")
        )
        targets.extend(
            probes.ProbeTarget(url, app_id, pk, ProbeTargetKind.STACK_HEALTH) for pk, app_id, url in rows
        )
    if app_ids:
        rows = (
            Application.objects.filter(pk__in=app_ids)
            .exclude(global_endpoint_url="")
            .values_list("pk", "global_endpoint_url")
        )
        targets.extend(
            probes.ProbeTarget(url, pk, None, ProbeTargetKind.GLOBAL_ENDPOINT) for pk, url in rows
        )
    return targets


def serving_by_vantage(application_id, now, within=timedelta(seconds=60)):
    """{vantage: the latest probe of the application's global endpoint from that vantage
    within `within` of `now`} as (served region or "", ok, at): which region each vantage's
    clients reach now."""
    rows = (
        HealthSample.objects.filter(
            application_id=application_id,
            target=ProbeTargetKind.GLOBAL_ENDPOINT,
            at__gte=now - within,
            at__lte=now,
        )
        .order_by("-at")
        .values_list("vantage", "served_region", "ok", "at")
    )
    latest = {}
    for vantage, region, ok, at in rows:
        latest.setdefault(vantage, (region, ok, at))
    return latest


# --- storing -----------------------------------------------------------------------


# Columns of a HealthSample row as store_results writes them (values tuples, no model
# instances: building 2,000 instances and letting bulk_create adapt each field cost
# about as much CPU as probing the targets).
_SAMPLE_COLUMNS = (
    "stack_id", "application_id", "target", "vantage", "at", "ok", "status_code",
    "latency_ms", "served_region", "error_class",
)


def _sample_rows(results, vantage):
    return [
        (
            r.target.stack_id,
            r.target.application_id,
            r.target.kind,
            vantage,
            r.at,
            r.ok,
            r.status_code,
            r.latency_ms,
            r.served_region,
            r.error_class,
        )
        for r in results
    ]


def _insert_samples(rows):
    """One INSERT of many rows: COPY on PostgreSQL, executemany elsewhere (SQLite)."""
    connection = connections[router.db_for_write(HealthSample)]
    quote = connection.ops.quote_name
    table = quote(HealthSample._meta.db_table)
    columns = ", ".join(quote(c) for c in _SAMPLE_COLUMNS)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with connection.wrap_database_errors, cursor.cursor.copy(
                f"COPY {table} ({columns}) FROM STDIN"
            ) as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            adapt = connection.ops.adapt_datetimefield_value
            placeholders = ", ".join(["%s"] * len(_SAMPLE_COLUMNS))
            cursor.executemany(
                f"INSERT INTO {table} ({columns}) VALUES ({placeholders})",  # noqa: S608 - names from the model
                [(*row[:4], adapt(row[4]), *row[5:]) for row in rows],
            )


def _target_key(stack_id, application_id):
    return f"s:{stack_id}" if stack_id else f"a:{application_id}"


# TargetState's columns for a status.Track, in the order of _track_row.
_TRACK_COLUMNS = (
    "status", "ok_streak", "run_count", "run_same", "run_at", "run_status_code", "run_latency_ms",
    "run_error_class", "last_at", "last_ok", "last_status_code", "last_latency_ms",
    "last_error_class", "last_served_region",
)
_STATE_COLUMNS = ("application_id", "stack_id", "target", "target_key", "vantage", *_TRACK_COLUMNS)
_STATUSES = {status.value: status for status in HealthStatus}


def track_from_row(status, ok_streak, run_count, run_same, run_at, run_status_code, run_latency_ms,
                   run_error_class, last_at, last_ok, last_status_code, last_latency_ms,
                   last_error_class, last_served_region):
    """The status.Track of TargetState values (in _TRACK_COLUMNS order)."""
    run = None
    if run_count:
        failed = Sample(run_at, False, run_status_code, run_latency_ms, run_error_class)
        run = Run(run_count, run_same, failed)
    last = Sample(last_at, last_ok, last_status_code, last_latency_ms, last_error_class, last_served_region)
    return Track(_STATUSES[status], ok_streak, run, last)


def _track_row(track):
    """TargetState values (in _TRACK_COLUMNS order) of a status.Track."""
    run, last = track.run, track.last
    if run is None:
        run_values = (0, True, None, None, None, "")
    else:
        failed = run.latest
        run_values = (
            run.count, run.same, failed.at, failed.status_code, failed.latency_ms, failed.error_class
        )
    return (
        track.status.value, track.ok_streak, *run_values,
        last.at, last.ok, last.status_code, last.latency_ms, last.error_class, last.served_region,
    )


def _update_states(rows, vantage, rerouted=None):
    """Fold the stored rows into the TargetState (status.Track) of their targets from
    `vantage`: one SELECT of the existing states, one upsert (INSERT ... ON CONFLICT DO
    UPDATE). A sample older than its target's latest folded one (a late batch) is
    stored raw but does not move the state back. The applications whose global endpoint
    now serves this vantage from another region than before are added to `rerouted`."""
    thresholds = Thresholds.from_settings()
    by_key = defaultdict(list)
    for row in rows:
        by_key[_target_key(row[0], row[1])].append(row)
    existing = {
        key: track_from_row(*values)
        for key, *values in TargetState.objects.filter(vantage=vantage, target_key__in=list(by_key))
        .values_list("target_key", *_TRACK_COLUMNS)
    }
    states, changed = [], {}
    for key, samples in by_key.items():
        track = start = existing.get(key) or Track()
        if len(samples) > 1:
            samples.sort(key=lambda row: row[4])
        for _, _, _, _, at, ok, code, latency, served, error in samples:
            if track.last is None or at > track.last.at:
                track = fold(track, Sample(at, ok, code, latency, error, served), thresholds)
        if track is not start:
            stack_id, app_id, target = samples[0][:3]
            states.append((app_id, stack_id, target, key, vantage, *_track_row(track)))
            if rerouted is not None and stack_id is None and _served_elsewhere(start, track):
                rerouted.add(app_id)
            if stack_id is not None and _worth_telling(start.status, track.status):
                changed[stack_id] = (start.status, track.status)
    if states:
        _upsert_states(states)
    if changed:
        _publish_status_changes(changed, vantage)


def _worth_telling(before, after):
    """A stack's status moved (after hysteresis: `fold` decides); a first decision
    that it is healthy (unknown -> healthy, at every start) is not news."""
    return before != after and not (before == HealthStatus.UNKNOWN and after == HealthStatus.HEALTHY)


def _publish_status_changes(changed, vantage):
    """Tell the notification channels, once this transaction commits (controlplane/events.py)."""
    names = Stack.objects.filter(pk__in=list(changed)).values_list("pk", "application__name", "region__code")
    for stack_id, application, region in names:
        before, after = changed[stack_id]
        events.publish(
            events.EventKind.REGION_STATUS_CHANGED,
            f"{application} in {region} is {after.label.lower()} (was {before.label.lower()}), "
            f"seen from {vantage}",
            application=application, region=region, stack=stack_id, vantage=vantage,
            status=after.value, previous=before.value,
        )


def _served_elsewhere(before, after):
    """The global endpoint answered this vantage from another region than before."""
    return (
        before.last is not None
        and after.last.served_region != before.last.served_region
        and bool(after.last.served_region or before.last.served_region)
    )


def _upsert_states(states):
    """INSERT ... ON CONFLICT (target_key, vantage) DO UPDATE of TargetState values
    tuples (in _STATE_COLUMNS order). PostgreSQL: COPY into a session-local temporary
    table, then one INSERT ... SELECT (executemany would send and adapt every row
    apart: ~4x the CPU at 2,000 rows); elsewhere (SQLite) one executemany."""
    connection = connections[router.db_for_write(TargetState)]
    quote = connection.ops.quote_name
    table = quote(TargetState._meta.db_table)
    columns = ", ".join(quote(c) for c in _STATE_COLUMNS)
    conflict = (
        f"ON CONFLICT ({quote('target_key')}, {quote('vantage')}) DO UPDATE SET "
        + ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in _TRACK_COLUMNS)
    )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            batch = quote("targetstate_batch")
            # Made by the first batch of a connection (IF NOT EXISTS: a rolled-back
            # transaction takes it with it); its rows go at every commit.
            cursor.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {batch} ON COMMIT DELETE ROWS "  # noqa: S608 - names from the model
                f"AS SELECT {columns} FROM {table} WITH NO DATA"
            )
            with connection.wrap_database_errors, cursor.cursor.copy(
                f"COPY {batch} ({columns}) FROM STDIN"
            ) as copy:
                for row in states:
                    copy.write_row(row)
            # Emptied as it is read: a caller's longer transaction may store again.
            cursor.execute(
                f"WITH rows AS (DELETE FROM {batch} RETURNING {columns}) "  # noqa: S608 - names from the model
                f"INSERT INTO {table} ({columns}) SELECT {columns} FROM rows {conflict}"
            )
        else:  # SQLite stores datetimes as text
            adapt = connection.ops.adapt_datetimefield_value
            run_at, last_at = _STATE_COLUMNS.index("run_at"), _STATE_COLUMNS.index("last_at")
            rows = []
            for row in states:
                row = list(row)
                row[run_at], row[last_at] = adapt(row[run_at]), adapt(row[last_at])
                rows.append(row)
            placeholders = ", ".join(["%s"] * len(_STATE_COLUMNS))
            cursor.executemany(
                f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) {conflict}",  # noqa: S608 - names from the model
                rows,
            )


def store_results(results, vantage, *, rerouted=None):
    """Store ProbeResults as HealthSample rows in one bulk insert, and fold them into
    the TargetState rows of their targets (one SELECT, one upsert) in the same
    transaction; returns the row count. With a set as `rerouted`, adds to it the
    applications whose global endpoint served this vantage from another region than its
    previous probe (the clients' routing changed: regions.tasks.follow_routing_change).

    A stack or application deleted while its probe was in flight would break the
    foreign key; then the rows of targets that still exist are stored."""
    rows = _sample_rows(results, vantage)
    if not rows:
        return 0
    try:
        with transaction.atomic():
            _insert_samples(rows)
            _update_states(rows, vantage, rerouted)
    except IntegrityError:
        stacks = set(Stack.objects.filter(pk__in={r[0] for r in rows if r[0]})
                     .values_list("pk", flat=True))
        apps = set(Application.objects.filter(pk__in={r[1] for r in rows})
                   .values_list("pk", flat=True))
        rows = [r for r in rows if r[1] in apps and (r[0] is None or r[0] in stacks)]
        if rows:
            with transaction.atomic():
                _insert_samples(rows)
                _update_states(rows, vantage, rerouted)
    return len(rows)


def fold_stored_samples(since, until=None):
    """Fold the raw samples stored in (`since`, `until`] (default: up to now) into their
    targets' TargetState rows, oldest first, through the same write path as
    `store_results`; returns (samples read, `until`).

    For samples that reached the table another way than `store_results` (a bulk load, a
    restore), and for rebuilding the states from the raw window: `manage.py
    rebuild_target_states`. Samples no newer than
    a target's latest folded one are skipped, so folding a window twice changes nothing."""
    until = until or timezone.now()
    rows = list(
        HealthSample.objects.filter(at__gt=since, at__lte=until)
        .order_by("at")
        .values_list(*_SAMPLE_COLUMNS)
    )
    by_vantage = defaultdict(list)
    for row in rows:
        by_vantage[row[3]].append(row)
    with transaction.atomic():
        for vantage, vantage_rows in by_vantage.items():
            _update_states(vantage_rows, vantage)
    return len(rows), until


def store_lag_samples(lags, application_id):
    """Store status.Lag tuples measured for one application; returns the row count.

    For the lag samplers (CloudWatch ReplicationLatency, canary items)."""
    rows = [
        LagSample(
            application_id=application_id,
            source_region=lag.source_region,
            receiving_region=lag.receiving_region,
            at=lag.at,
            lag_ms=lag.lag_ms,
            method=lag.method,
            replicated=lag.replicated,
        )
        for lag in lags
    ]
    LagSample.objects.bulk_create(rows, batch_size=2000)  # keeps LagState too
    return len(rows)


# --- rollups -----------------------------------------------------------------------


def floor_minute(when):
    return when.replace(second=0, microsecond=0)


def _health_rollups(minute):
    rows = HealthSample.objects.filter(at__gte=minute, at__lt=minute + MINUTE).values_list(
        "stack_id", "application_id", "target", "vantage", "ok", "latency_ms"
    )
    groups = defaultdict(lambda: [0, 0, []])
    for stack_id, app_id, target, vantage, ok, latency in rows.iterator(chunk_size=5000):
        group = groups[stack_id, app_id, target, vantage]
        group[0] += 1
        if ok:
            group[1] += 1
            if latency is not None:  # latency of successful probes: timeouts would skew it
                group[2].append(latency)
    return [
        HealthRollup(
            stack_id=stack_id,
            application_id=app_id,
            target=target,
            vantage=vantage,
            minute=minute,
            count=count,
            ok_count=ok_count,
            latency_p50_ms=statistics.median(latencies) if latencies else None,
            latency_max_ms=max(latencies) if latencies else None,
            latency_avg_ms=statistics.fmean(latencies) if latencies else None,
        )
        for (stack_id, app_id, target, vantage), (count, ok_count, latencies) in groups.items()
    ]


def _lag_rollups(minute):
    rows = LagSample.objects.filter(at__gte=minute, at__lt=minute + MINUTE).values_list(
        "application_id", "source_region", "receiving_region", "lag_ms", "replicated"
    )
    groups = defaultdict(lambda: [0, 0, []])
    for app_id, source, receiving, lag_ms, replicated in rows.iterator(chunk_size=5000):
        group = groups[app_id, source, receiving]
        group[0] += 1
        if not replicated:
            group[1] += 1
        elif lag_ms is not None:
            group[2].append(lag_ms)
    return [
        LagRollup(
            application_id=app_id,
            source_region=source,
            receiving_region=receiving,
            minute=minute,
            count=count,
            not_replicated_count=lost,
            avg_lag_ms=statistics.fmean(lags) if lags else None,
            max_lag_ms=max(lags) if lags else None,
        )
        for (app_id, source, receiving), (count, lost, lags) in groups.items()
    ]


def _roll(sample_model, rollup_model, build, now, max_minutes):
    end = floor_minute(now)  # minutes before this one are complete
    oldest = now - timedelta(hours=settings.CONTROLPLANE_RAW_RETENTION_HOURS)
    last = rollup_model.objects.aggregate(last=Max("minute"))["last"]
    cursor = max(last - (ROLLUP_LOOKBACK_MINUTES - 1) * MINUTE, oldest) if last else oldest
    done = 0
    while done < max_minutes:
        # Jump over empty minutes: the next sample at or after the cursor.
        at = (
            sample_model.objects.filter(at__gte=cursor, at__lt=end)
            .order_by("at")
            .values_list("at", flat=True)
            .first()
        )
        if at is None:
            break
        minute = floor_minute(at)
        rollups = build(minute)
        with transaction.atomic():
            rollup_model.objects.filter(minute=minute).delete()
            rollup_model.objects.bulk_create(rollups, batch_size=1000)
        done += 1
        cursor = minute + MINUTE
    return done


def rollup_minutes(now, *, max_minutes=180):
    """Aggregate the complete minutes of raw samples before `now` into per-minute rollups.

    Idempotent: each minute is replaced (delete, then insert) in one transaction, and the
    last `ROLLUP_LOOKBACK_MINUTES` rolled minutes are rolled again to take in late
    samples. Resumes after the newest rolled minute, at most `max_minutes` minutes per
    call. Returns {"health": minutes rolled, "lag": minutes rolled}."""
    return {
        "health": _roll(HealthSample, HealthRollup, _health_rollups, now, max_minutes),
        "lag": _roll(LagSample, LagRollup, _lag_rollups, now, max_minutes),
    }


# --- retention ---------------------------------------------------------------------


def _delete_before(model, field, cutoff, batch_size, max_batches):
    deleted = 0
    for _ in range(max_batches):
        ids = list(
            model.objects.filter(**{f"{field}__lt": cutoff}).values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            break
        deleted += model.objects.filter(pk__in=ids).delete()[0]
        if len(ids) < batch_size:
            break
    return deleted


def prune(now, *, batch_size=2000, max_batches=500):
    """Delete raw samples older than the raw window and rollups older than 30 days.

    In batches of `batch_size` rows (short transactions, no long lock), at most
    `max_batches` per table per call; beat calls it again. Returns rows deleted per model."""
    raw_cutoff = now - timedelta(hours=settings.CONTROLPLANE_RAW_RETENTION_HOURS)
    rollup_cutoff = now - timedelta(days=settings.CONTROLPLANE_ROLLUP_RETENTION_DAYS)
    return {
        "HealthSample": _delete_before(HealthSample, "at", raw_cutoff, batch_size, max_batches),
        "LagSample": _delete_before(LagSample, "at", raw_cutoff, batch_size, max_batches),
        "HealthRollup": _delete_before(HealthRollup, "minute", rollup_cutoff, batch_size, max_batches),
        "LagRollup": _delete_before(LagRollup, "minute", rollup_cutoff, batch_size, max_batches),
    }


# --- status loader -----------------------------------------------------------------


class ActiveDrill(NamedTuple):
    """A drill that is changing an application's live AWS configuration on purpose now
    (queued, running or reverting), as the drills app tells monitoring (the hook below):
    its faults are not drift, and the console marks its application and region."""

    pk: int
    state: str  # "queued", "running" or "reverting"
    application_id: int
    region: str  # the code of the region it targets
    url: str  # its page

    def as_dict(self):
        return {"id": self.pk, "state": self.state, "region": self.region, "url": self.url}


class LastPass(NamedTuple):
    """The latest drill that passed on one application and region, as the drills app
    tells monitoring (the hook below)."""

    pk: int
    finished_at: object  # datetime
    url: str  # its page


class Freshness(NamedTuple):
    """How long ago failover was last proven in a region: its last passed drill (None:
    never drilled, or no drill ever passed), that drill's age at `now` and the limit
    (CONTROLPLANE_DRILL_FRESH_DAYS) past which the proof is stale."""

    last_pass: object  # LastPass or None
    age: object  # timedelta or None
    limit: timedelta

    @classmethod
    def at(cls, last_pass, now, limit=None):
        limit = limit or timedelta(days=settings.CONTROLPLANE_DRILL_FRESH_DAYS)
        return cls(last_pass, now - last_pass.finished_at if last_pass else None, limit)

    @property
    def state(self):
        """"fresh", "stale" (older than the limit) or "never" (no passed drill)."""
        if self.last_pass is None:
            return "never"
        return "fresh" if self.age <= self.limit else "stale"

    def as_dict(self):
        last = self.last_pass
        return {
            "state": self.state,
            "last_passed_drill": last.pk if last else None,
            "last_passed_at": last.finished_at.isoformat() if last else None,
            "age_days": round(self.age.total_seconds() / 86400, 2) if last else None,
            "fresh_days": self.limit.days,
        }


@dataclasses.dataclass
class RegionPicture:
    """One region of a Picture: what every page shows for one stack."""

    region: str
    status: object  # status.RegionStatus
    routing: object  # routing.Routing, or None when not observed
    drift: list  # drift.Finding in this region
    drills: list  # ActiveDrill targeting this region
    freshness: object = None  # Freshness (None unless load_picture was asked for it)


@dataclasses.dataclass
class Picture:
    """One application as the console and the API show it: computed status (with AWS's
    own view folded in), routing per region as the clients see it, drift findings, the
    drills changing it now and the current replication lag per region pair
    (status.current_lags) the status was computed from. Every page and the status API
    read this (`load_picture`), so they say the same."""

    application_id: int
    name: str
    architecture: str
    status: object  # status.ApplicationStatus
    routing: dict  # region code -> routing.Routing
    drift: list  # drift.Finding
    drills: list = dataclasses.field(default_factory=list)  # ActiveDrill
    lags: list = dataclasses.field(default_factory=list)  # status.Lag, current, by pair
    freshness: dict = dataclasses.field(default_factory=dict)  # region code -> Freshness

    def regions(self):
        """[RegionPicture] for each of the application's stacks, by region code."""
        return [self._region(region) for region in self.status.regions]

    def region(self, code):
        """The RegionPicture of the application's stack in `code` (None if it has none)."""
        found = next((r for r in self.status.regions if r.region == code), None)
        return self._region(found) if found is not None else None

    def _region(self, status):
        code = status.region
        return RegionPicture(
            code,
            status,
            self.routing.get(code),
            [f for f in self.drift if f.region == code],
            [d for d in self.drills if d.region == code],
            self.freshness.get(code),
        )


def _component_views(app_ids):
    """{application id: [routing.ComponentView]} with their AWS observations (of every
    application when `app_ids` is None). One query (components LEFT JOIN observations)."""
    from regions.aws_health import Obs
    from regions.models import Component, ComponentKind
    from regions.routing import ComponentView

    components = Component.objects.all()
    if app_ids is not None:
        components = components.filter(stack__application_id__in=app_ids)
    rows = (
        components
        .exclude(kind=ComponentKind.FIS_EXPERIMENT_TEMPLATE)
        .order_by("pk")
        .values_list(
            "pk", "stack__application_id", "stack_id", "stack__region__code", "kind", "identifier",
            "name", "config", "config_read_at", "observations__kind", "observations__state",
            "observations__detail", "observations__observed_at",
        )
    )
    views = {}
    for (pk, app_id, stack_id, region, kind, identifier, name, config, read_at,
         o_kind, o_state, o_detail, o_at) in rows:
        view = views.get(pk)
        if view is None:
            view = views[pk] = ComponentView(
                pk, app_id, stack_id, region, kind, identifier, name, config or {}, {}, read_at
            )
        if o_kind:
            view.observations[o_kind] = Obs(o_kind, o_state, o_detail or {}, o_at)
    by_app = defaultdict(list)
    for view in views.values():
        by_app[view.application_id].append(view)
    return by_app


class DeliberateChanges(NamedTuple):
    """What the drills app says about the applications monitoring asks about: `drills`,
    the ActiveDrills changing their live configuration on purpose now (queued, running or
    reverting: their faults are not drift, and the console shows each on its application
    and region); `reverted`, {component id: the latest time a drill reverted a fault on
    it} (live configuration read before that shows the fault the drill has since undone:
    not drift either)."""

    drills: tuple = ()
    reverted: MappingProxyType = MappingProxyType({})

    @property
    def live(self):
        """The ids of the applications with a live drill."""
        return frozenset(drill.application_id for drill in self.drills)


def _nothing_deliberate(application_ids, since):
    return DeliberateChanges()


_deliberate_changes = _nothing_deliberate


def set_deliberate_changes(fn):
    """Register `fn(application_ids, since) -> DeliberateChanges` (the live drills, and
    the reverts since `since`). The drills app registers its query at startup (its
    AppConfig.ready); without one, no change is deliberate and no drill is shown.
    load_picture calls it once (one query), unless it reads the status only."""
    global _deliberate_changes
    _deliberate_changes = fn or _nothing_deliberate


def deliberate_changes(application_ids, now):
    """The registered function's answer, with the reverts that can still matter: live
    configuration is re-read every CONTROLPLANE_LIVE_CONFIG_INTERVAL and observations go
    stale after aws_health.stale_after(), so a revert older than REVERT_HORIZON cannot
    predate the evidence of a finding unless those reads have stopped for that long."""
    return _deliberate_changes(application_ids, now - REVERT_HORIZON)


# A revert older than this is not looked up (see deliberate_changes).
REVERT_HORIZON = timedelta(hours=1)


def _no_passes(application_ids):
    return {}


_last_passes = _no_passes


def set_last_passes(fn):
    """Register `fn(application_ids) -> {(application id, region code): LastPass}`, the
    latest passed drill per application and region (one query). The drills app registers
    it at startup (its AppConfig.ready); without one, no region was ever drilled."""
    global _last_passes
    _last_passes = fn or _no_passes


def _restart_at():
    """The start of the scheduler of every sampler (beat, from its heartbeat row), as a
    subquery: a lag measured before it is from a previous run."""
    return Subquery(
        ServiceHeartbeat.objects.filter(kind=ServiceHeartbeat.Kind.BEAT)
        .order_by("-started_at")
        .values("started_at")[:1]
    )


def latest_lags(application_ids, now, thresholds=None):
    """{application id: [status.Lag]}: the newest lag sample of each (source, receiving)
    pair whatever its method, of the last 2 x CONTROLPLANE_LAG_STALE_SECONDS (older ones
    would only say "no lag sample for ..."), measured since beat last started (samples
    of a previous run are not current: after a restart the status waits for the next
    canary). Every application's when `application_ids` is None. One query.

    What the status, the API and a drill's preflight read; status.current_lags turns
    them into the lag at `now`."""
    thresholds = thresholds or Thresholds.from_settings()
    horizon = now - thresholds.lag_stale * 2
    rows = LagState.objects.filter(
        at__lte=now,
        at__gte=Coalesce(_restart_at(), Value(horizon, output_field=DateTimeField())),
    ).filter(at__gte=horizon)
    if application_ids is not None:
        rows = rows.filter(application_id__in=application_ids)
    rows = rows.values_list(*LAG_STATE_COLUMNS)
    lags = defaultdict(list)
    for app_id, *fields in rows:
        lags[app_id].append(Lag(*fields))
    return lags


def replication_now(application_id, now=None):
    """{receiving region: status.Verdict} of replication into each region of one
    application at `now`, as the status computes it (latest_lags, then
    status.replication_status per receiving region). One query. A drill's preflight
    reads this, so it aborts on the lag the console shows, no other."""
    now = now or timezone.now()
    thresholds = Thresholds.from_settings()
    by_receiving = defaultdict(list)
    for lag in latest_lags([application_id], now, thresholds).get(application_id, []):
        by_receiving[lag.receiving_region].append(lag)
    return {
        region: replication_status(lags, thresholds, now) for region, lags in sorted(by_receiving.items())
    }


def load_picture(now=None, *, application_ids=None, aws_view=True, freshness=False):
    """{application id: Picture} for every application (or the given ones), ordered by
    name. Four queries whatever the number of applications and stacks (applications,
    stacks, the TargetState rows: each target's hysteresis state per vantage, kept by
    store_results, so nothing is replayed here; the latest lag sample per (source,
    receiving) pair), plus two (unless `aws_view` is False: the status from the probes
    and the lag only): the components and their AWS observations, and the drills'
    deliberate changes (the hook above: live drills and reverts); AWS's reasons folded
    into the status (regions.aws_health.apply_observations), routing as the clients see
    it and as AWS does (regions.routing), drift, the drills. With `freshness` (the
    overview and the status API), one more: the last passed drill per region
    (set_last_passes), each region's Freshness at `now`."""
    from regions import aws_health, drift, routing

    now = now or timezone.now()
    base = Thresholds.from_settings()
    every = application_ids is None  # no IN (...) of every id: the whole tables
    apps = Application.objects.order_by("name").values_list(
        "pk", "probe_interval", "global_endpoint_url", "name", "architecture"
    )
    if not every:
        apps = apps.filter(pk__in=application_ids)
    apps = list(apps)
    if not apps:
        return {}
    names = {pk: (name, arch) for pk, _, _, name, arch in apps}
    app_ids = [pk for pk, *_ in apps]
    thresholds = {
        pk: dataclasses.replace(base, interval=interval) if interval else base for pk, interval, *_ in apps
    }

    def of_apps(queryset):
        return queryset if every else queryset.filter(application_id__in=app_ids)

    stacks = defaultdict(list)
    for pk, app_id, region, in_rotation in of_apps(Stack.objects.order_by("region__code")).values_list(
        "pk", "application_id", "region__code", "in_rotation"
    ):
        stacks[app_id].append((pk, region, in_rotation))

    # app -> stack id or "global" -> vantage -> status.Track
    health = defaultdict(lambda: defaultdict(dict))
    for app_id, stack_id, vantage, *track in of_apps(TargetState.objects).values_list(
        "application_id", "stack_id", "vantage", *_TRACK_COLUMNS
    ):
        health[app_id][stack_id or "global"][vantage] = track_from_row(*track)

    lags = latest_lags(None if every else app_ids, now, base)

    components = _component_views(None if every else app_ids) if aws_view else {}
    stale = aws_health.stale_after()
    deliberate = deliberate_changes(app_ids, now) if aws_view else DeliberateChanges()
    passes = _last_passes(app_ids) if freshness else None
    drills = defaultdict(list)
    for drill in deliberate.drills:
        drills[drill.application_id].append(drill)
    result = {}
    for pk, _, global_url, _, _ in apps:
        samples = health.get(pk, {})
        app_lags = lags.get(pk, [])
        app_status = application_status(
            pk,
            stacks.get(pk, []),
            samples,
            app_lags,
            thresholds[pk],
            now,
            global_samples=samples.get("global", {}) if global_url else None,
        )
        views = components.get(pk, [])
        app_status = aws_health.apply_observations(
            app_status, aws_health.observation_reasons(views, now, stale)
        )
        name, architecture = names[pk]
        regions = [region for _, region, _ in stacks.get(pk, [])]
        as_aws_sees_it = (
            routing.routing_state(architecture, regions, views, now=now, stale=stale) if views else {}
        )
        result[pk] = Picture(
            pk,
            name,
            architecture,
            app_status,
            routing.follow_clients(
                as_aws_sees_it,
                {r.region: r.health for r in app_status.regions},
                samples.get("global", {}) if global_url else {},
                thresholds[pk],
                now,
            ),
            drift.find_drift(views, deliberate, now=now, stale=stale),
            drills.get(pk, []),
            current_lags(app_lags, thresholds[pk], now)[0],
            {} if passes is None else {
                region: Freshness.at(passes.get((pk, region)), now) for region in regions
            },
        )
    return result


def load_region(application_id, region):
    """(Picture, RegionPicture) of one application and its stack in `region` (None for
    what does not exist): what the stack page and the drill page show, through
    load_picture like every other page."""
    picture = load_picture(application_ids=[application_id]).get(application_id)
    return picture, picture.region(region) if picture else None
