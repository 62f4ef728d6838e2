import logging

from celery import shared_task

from controlplane.celery import PUBLISH_ERRORS, probe_queue

log = logging.getLogger(__name__)


@shared_task
def discover_inventory(actor="system"):
    """Discover every application's stacks from AWS by tags and update the inventory.

    Dispatched by the console's "Discover now" button (`.delay_on_commit(actor=...)`) and
    by beat. Discovery is idempotent, so a redelivered message only repeats the reads."""
    from controlplane.models import AuditSource
    from regions import discovery

    report = discovery.run_discovery(actor=actor, source=AuditSource.SYSTEM)
    log.info(
        "discovery: %d component(s) found, %d change(s), %d warning(s)",
        len(report.found),
        len(report.changes),
        len(report.warnings),
    )
    for warning in report.warnings:
        log.warning("discovery: %s", warning)


# --- Monitoring (docs/MONITORING.md) -------------------------------------------------


@shared_task(ignore_result=True)
def probe_cycle(tick=None):
    """Beat, every second: send the targets due in this second to every vantage's queue.

    Beat's runs drift across second boundaries (two in one second, none in the next), so
    a run claims every second since the last claimed one (`monitoring.claim_ticks`) and
    sends what is due in any of them; a second already claimed sends nothing. Targets
    are split into batches by a stable hash of their key, one `probe_batch` task per
    batch and vantage. A batch not started within one default interval expires:
    probing late only adds load to a backlog, the next cycle probes again."""
    import time

    from django.conf import settings

    from regions import monitoring, probes

    ticks = monitoring.claim_ticks(int(tick if tick is not None else time.time()))
    keys = monitoring.due_target_keys(ticks)
    batches = probes.partition(keys, settings.CONTROLPLANE_PROBE_BATCH_SIZE)
    for vantage in settings.CONTROLPLANE_PROBE_VANTAGES:
        for batch in batches:
            probe_batch.apply_async(
                (batch, vantage),
                queue=probe_queue(vantage),
                expires=settings.CONTROLPLANE_PROBE_INTERVAL,
            )
    return len(keys)


@shared_task(ignore_result=True)
def probe_batch(target_ids, vantage):
    """Probe the given targets ("s:<stack>" / "a:<application>") and store the samples in
    one bulk insert, stamped with the vantage: `vantage` when this worker acts for it
    (CONTROLPLANE_WORKER_VANTAGES), else this worker's own label (CONTROLPLANE_VANTAGE)."""
    from django.conf import settings

    from regions import monitoring, probes

    if vantage not in (settings.CONTROLPLANE_VANTAGE, *settings.CONTROLPLANE_WORKER_VANTAGES):
        log.warning(
            "probe batch for vantage %s run by a worker labelled %s; recording %s",
            vantage, settings.CONTROLPLANE_VANTAGE, settings.CONTROLPLANE_VANTAGE,
        )
        vantage = settings.CONTROLPLANE_VANTAGE
    targets = monitoring.targets_for_keys(target_ids)
    results = probes.run_probes(
        targets,
        concurrency=settings.CONTROLPLANE_PROBE_CONCURRENCY,
        connect_timeout=settings.CONTROLPLANE_PROBE_CONNECT_TIMEOUT,
        read_timeout=settings.CONTROLPLANE_PROBE_READ_TIMEOUT,
        vantage=vantage,
    )
    rerouted = set()
    stored = monitoring.store_results(results, vantage, rerouted=rerouted)
    if rerouted:  # stored and committed: the clients' routing changed, read AWS's now
        try:
            follow_routing_change.apply_async(
                (sorted(rerouted),), expires=settings.CONTROLPLANE_PROBE_INTERVAL * 5
            )
        except PUBLISH_ERRORS as exc:  # beat's polls read it later anyway
            log.warning("routing change of %s not followed: %s", sorted(rerouted), exc)
    return stored


@shared_task(ignore_result=True)
def follow_routing_change(application_ids):
    """Sent by `probe_batch` when the global endpoint served a vantage from another
    region than before: read the applications' routing configuration and AWS's view of
    it now rather than at beat's next poll (GA, ARC as always; a Route 53 status only once
    the stored one is CONTROLPLANE_ROUTE53_STATUS_CHANGE_INTERVAL old: one younger than
    that is read again by this task, sent again for when it is)."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from regions import aws_health, drift

    min_age = timedelta(seconds=settings.CONTROLPLANE_ROUTE53_STATUS_CHANGE_INTERVAL)
    drift.refresh_live_config(application_ids=application_ids)
    polled_at = timezone.now()
    counts = aws_health.poll(polled_at, application_ids=application_ids, route53_min_age=min_age)
    later = aws_health.route53_deferred(application_ids, min_age, polled_at)
    if later:
        follow_routing_change.apply_async((application_ids,), countdown=later, expires=later + 30)
    log.info("routing change of %s followed: %s (Route 53 again in %.1f s)", application_ids, counts, later)


@shared_task(ignore_result=True)
def rollup_samples():
    """Beat, every minute: roll complete minutes of raw samples up (idempotent)."""
    from django.utils import timezone

    from regions import monitoring

    done = monitoring.rollup_minutes(timezone.now())
    log.info("monitoring rollup: %d health minute(s), %d lag minute(s)", done["health"], done["lag"])


@shared_task(ignore_result=True)
def prune_samples():
    """Beat, every 15 minutes: delete raw samples and rollups past their retention."""
    from django.utils import timezone

    from regions import monitoring

    deleted = monitoring.prune(timezone.now())
    log.info("monitoring prune: %s", deleted)


# --- AWS's own view, live configuration, replication lag (docs/MONITORING.md) ----------


@shared_task(ignore_result=True)
def poll_aws_health():
    """Beat, every CONTROLPLANE_AWS_HEALTH_INTERVAL: Route 53 check status (each check
    at most every CONTROLPLANE_ROUTE53_STATUS_MIN_INTERVAL), GA endpoint health, alarm
    states, replica status and routing control states -> AwsObservation rows."""
    from regions import aws_health

    counts = aws_health.poll()
    log.info("aws health: %s", counts)


@shared_task(ignore_result=True)
def refresh_live_config():
    """Beat, every CONTROLPLANE_LIVE_CONFIG_INTERVAL: re-read the components that can
    carry a fault (the reads of discovery), for routing and drift; then tell the
    notification channels of the drift that appeared since the last pass (told once
    each, drift_events.report_drift)."""
    from regions import drift, drift_events

    updated, warnings = drift.refresh_live_config()
    log.info("live config: %d component(s) changed", updated)
    for warning in warnings:
        log.warning("live config: %s", warning)
    told, cleared = drift_events.report_drift()
    if told or cleared:
        log.info("drift: %d finding(s) told, %d cleared", told, cleared)


@shared_task(ignore_result=True)
def sample_replication_metrics():
    """Beat, every CONTROLPLANE_LAG_METRIC_INTERVAL: ReplicationLatency through one
    batched GetMetricData per source region -> LagSample(method=metric)."""
    from regions import lag

    log.info("lag metrics: %d sample(s)", lag.sample_metrics())


@shared_task(ignore_result=True)
def lag_canary_cycle():
    """Beat, every CONTROLPLANE_CANARY_INTERVAL: one `lag_canary` task per application
    with at least two replicas, expiring after one interval."""
    from django.conf import settings

    from regions import lag

    app_ids = lag.canary_application_ids()
    for app_id in app_ids:
        lag_canary.apply_async((app_id,), expires=settings.CONTROLPLANE_CANARY_INTERVAL)
    return len(app_ids)


@shared_task(ignore_result=True, soft_time_limit=120)
def lag_canary(application_id):
    """Write a marker item to each replica of one application and time its arrival in
    the others (bounded by CONTROLPLANE_CANARY_TIMEOUT) -> LagSample(method=canary)."""
    from regions import lag

    lags = lag.run_canary(application_id)
    lost = sum(1 for item in lags if not item.replicated)
    log.info("lag canary %s: %d pair(s), %d not replicated", application_id, len(lags), lost)
