"""The drill runner: preflight, steady state, inject, observe, revert, verify, outcome.

`run(drill_id)` is called by the Celery task `experiments.tasks.run_drill` with the id
only. It claims the drill with a conditional UPDATE (queued -> running); a redelivered
message or a second worker finds it no longer queued and returns. Every mutating AWS
call is preceded by its ledger row (`ledger.inject` writes the Compensation first), and
the runner beats a heartbeat while the fault is on: if the worker dies, the reaper
(`experiments.reaper`) reverts the ledger and ends the drill as errored.

The figures come from what a client sees through the global endpoint (the observer)
and from the runner's own probes of the faulted region, so they do not depend on the
monitoring pipeline being up:

- time_to_detect: injection -> the region looks failed to the control plane (its
  /health failed `CONTROLPLANE_STATUS_FAILURES` times in a row, or Route 53's checkers
  report its health check unhealthy);
- time_to_failover: injection -> first success served by another region;
- time_to_recover: revert -> first success served by the region again;
- client error rate and p95 latency while the fault was on; replication lag from the
  latest lag samples during and after.
"""

import logging
import os
import socket
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from controlplane import aws
from controlplane.celery import app as celery_app
from controlplane.celery import probe_queue
from experiments import faults, ledger, plans, services
from experiments.models import (
    APPROVAL_TTL,
    OPEN_COMPENSATION_STATES,
    RUNNING_STATES,
    Compensation,
    Drill,
    DrillState,
    DrillStep,
    StepKind,
)
from experiments.observer import (
    OBSERVE_DRILL_TASK,
    GlobalEndpointObserver,
    RemoteSamples,
    p95,
    vantage_figures,
)
from experiments.replication import ReplicationWatcher, lag_at, lag_figures
from experiments.scenarios import REPLICATION_HYPOTHESIS
from regions import monitoring, probes
from regions.aws_health import route53_verdict
from regions.models import ComponentKind, LagSample, Stack
from regions.status import HealthStatus, Sample, Thresholds, Track, describe_sample, fold

log = logging.getLogger(__name__)

# Fewer requests than this through the global endpoint while the fault was on, and the
# drill cannot say how clients fared: inconclusive.
MIN_REQUESTS_DURING = 5
# Steady-state checks measured on the observers' requests (one verdict per vantage).
CLIENT_CHECKS = ("global_success_rate", "global_p95_latency_ms")
# The figures kept per vantage (figures["vantages"]).
VANTAGE_FIGURES = (
    "time_to_failover", "time_to_recover", "error_rate", "p95_latency_ms", "requests_during",
    "served_by_target_before", "regions_during",
)


class Stop(Exception):
    """The drill ends before or instead of injecting: `state` and `reason` say how."""

    def __init__(self, state, reason):
        super().__init__(reason)
        self.state, self.reason = state, reason


class Lost(Exception):
    """The reaper took the drill over (this worker stopped beating in time)."""


def worker_name():
    return f"{socket.gethostname()}:{os.getpid()}"


def _probe(url, timeout=2.0):
    """One probe of a /health URL by the monitoring's engine (`regions.probes`): the same
    HTTP client, error classes and verdict (a 2xx whose body says "unhealthy" is not
    healthy) as the status. -> status.Sample"""
    # concurrency: the size of the connection pool this shares with the runner's other
    # threads (the region watcher probes while the runner checks the others)
    (result,) = probes.run_probes(
        [probes.ProbeTarget(url, 0, None)], concurrency=8,
        connect_timeout=min(1.0, timeout), read_timeout=timeout,
    )
    return Sample(result.at, result.ok, result.status_code, result.latency_ms, result.error_class)


def _http_ok(url, timeout=2.0):
    """(healthy, what it answered in words) for one probe of a /health URL."""
    sample = _probe(url, timeout)
    return sample.ok, describe_sample(sample)


def _healthy_confirmed(url, attempts, pause=0.5):
    """(healthy, what it answered in words): probe `url`, `pause` seconds apart, folding
    each answer through the status engine's hysteresis (`status.fold`) until it decides:
    the first success makes the region healthy; `attempts` failures in a row
    (CONTROLPLANE_STATUS_FAILURES, as the status) make it unhealthy. One lost packet does
    not abort a drill, and a region that is down still does."""
    thresholds = Thresholds(failures=attempts, successes=1)
    track = Track()
    while True:
        sample = _probe(url)
        track = fold(track, sample, thresholds)
        if track.status != HealthStatus.UNKNOWN:
            return track.status == HealthStatus.HEALTHY, describe_sample(sample)
        time.sleep(pause)


class RegionWatcher:
    """Watches the faulted region on a thread and records when it first looked failed,
    and who saw it: the runner's probes of its /health, at the status engine's interval
    and folded through its hysteresis (`status.fold`, the Thresholds the status API
    uses: so the drill's time to detect is the status's), and, for a Route 53 health
    check, Route 53's own checkers (asked once a second through the region's client)."""

    def __init__(self, health_url, *, region, thresholds, health_check_id=None, tick=0.25):
        self.health_url = health_url
        self.region = region
        self.thresholds = thresholds
        self.health_check_id = health_check_id
        self.tick = tick
        self.detected_at = None
        self.detected_by = ""
        self.armed_at = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drill-region-watcher", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def arm(self):
        """Start looking for the failure (right after injection)."""
        self.armed_at = time.monotonic()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)

    def _route53_unhealthy(self):
        route53 = aws.client_for_region("route53", self.region)
        observations = route53.get_health_check_status(HealthCheckId=self.health_check_id)[
            "HealthCheckObservations"
        ]
        # Route 53's rule, as the status API applies it (regions.aws_health).
        state, detail = route53_verdict(observations)
        if state != "unhealthy":
            return ""
        return f"{detail['checkers_total'] - detail['healthy_checkers']} of {detail['checkers_total']}"

    def _run(self):
        # The region was healthy before the fault (preflight and steady state said so).
        track = Track(HealthStatus.HEALTHY)
        interval = self.thresholds.interval.total_seconds()
        next_probe = next_route53 = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if self.armed_at is not None and self.detected_at is None:
                if self.health_url and now >= next_probe:
                    next_probe = now + interval
                    track = fold(track, _probe(self.health_url), self.thresholds)
                    if track.status == HealthStatus.UNHEALTHY:
                        self.detected_at = time.monotonic()
                        self.detected_by = (
                            f"probes from {settings.CONTROLPLANE_VANTAGE}: /health failed "
                            f"{track.run.count} times in a row"
                        )
                if self.detected_at is None and self.health_check_id and now >= next_route53:
                    next_route53 = now + 1.0
                    try:
                        if failing := self._route53_unhealthy():
                            self.detected_at = time.monotonic()
                            self.detected_by = f"Route 53's checkers ({failing} reporting failure)"
                    except (aws.BotoCoreError, aws.ClientError) as exc:
                        log.warning("route53 status during drill: %s", exc)
            self._stop.wait(self.tick)


class DrillRun:
    def __init__(self, drill):
        self.drill = drill
        self.scenario = drill.scenario
        self.application = drill.application
        self.region = drill.region
        self.worker = worker_name()
        self.figures = {}
        self.observers = {}  # vantage -> GlobalEndpointObserver (own vantage) or RemoteSamples
        self.missing = {}  # vantage -> why it is not observed
        # Remote vantages stamp samples with wall-clock time; this maps them onto ours.
        self.clock_offset = time.time() - time.monotonic()
        self.watcher = None
        self.replication = None  # ReplicationWatcher, when the scenario names replication
        # other_region_unhealthy: when the other regions were last probed, and their tracks
        self._others_checked = 0.0
        self._other_tracks = {}
        # Everything below comes from the approved, hashed plan (plans.make_plan), never
        # from the scenario row: preflight refuses a plan that no longer hashes the same.
        plan = drill.plan or {}
        self.hypothesis = plan.get("hypothesis") or {}
        self.stop_conditions = plan.get("stop_conditions") or []
        self.max_duration = timedelta(seconds=plan.get("max_duration_seconds") or 0)
        self.vantages = plan.get("vantages") or [settings.CONTROLPLANE_VANTAGE]
        self.fault_kinds = plan.get("fault_kinds") or []
        self.injected_at = None
        self.reverted_at = None
        self._last_beat = 0.0

    # -- bookkeeping -----------------------------------------------------------------

    def step(self, kind, message, **data):
        DrillStep.add(self.drill.pk, kind, message, data)

    def beat(self, force=False):
        """Heartbeat; False when this worker no longer owns the drill (the reaper took it)."""
        now = time.monotonic()
        if not force and now - self._last_beat < settings.DRILL_HEARTBEAT_SECONDS:
            return True
        self._last_beat = now
        owned = Drill.objects.filter(
            pk=self.drill.pk, state__in=RUNNING_STATES, worker=self.worker
        ).update(heartbeat_at=timezone.now())
        return owned == 1

    def samples(self):
        """{vantage: [Observation, ...]} as far as each observer has reported."""
        return {vantage: source.snapshot() for vantage, source in self.observers.items()}

    def _from(self, vantage):
        """' (observer at X)' when there is more than one vantage, else ''."""
        return f" (observer at {vantage})" if len(self.observers) > 1 else ""

    def start_observers(self, url):
        """Observe `url` from every vantage: this worker's own in a thread here, the others
        on their probe workers (experiments.tasks.observe_drill, sent by name)."""
        period = settings.DRILL_OBSERVER_PERIOD
        own = settings.CONTROLPLANE_VANTAGE
        vantages = self.vantages
        until = time.time() + (
            settings.DRILL_STEADY_STATE_SECONDS
            + self.max_duration.total_seconds()
            + settings.DRILL_RECOVERY_TIMEOUT_SECONDS
            + settings.DRILL_REVERT_GRACE_SECONDS
            + 60
        )
        for vantage in vantages:
            if vantage == own:
                self.observers[vantage] = GlobalEndpointObserver(url, period=period, vantage=vantage).start()
                continue
            try:
                celery_app.send_task(
                    OBSERVE_DRILL_TASK,
                    args=(self.drill.pk, vantage, url, period, until),
                    queue=probe_queue(vantage),
                    expires=settings.DRILL_STEADY_STATE_SECONDS + 10,
                )
            except Exception as exc:  # the broker is down: this vantage goes unobserved
                self.missing[vantage] = f"its observer could not be sent ({type(exc).__name__}: {exc})"
                continue
            self.observers[vantage] = RemoteSamples(self.drill.pk, vantage, offset=self.clock_offset)

    def publish_figures(self):
        Drill.objects.filter(pk=self.drill.pk).update(figures=self.figures)

    def stop_requested(self):
        """The reason to stop now (abort or halt), or ''."""
        row = Drill.objects.filter(pk=self.drill.pk).values("abort_requested_at", "abort_reason").first()
        if row and row["abort_requested_at"]:
            return row["abort_reason"] or "aborted"
        if services.is_halted():
            return f"halted: {services.halt_state().reason}"
        return ""

    # -- phases ------------------------------------------------------------------------

    def preflight(self):
        now = timezone.now()
        if services.is_halted():
            raise Stop(DrillState.ABORTED, "Preflight: drills are halted")
        approval = services.valid_approval(self.drill, now)
        if approval is None:
            raise Stop(DrillState.ABORTED, "Preflight: no valid approval for this plan (expired or changed)")
        if approval.created_at - self.drill.requested_at > APPROVAL_TTL:
            # Checked here too, not only when approving: whatever wrote the approval.
            raise Stop(
                DrillState.ABORTED,
                f"Preflight: approved {approval.created_at - self.drill.requested_at} after the request, "
                f"which had expired after {APPROVAL_TTL}",
            )
        plan, digest = plans.make_plan(self.scenario, self.application, self.region)
        if digest != self.drill.plan_hash or faults.plan_hash(self.drill.plan) != self.drill.plan_hash:
            approved = self.drill.plan or {}
            changed = sorted(k for k in set(plan) | set(approved) if plan.get(k) != approved.get(k))
            raise Stop(
                DrillState.ABORTED,
                "Preflight: the plan changed since it was approved "
                f"({', '.join(changed) or 'the stored plan no longer matches its hash'} differ); "
                "request the drill again"
                + (
                    " (the vantages come from CONTROLPLANE_PROBE_VANTAGES: the console and the "
                    "workers must share it)"
                    if "vantages" in changed
                    else ""
                ),
            )
        if self.drill.window_start and now < self.drill.window_start:
            raise Stop(
                DrillState.ABORTED,
                f"Preflight: before the window ({self.drill.window_start:%Y-%m-%d %H:%M} UTC)",
            )
        if self.drill.window_end and now > self.drill.window_end:
            raise Stop(
                DrillState.ABORTED,
                f"Preflight: after the window ({self.drill.window_end:%Y-%m-%d %H:%M} UTC)",
            )
        other_live = (
            Drill.objects.filter(
                application=self.application, state__in=RUNNING_STATES
            )
            .exclude(pk=self.drill.pk)
            .values_list("pk", flat=True)
            .first()
        )
        if other_live:
            raise Stop(
                DrillState.ABORTED, f"Preflight: drill #{other_live} is running on {self.application.name}"
            )
        others = list(
            Stack.objects.filter(application=self.application)
            .exclude(region=self.region)
            .select_related("region")
        )
        serving = []
        attempts = max(1, settings.CONTROLPLANE_STATUS_FAILURES)
        for stack in others:
            ok, detail = (
                _healthy_confirmed(stack.health_url, attempts)
                if stack.health_url
                else (False, "no health URL")
            )
            if not ok:
                raise Stop(DrillState.ABORTED, f"Preflight: {stack.region.code} is not healthy ({detail})")
            if stack.in_rotation:
                serving.append(stack.region.code)
        if not serving:
            raise Stop(
                DrillState.ABORTED,
                "Preflight: no other region is in rotation, so failing this one would take the "
                "application down (at least one region must stay in rotation)",
            )
        # The lag the status shows now (regions.monitoring.replication_now), no other.
        for region, verdict in monitoring.replication_now(self.application.pk, now).items():
            if verdict.status in (HealthStatus.DEGRADED, HealthStatus.UNHEALTHY):
                raise Stop(DrillState.ABORTED, f"Preflight: replication into {region}: {verdict.reason}")
        self.step(StepKind.NOTE, f"Preflight passed: {', '.join(serving)} healthy and in rotation")

    def needs_replication(self):
        """The scenario names replication: a check, a stop condition, a hypothesis figure,
        or the fault pauses it."""
        return (
            faults.FaultKind.PAUSE_REPLICATION in self.fault_kinds
            or any(c.get("check") == "replication_lag_ms" for c in self.hypothesis.get("steady_state", []))
            or any(c.get("metric") == "replication_lag" for c in self.stop_conditions)
            or any(key in self.hypothesis for key in REPLICATION_HYPOTHESIS)
        )

    def steady_state(self):
        url = self.application.global_endpoint_url
        if not url:
            raise Stop(DrillState.ABORTED, f"{self.application.name} has no global endpoint URL to observe")
        self.start_observers(url)
        if self.needs_replication():
            self.replication = ReplicationWatcher.for_region(self.application, self.region)
            if self.replication is None:
                raise Stop(
                    DrillState.ABORTED,
                    f"The scenario measures replication into {self.region.code}, but "
                    f"{self.application.name} has no DynamoDB replica there and in another region",
                )
            self.replication.start()
        seconds = settings.DRILL_STEADY_STATE_SECONDS
        remote = any(isinstance(o, RemoteSamples) for o in self.observers.values())
        # Remote observers start when their probe worker takes the task.
        patience = seconds + (10 if remote else 5)
        started = time.monotonic()
        # At least the window, and at least a few answers from each vantage (the endpoint
        # may be slow), but never longer than the window plus the observers' timeouts.
        while time.monotonic() - started < seconds or (
            any(len(s) < 3 for s in self.samples().values()) and time.monotonic() - started < patience
        ):
            self.beat()
            if reason := self.stop_requested():
                raise Stop(DrillState.ABORTED, reason)
            time.sleep(0.1)
        by_vantage = self.samples()
        for vantage, samples in by_vantage.items():
            if not samples and isinstance(self.observers[vantage], RemoteSamples):
                self.missing[vantage] = (
                    f"no request from its observer within {patience:g} s (is a worker consuming "
                    f"{probe_queue(vantage)}?)"
                )
                del self.observers[vantage]
        for vantage, why in self.missing.items():
            self.step(StepKind.NOTE, f"Not observed from {vantage}: {why}")
        if not self.observers:
            raise Stop(DrillState.ABORTED, "No observer of the global endpoint answered from any vantage")
        self.figures["vantages_missing"] = dict(self.missing)
        by_vantage = self.samples()
        checks = list(self.hypothesis.get("steady_state", []))
        if not any(c.get("check") == "global_success_rate" for c in checks):
            # Clients must be served before a fault, whatever else the hypothesis says.
            checks.append({"check": "global_success_rate", "min_percent": 99})
        for check in checks:
            if check.get("check") in CLIENT_CHECKS:
                # Clients at every vantage must see the steady state.
                results = [
                    (ok, f"{detail}{self._from(vantage)}")
                    for vantage, samples in by_vantage.items()
                    for ok, detail in [self._steady_check(check, samples)]
                ]
            else:
                results = [self._steady_check(check, [])]
            for ok, detail in results:
                if not ok:
                    raise Stop(DrillState.ABORTED, f"Steady state not met before injecting: {detail}")
            for _ok, detail in results:
                self.step(StepKind.OBSERVATION, f"Steady state: {detail}", check=check)

    def _steady_check(self, check, samples):
        """(holds, what was measured in words) for one steady-state check."""
        name = check.get("check")
        if name == "global_success_rate":
            needed = float(check.get("min_percent", 99))
            ok = sum(1 for s in samples if s.ok)
            rate = 100.0 * ok / len(samples) if samples else 0.0
            return rate >= needed, (
                f"{rate:.1f} % of {len(samples)} requests succeeded through the global endpoint "
                f"(need {needed:g} %)"
            )
        if name == "global_p95_latency_ms":
            limit = float(check["max_ms"])
            value = p95([s.latency_ms for s in samples if s.ok])
            if value is None:
                return False, "p95 latency not measurable: no request succeeded"
            return value <= limit, (
                f"p95 latency {value:.0f} ms through the global endpoint (at most {limit:g} ms)"
            )
        if name == "regions_healthy":
            attempts = max(1, settings.CONTROLPLANE_STATUS_FAILURES)
            for stack in Stack.objects.filter(application=self.application).select_related("region"):
                ok, detail = (
                    _healthy_confirmed(stack.health_url, attempts)
                    if stack.health_url
                    else (False, "no health URL")
                )
                if not ok:
                    return False, f"{stack.region.code} is not healthy ({detail})"
            return True, "every region of the application is healthy"
        if name == "replication_lag_ms":
            limit = float(check["max_ms"])
            if not self.replication.wait_for_arrival(limit / 1000 + 3):
                return False, (
                    f"no canary write reached {self.region.code} within {limit / 1000 + 3:g} s "
                    f"(replication lag above {limit:g} ms)"
                )
            value = self.replication.lag_now_ms()
            return value <= limit, (
                f"replication lag into {self.region.code} {value:.0f} ms (at most {limit:g} ms)"
            )
        raise ValueError(f"unknown steady-state check {name!r}")  # validation refuses it

    def _max_failover_seconds(self):
        """Seconds the hypothesis allows for failover; 0 means no failover is expected
        (e.g. pausing replication: the region keeps serving, the drill measures lag)."""
        value = self.hypothesis.get("max_time_to_failover_seconds")
        if value is None:
            return self.max_duration.total_seconds()
        return float(value)

    def inject(self):
        deadline = (
            timezone.now()
            + self.max_duration
            + timedelta(seconds=settings.DRILL_REVERT_GRACE_SECONDS)
        )
        targets = [
            (faults.get_fault(kind), faults.Target.from_dict(data))
            for kind, data in zip(
                self.drill.plan["fault_kinds"], self.drill.plan["target_snapshots"], strict=True
            )
        ]
        health_check = next(
            (t.identifier for _, t in targets if t.kind == ComponentKind.ROUTE53_HEALTH_CHECK), None
        )
        if all(fault.nothing_to_detect for fault, _ in targets):
            self.figures["detect_note"] = targets[0][0].nothing_to_detect
        stack = Stack.objects.filter(application=self.application, region=self.region).first()
        self.watcher = RegionWatcher(
            stack.health_url if stack else "",
            region=self.region,
            thresholds=Thresholds.from_settings(self.application.probe_interval),
            health_check_id=health_check,
        ).start()
        for fault, target in targets:
            step = DrillStep.add(
                self.drill.pk,
                StepKind.INJECT,
                f"{fault.label}: {target.name or target.identifier}",
                {"target": target.identity()},
            )
            compensation = ledger.inject(
                self.drill, fault, target, deadline=deadline, step=step, worker=self.worker
            )
            if self.injected_at is None:
                # Every figure's clock starts when the first fault call went out.
                self.injected_at = compensation.called_at_monotonic
                self.figures["injected_at"] = compensation.called_at.isoformat()
                self.watcher.arm()
        self.publish_figures()

    def observe(self):
        """Until failover has held for a while, a stop condition trips, an abort or halt
        arrives, or time runs out. Returns (state if the drill should end as it, reason)."""
        hold = settings.DRILL_HOLD_SECONDS
        max_failover = self._max_failover_seconds()
        max_total = self.max_duration.total_seconds()
        stop_conditions = self.stop_conditions
        target = self.region.code
        failover_at = None
        announced = set()
        last_publish = 0.0
        expects_failover = max_failover > 0
        while True:
            now = time.monotonic()
            if not self.beat():
                raise Lost()
            if reason := self.stop_requested():
                return DrillState.ABORTED, reason
            by_vantage = self.samples()
            if failover_at is None:
                # The same computation as the figures (vantage_figures), so the timeline
                # never says "failed over" where the figures say "not measured".
                per, overall = vantage_figures(by_vantage, region=target, injected_at=self.injected_at)
                for vantage, fig in per.items():
                    ttf = fig["time_to_failover"]
                    if ttf is not None and vantage not in announced:
                        announced.add(vantage)
                        served = next(s.region for s in by_vantage[vantage] if s.at == self.injected_at + ttf)
                        self.step(
                            StepKind.OBSERVATION,
                            f"Failed over: {served} served {ttf:.1f} s after injection{self._from(vantage)}",
                            vantage=vantage,
                        )
                if overall["time_to_failover"] is not None:
                    failover_at = self.injected_at + overall["time_to_failover"]
            for condition in stop_conditions:
                tripped = self._tripped(condition, by_vantage, now)
                if tripped:
                    self.step(StepKind.STOP_CONDITION, tripped, condition=condition)
                    return DrillState.FAILED, f"Stop condition: {tripped}"
            if now - last_publish >= 1.0:
                last_publish = now
                self._update_figures(by_vantage)
            if failover_at is not None and now - failover_at >= hold:
                return None, ""
            if not expects_failover and now - self.injected_at >= hold:
                return None, "held the fault; no failover expected by the hypothesis"
            if expects_failover and failover_at is None and now - self.injected_at > max_failover:
                if not overall["served_by_target_before"]:
                    return DrillState.INCONCLUSIVE, self._unmeasurable()
                return DrillState.FAILED, f"No failover within {max_failover:g} s (hypothesis)"
            if now - self.injected_at > max_total:
                return DrillState.FAILED, f"Maximum duration {max_total:g} s reached"
            time.sleep(0.1)

    def _unmeasurable(self):
        vantages = list(self.observers)
        who = (
            f"the observers ({', '.join(vantages)}) to {self.region.code} before the fault"
            if len(vantages) > 1
            else f"the observer to {self.region.code} before the fault"
            + "".join(f" (vantage {v})" for v in vantages)
        )
        missing = "".join(f"; not observed from {v}: {why}" for v, why in self.missing.items())
        return f"the global endpoint never sent {who}, so failover could not be measured{missing}"

    def _tripped(self, condition, by_vantage, now):
        """The reason `condition` trips now, or ''. Each is evaluated over the last
        `for_seconds` (none before that much time has passed since injection); the
        client-side ones per vantage (one vantage over the limit trips it)."""
        metric = condition.get("metric")
        if metric == "other_region_unhealthy":
            return self._other_region_unhealthy(now)
        window = float(condition.get("for_seconds", 0))
        if now - self.injected_at < window:
            return ""
        if metric == "replication_lag":
            # Above the threshold at every marker moment of the window: the lag now,
            # and `for_seconds` ago, both above (the lag of the oldest unreplicated write
            # only grows while replication is stuck).
            limit = float(condition["threshold_ms"])
            markers = self.replication.snapshot()
            values = [lag_at(markers, t) for t in (now - window, now)]
            if all(v is not None and v > limit for v in values):
                return (
                    f"replication lag into {self.region.code} {values[-1]:.0f} ms > {limit:g} ms "
                    f"for {window:g} s"
                )
            return ""
        for vantage, samples in by_vantage.items():
            recent = [s for s in samples if s.at >= max(self.injected_at, now - max(window, 1.0))]
            if not recent:
                continue
            if metric == "global_error_rate":
                threshold = float(condition.get("threshold_percent", 50))
                rate = 100.0 * sum(1 for s in recent if not s.ok) / len(recent)
                if rate > threshold:
                    return (
                        f"global error rate {rate:.0f} % > {threshold:g} % for {window:g} s"
                        f"{self._from(vantage)}"
                    )
            elif metric == "global_p95_latency":
                limit = float(condition["threshold_ms"])
                value = p95([s.latency_ms for s in recent])
                if value is not None and value > limit:
                    return (
                        f"global p95 latency {value:.0f} ms > {limit:g} ms for {window:g} s"
                        f"{self._from(vantage)}"
                    )
        return ""

    def _other_region_unhealthy(self, now):
        """Probe the other regions once a second, each folded through the status
        engine's hysteresis; trip when one turns unhealthy."""
        if now - self._others_checked < 1.0:
            return ""
        self._others_checked = now
        tracks = self._other_tracks
        thresholds = Thresholds.from_settings(self.application.probe_interval)
        for stack in (
            Stack.objects.filter(application=self.application)
            .exclude(region=self.region)
            .select_related("region")
        ):
            if not stack.health_url:
                continue
            sample = _probe(stack.health_url, timeout=1.0)
            code = stack.region.code
            tracks[code] = fold(tracks.get(code, Track(HealthStatus.HEALTHY)), sample, thresholds)
            if tracks[code].status == HealthStatus.UNHEALTHY:
                return f"{code} became unhealthy during the drill ({describe_sample(sample)})"
        return ""

    def _update_figures(self, by_vantage):
        per, fig = vantage_figures(
            by_vantage, region=self.region.code, injected_at=self.injected_at, reverted_at=self.reverted_at
        )
        self.figures.update(
            {
                "time_to_failover": fig["time_to_failover"],
                "time_to_recover": fig["time_to_recover"],
                "error_rate": fig["error_rate"],
                "p95_latency_ms": fig["p95_latency_ms"],
                "requests_during": fig["requests_during"],
                "served_by_target_before": fig["served_by_target_before"],
                "regions_during": fig["regions_during"],
                "measured_from": fig["measured_from"],
                "note": fig["note"],
                "vantages": {
                    vantage: {key: f[key] for key in VANTAGE_FIGURES} for vantage, f in per.items()
                },
                "vantages_missing": dict(self.missing),
                "time_to_detect": (
                    self.watcher.detected_at - self.injected_at
                    if self.watcher and self.watcher.detected_at
                    else None
                ),
                "detected_by": self.watcher.detected_by if self.watcher else "",
                "success_series": _success_series(
                    [s for samples in by_vantage.values() for s in samples], self.injected_at
                ),
            }
        )
        self.publish_figures()

    def revert(self):
        """Revert every open ledger row of this drill, newest first; verify each."""
        problems = ledger.revert_open(self.drill.pk, worker=self.worker)
        if self.reverted_at is None:
            self.reverted_at = time.monotonic()
        return problems

    def verify_recovery(self):
        timeout = settings.DRILL_RECOVERY_TIMEOUT_SECONDS
        deadline = time.monotonic() + timeout
        target = self.region.code
        measuring = [
            vantage
            for vantage, samples in self.samples().items()
            if any(s.ok and s.region == target for s in samples if s.at < self.injected_at)
        ]
        stack = Stack.objects.filter(application=self.application, region=self.region).first()
        while time.monotonic() < deadline:
            self.beat()
            by_vantage = self.samples()
            back = (
                # every vantage the region served before is served by it again
                all(
                    any(s.at >= self.reverted_at and s.ok and s.region == target for s in by_vantage[v])
                    for v in measuring
                )
                if measuring
                else _http_ok(stack.health_url)[0]
                if stack and stack.health_url
                else True
            )
            if back:
                self._update_figures(by_vantage)
                return ""
            time.sleep(0.1)
        return f"{target} did not serve again within {timeout:g} s after the revert"

    def wait_for_convergence(self):
        """After the revert, until every canary write made before it has reached the
        region, or the hypothesis's max_time_to_converge_seconds (else the recovery
        timeout) has passed."""
        if self.replication is None or self.reverted_at is None:
            return
        limit = self.hypothesis.get("max_time_to_converge_seconds")
        timeout = (
            float(limit) + 1.0 if limit is not None else settings.DRILL_RECOVERY_TIMEOUT_SECONDS
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.beat()
            markers = self.replication.snapshot()
            before = [m for m in markers if m.written <= self.reverted_at]
            after = [m for m in markers if m.written > self.reverted_at]
            # converged, and a write made after the resume has arrived (the lag after)
            if before and all(m.seen is not None for m in before) and any(m.seen for m in after):
                return
            time.sleep(0.05)

    def lag_figures(self):
        if self.replication is not None and self.injected_at is not None:
            markers = self.replication.snapshot()
            now = time.monotonic()
            end = self.reverted_at or now
            failover = self.figures.get("time_to_failover")
            during = lag_figures(
                markers, start=self.injected_at, end=end, reverted_at=self.reverted_at,
                rpo_at=self.injected_at + failover if failover is not None else end,
            )
            self.figures.update(
                {
                    "lag_during_ms": during["max_lag_ms"],
                    "lag_after_ms": next(
                        (
                            round((m.seen - m.written) * 1000, 1)
                            for m in markers
                            if self.reverted_at and m.written > self.reverted_at and m.seen
                        ),
                        None,
                    ),
                    "time_to_converge": during["time_to_converge"],
                    "rpo_ms": during["rpo_ms"],
                    "lag_writes": len(markers),
                    "lag_writes_before_revert": sum(1 for m in markers if m.written <= end),
                    "lag_series": lag_figures(markers, start=self.injected_at, end=now)["lag_series"],
                }
            )
            return
        started = self.drill.started_at or timezone.now()
        samples = LagSample.objects.filter(
            application=self.application, receiving_region=self.region.code, at__gte=started
        ).order_by("at")
        during = [s.lag_ms for s in samples if s.lag_ms is not None]
        if during:
            self.figures["lag_during_ms"] = max(during)
            self.figures["lag_after_ms"] = during[-1]

    def _limits(self):
        """(state, text) for each limit the hypothesis sets, in order: PASSED with the
        figure when it was measured and holds. The judge stops at the first other one."""
        f = self.figures
        max_failover = self._max_failover_seconds()
        if max_failover > 0:
            if not f.get("served_by_target_before"):
                yield DrillState.INCONCLUSIVE, self._unmeasurable()
            yield _against(
                max_failover, f.get("time_to_failover"),
                unmeasured="time to fail over was not measured",
                missed="Failed over in {value:.1f} s, more than {limit:g} s (hypothesis)",
                held="Failed over in {value:.1f} s",
            )
        limit = self.hypothesis.get("max_replication_lag_ms")
        if limit is not None:
            yield _against(
                limit, f.get("lag_during_ms"),
                unmeasured="replication lag during the fault was not measured",
                missed="Replication lag reached {value:.0f} ms, more than {limit:g} ms (hypothesis)",
                held="replication lag peaked at {value:.0f} ms",
            )
        limit = self.hypothesis.get("max_time_to_converge_seconds")
        if limit is not None:
            value = f.get("time_to_converge")
            if value is None and f.get("lag_writes_before_revert"):
                # canaries were written under the fault and never arrived: that is a miss
                yield DrillState.FAILED, (
                    f"Replication did not converge, more than {limit:g} s after resume (hypothesis)"
                )
            yield _against(
                limit, value,
                unmeasured="no canary write was made before the revert: convergence not measured",
                missed="Replication converged in {value:.1f} s, more than {limit:g} s after resume "
                "(hypothesis)",
                held="replication converged {value:.1f} s after resume",
            )

    def judge(self):
        """(state, reason) once the fault is reverted and the region is back: PASSED only
        when every figure the hypothesis names was measured and holds; INCONCLUSIVE when
        one could not be measured; FAILED when one was measured and missed."""
        f = self.figures
        parts = []
        seen = f.get("requests_during") or 0
        if seen < MIN_REQUESTS_DURING:
            return DrillState.INCONCLUSIVE, (
                f"the observer saw only {seen} request(s) while the fault was on "
                f"(at least {MIN_REQUESTS_DURING} are needed to judge it)"
            )
        for state, text in self._limits():
            if state != DrillState.PASSED:
                return state, text
            parts.append(text)
        text = ", ".join(parts) + " and recovered" if parts else "Recovered"
        return DrillState.PASSED, text[:1].upper() + text[1:]

    def close(self):
        for observer in self.observers.values():
            observer.stop()
        if self.watcher:
            self.watcher.stop()
        if self.replication:
            self.replication.stop()


def _against(limit, value, *, unmeasured, missed, held):
    """(state, text) of one measured figure against its hypothesis limit: INCONCLUSIVE
    when not measured, FAILED over the limit, PASSED at or under it."""
    if value is None:
        return DrillState.INCONCLUSIVE, unmeasured
    if value > limit:
        return DrillState.FAILED, missed.format(value=value, limit=limit)
    return DrillState.PASSED, held.format(value=value, limit=limit)


def _success_series(samples, injected_at):
    """Success % per second, relative to injection: [[second, percent], ...]."""
    buckets = {}
    for s in samples:
        key = int((s.at - injected_at) // 1)
        total, ok = buckets.get(key, (0, 0))
        buckets[key] = (total + 1, ok + (1 if s.ok else 0))
    return [[k, round(100.0 * ok / total, 1)] for k, (total, ok) in sorted(buckets.items())][-600:]


def run(drill_id):
    """Run one drill to its outcome. Safe to call twice: only the first claims it."""
    worker = worker_name()
    if not services.transition(
        drill_id, [DrillState.QUEUED], DrillState.RUNNING, worker=worker, heartbeat_at=timezone.now()
    ):
        return None
    drill = Drill.objects.select_related("scenario", "application", "region").get(pk=drill_id)
    runner = DrillRun(drill)
    runner.worker = worker
    final_state, reason, problems = None, "", []
    try:
        runner.preflight()
        runner.steady_state()
        runner.inject()
        final_state, reason = runner.observe()
        runner.beat(force=True)
        services.transition(drill_id, [DrillState.RUNNING], DrillState.REVERTING)
        problems = runner.revert()
        recovery = runner.verify_recovery()
        runner.wait_for_convergence()
        runner.lag_figures()
        if problems:
            final_state, reason = DrillState.ERRORED, "Revert problems: " + "; ".join(problems)
        elif final_state is None and recovery:
            final_state, reason = DrillState.FAILED, recovery
        elif final_state is None:
            final_state, reason = runner.judge()
    except Lost:
        runner.close()
        log.warning("drill %s: the reaper took over; leaving the revert to it", drill_id)
        return None
    except Stop as stop:
        final_state, reason = stop.state, stop.reason
        if runner.injected_at is not None or Compensation.objects.filter(drill_id=drill_id).exists():
            problems = runner.revert()
    except Exception as exc:
        log.exception("drill %s errored", drill_id)
        final_state, reason = DrillState.ERRORED, f"{type(exc).__name__}: {exc}"
        runner.step(StepKind.ERROR, reason[:500])
        try:
            problems = runner.revert()
        except Exception as revert_exc:  # the reaper retries what is left open
            problems = [f"revert failed: {revert_exc}"]
    finally:
        runner.close()
        close_old_connections()
    if problems and final_state != DrillState.ERRORED:
        final_state, reason = DrillState.ERRORED, f"{reason}; revert problems: {'; '.join(problems)}"
    left_open = (
        Compensation.objects.filter(drill_id=drill_id, state__in=OPEN_COMPENSATION_STATES).count()
    )
    if left_open:
        reason += f" ({left_open} ledger row(s) left for the reaper)"
    services.transition(
        drill_id,
        RUNNING_STATES,
        final_state,
        outcome_reason=reason[:2000],
        figures=runner.figures,
        audit_data={"reason": reason[:500]},
    )
    return final_state
