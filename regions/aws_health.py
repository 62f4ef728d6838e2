"""What AWS itself says about each stack, polled by beat and stored as AwsObservation rows.

Sources (all through `controlplane.aws`, one client factory):

- Route 53 `GetHealthCheckStatus` per stack health check. AWS says the call is not meant
  for high query rates, so a check is asked again only when its stored observation is
  older than `CONTROLPLANE_ROUTE53_STATUS_MIN_INTERVAL` (30 s): the row is the cache.
  Route 53 calls a check healthy when more than 18 % of its checkers say so; the
  per-checker-region answers are kept in `detail`.
- Global Accelerator `DescribeEndpointGroup` -> EndpointDescriptions[].HealthState.
- CloudWatch `DescribeAlarms` (by name, 100 per call per region) -> StateValue.
- DynamoDB `DescribeTable` -> Replicas[].ReplicaStatus (the other regions' replicas as
  seen from this one), plus the sandbox's pause tag (`sandbox:replication-paused`).
- ARC `GetRoutingControlState` at the cluster's endpoints -> On / Off.

Nothing here runs in a request: the console and the API read the rows
(`regions.monitoring.load_picture`). `observation_reasons` and `apply_observations` are
pure: the status loader passes the observations in.
"""

import dataclasses
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import NamedTuple

from django.conf import settings
from django.utils import timezone

from controlplane import aws
from regions.models import (
    OBSERVED_COMPONENT_KIND,
    AwsObservation,
    Component,
    ComponentKind,
    ObservationKind,
)
from regions.status import HealthStatus, rollup_regions

log = logging.getLogger(__name__)

# Route 53: a check is healthy when more than this share of its checkers report healthy.
ROUTE53_HEALTHY_SHARE = 0.18
MAX_THREADS = 16


class Obs(NamedTuple):
    """What the pure functions need of an AwsObservation row."""

    kind: str
    state: str
    detail: dict
    observed_at: object


def stale_after():
    """Observations older than this are ignored by the status, routing and drift."""
    interval = settings.CONTROLPLANE_AWS_HEALTH_INTERVAL
    return timedelta(
        seconds=max(3 * interval, settings.CONTROLPLANE_ROUTE53_STATUS_MIN_INTERVAL + 2 * interval)
    )


def _error_text(exc):
    if isinstance(exc, aws.ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code')}: {(err.get('Message') or '')[:160]}"
    return str(exc)[:200]


def _safe(fn, what):
    """Run one AWS read; on failure log it and return None (the old row goes stale)."""
    try:
        return fn()
    except (aws.ClientError, aws.BotoCoreError) as exc:
        log.warning("aws health: %s: %s", what, _error_text(exc))
        return None


def _read(component, service, operation, **params):
    """One read call about `component` in its stack's region, as `_safe` runs it."""
    client = aws.client_for_region(service, component.stack.region)
    api_name = client.meta.method_to_api_mapping.get(operation, operation)
    return _safe(lambda: getattr(client, operation)(**params), f"{service} {api_name} {component.identifier}")


# --- readers (one per source; each returns (state, detail) or None) ----------------


def route53_status(component):
    result = _read(component, "route53", "get_health_check_status", HealthCheckId=component.identifier)
    if result is None:
        return None
    return route53_verdict(result.get("HealthCheckObservations", []))


def route53_verdict(observations):
    """(state, detail) of a Route 53 health check from its checkers' observations
    (GetHealthCheckStatus): healthy when more than ROUTE53_HEALTHY_SHARE of them report
    success, as Route 53 decides; the drill runner's watcher asks this too."""
    checkers = {}
    checked = []
    for obs in observations:
        report = obs.get("StatusReport", {})
        checkers[obs.get("Region", "?")] = report.get("Status", "")
        if report.get("CheckedTime"):
            checked.append(report["CheckedTime"].isoformat())
    healthy = sum(1 for s in checkers.values() if s.startswith("Success"))
    total = len(checkers)
    state = "healthy" if total and healthy / total > ROUTE53_HEALTHY_SHARE else "unhealthy"
    if not total:
        state = "unknown"
    return state, {
        "checkers": checkers,
        "healthy_checkers": healthy,
        "checkers_total": total,
        "checked_at": max(checked) if checked else None,
    }


def ga_endpoint_health(component):
    result = _read(
        component, "globalaccelerator", "describe_endpoint_group", EndpointGroupArn=component.identifier
    )
    if result is None:
        return None
    group = result["EndpointGroup"]
    endpoints = [
        {
            "EndpointId": e.get("EndpointId"),
            "HealthState": e.get("HealthState", "INITIAL"),
            "HealthReason": e.get("HealthReason", ""),
            "Weight": e.get("Weight"),
        }
        for e in group.get("EndpointDescriptions", [])
    ]
    states = {e["HealthState"] for e in endpoints}
    if not endpoints:
        state = "unknown"
    elif states == {"HEALTHY"}:
        state = "healthy"
    elif "HEALTHY" in states:
        state = "degraded"
    elif states == {"INITIAL"}:
        state = "initial"
    else:
        state = "unhealthy"
    return state, {"endpoints": endpoints, "TrafficDialPercentage": group.get("TrafficDialPercentage")}


def alarm_states(region, components):
    """{component id: (state, detail)} for the alarms of one region, 100 names per call."""
    cw = aws.client_for_region("cloudwatch", region)
    by_name = {c.name or c.identifier.rsplit(":", 1)[-1]: c for c in components}
    names = sorted(by_name)
    out = {}
    for start in range(0, len(names), 100):
        batch = names[start : start + 100]
        result = _safe(
            lambda b=batch: cw.describe_alarms(AlarmNames=b), f"cloudwatch DescribeAlarms in {region}"
        )
        for alarm in (result or {}).get("MetricAlarms", []):
            component = by_name.get(alarm["AlarmName"])
            if component is not None:
                out[component.pk] = (
                    alarm.get("StateValue", "INSUFFICIENT_DATA"),
                    {"reason": (alarm.get("StateReason") or "")[:300]},
                )
    return out


def replica_reads(component):
    """(own table status, {region: ReplicaStatus of the other replicas}, paused tag)."""
    name = component.name or component.identifier.rsplit("/", 1)[-1]
    table = _read(component, "dynamodb", "describe_table", TableName=name)
    if table is None:
        return None
    tags = _read(component, "dynamodb", "list_tags_of_resource", ResourceArn=component.identifier)
    paused = any(
        t.get("Key") == aws.SANDBOX_PAUSE_TAG and t.get("Value", "").lower() == "true"
        for t in (tags or {}).get("Tags", [])
    )
    replicas = {r.get("RegionName"): r.get("ReplicaStatus") for r in table["Table"].get("Replicas", [])}
    return table["Table"].get("TableStatus", ""), replicas, paused


def replica_statuses(components):
    """{component id: (state, detail)}: a replica's status as the other replicas of the
    same application and table report it (DescribeTable lists the *other* regions),
    "paused" when the pause tag is on the table itself."""
    with ThreadPoolExecutor(max_workers=min(MAX_THREADS, len(components) or 1)) as pool:
        reads = dict(zip([c.pk for c in components], pool.map(replica_reads, components), strict=True))
    seen = {}  # (application, table name) -> {region: [status as seen from elsewhere]}
    for c in components:
        read = reads[c.pk]
        if read is None:
            continue
        for region, status in read[1].items():
            seen.setdefault((c.stack.application_id, c.name), {}).setdefault(region, []).append(status)
    out = {}
    for c in components:
        read = reads[c.pk]
        if read is None:
            continue
        table_status, replicas, paused = read
        as_seen = seen.get((c.stack.application_id, c.name), {}).get(c.stack.region.code, [])
        not_active = sorted({s for s in as_seen if s and s != "ACTIVE"})
        if paused:
            state = "paused"
        elif not_active:
            state = not_active[0]
        else:
            state = table_status or "ACTIVE"
        out[c.pk] = (state[:32], {
            "table_status": table_status,
            "as_seen_by_others": sorted(set(as_seen)),
            "replicas": replicas,
            "paused_tag": paused,
        })
    return out


def routing_control_state(component):
    """On / Off from the ARC cluster, trying its endpoints in order (as AWS advises)."""
    endpoints = component.config.get("ClusterEndpoints") or [{"Region": "us-west-2", "Endpoint": None}]
    region = component.stack.region
    for endpoint in endpoints:
        client = aws.client(
            "route53-recovery-cluster",
            endpoint.get("Region") or "us-west-2",
            role_arn=region.role_arn,
            external_id=region.external_id,
            endpoint_url=settings.AWS_ENDPOINT_URL or endpoint.get("Endpoint"),
        )
        result = _safe(
            lambda c=client: c.get_routing_control_state(RoutingControlArn=component.identifier),
            f"arc GetRoutingControlState {component.identifier}",
        )
        if result is not None:
            return result.get("RoutingControlState", "unknown"), {
                "name": result.get("RoutingControlName", component.name)
            }
    return None


# --- the beat task's body ----------------------------------------------------------


def poll(now=None, *, application_ids=None, route53_min_age=None):
    """Ask AWS about every observed component and upsert the observations.

    Returns {observation kind: number of rows written}. Route 53 checks observed healthy
    less than `route53_min_age` ago (default CONTROLPLANE_ROUTE53_STATUS_MIN_INTERVAL)
    are not asked again; one observed unhealthy is asked at every poll."""
    now = now or timezone.now()
    components = Component.objects.filter(kind__in=set(OBSERVED_COMPONENT_KIND.values())).select_related(
        "stack__region"
    )
    if application_ids is not None:
        components = components.filter(stack__application_id__in=application_ids)
    components = list(components)
    existing = {
        (o.component_id, o.kind): o
        for o in AwsObservation.objects.filter(component__in=[c.pk for c in components])
    }
    by_kind = {}
    for c in components:
        by_kind.setdefault(c.kind, []).append(c)

    # A check seen unhealthy is asked at every poll, so that its recovery shows within one
    # poll of Route 53 seeing it (docs/MONITORING.md "One status, everywhere"); a healthy
    # one at most every `route53_min_age` (CONTROLPLANE_ROUTE53_STATUS_MIN_INTERVAL at
    # beat's polls, a failure is seen sooner by the probes;
    # CONTROLPLANE_ROUTE53_STATUS_CHANGE_INTERVAL when the clients' routing changed).
    min_age = (
        timedelta(seconds=settings.CONTROLPLANE_ROUTE53_STATUS_MIN_INTERVAL)
        if route53_min_age is None else route53_min_age
    )
    checks = [
        c for c in by_kind.get(ComponentKind.ROUTE53_HEALTH_CHECK, [])
        if (old := existing.get((c.pk, ObservationKind.ROUTE53_HEALTH))) is None
        or old.state != "healthy"
        or now - old.observed_at >= min_age
    ]
    jobs = [(ObservationKind.ROUTE53_HEALTH, c, route53_status) for c in checks]
    jobs += [
        (ObservationKind.GA_ENDPOINT_HEALTH, c, ga_endpoint_health)
        for c in by_kind.get(ComponentKind.GA_ENDPOINT_GROUP, [])
    ]
    jobs += [
        (ObservationKind.ROUTING_CONTROL_STATE, c, routing_control_state)
        for c in by_kind.get(ComponentKind.ARC_ROUTING_CONTROL, [])
    ]
    results = {}  # (component, kind) -> (state, detail)
    with ThreadPoolExecutor(max_workers=MAX_THREADS) as pool:
        futures = [(kind, c, pool.submit(fn, c)) for kind, c, fn in jobs]
        alarms_by_region = {}
        for c in by_kind.get(ComponentKind.CLOUDWATCH_ALARM, []):
            alarms_by_region.setdefault(c.stack.region.code, []).append(c)
        alarm_futures = [
            pool.submit(alarm_states, cs[0].stack.region, cs) for cs in alarms_by_region.values()
        ]
        replicas = replica_statuses(by_kind.get(ComponentKind.DYNAMODB_REPLICA, []))
        for kind, c, future in futures:
            if (value := future.result()) is not None:
                results[c, kind] = value
        for future in alarm_futures:
            for pk, value in future.result().items():
                results[pk, ObservationKind.ALARM_STATE] = value
    for pk, value in replicas.items():
        results[pk, ObservationKind.REPLICA_STATUS] = value

    rows = []
    counts = {}
    for (component, kind), (state, detail) in results.items():
        pk = component if isinstance(component, int) else component.pk
        old = existing.get((pk, kind))
        changed_at = old.changed_at if old is not None and old.state == state else now
        rows.append(AwsObservation(
            component_id=pk, kind=kind, state=state, detail=detail, observed_at=now, changed_at=changed_at
        ))
        counts[kind] = counts.get(kind, 0) + 1
    if rows:
        AwsObservation.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["component", "kind"],
            update_fields=["state", "detail", "observed_at", "changed_at"],
        )
    return counts


def route53_deferred(application_ids, min_age, polled_at):
    """Seconds until the Route 53 status of every health check of the applications that
    the poll at `polled_at` left alone (observed less than `min_age` before it) may be
    asked again; 0 when none was left alone. One query."""
    left = AwsObservation.objects.filter(
        kind=ObservationKind.ROUTE53_HEALTH,
        component__stack__application_id__in=application_ids,
        observed_at__lt=polled_at,
        observed_at__gt=polled_at - min_age,
    ).values_list("observed_at", flat=True)
    return max(((at + min_age - polled_at).total_seconds() for at in left), default=0.0)


# --- pure: observations -> status reasons ------------------------------------------


def observation_reasons(components, now, stale=None):
    """{stack id: [reason, ...]} of what AWS's own view says is wrong with each stack.

    `components`: ComponentView tuples (regions.routing) carrying their observations.
    Stale observations (older than `stale`) say nothing."""
    reasons = {}
    for c in components:
        for obs in c.observations.values():
            if stale is not None and now - obs.observed_at > stale:
                continue
            reason = _reason(c, obs)
            if reason:
                reasons.setdefault(c.stack_id, []).append(reason)
    return reasons


def is_inverted(config, obs):
    """Inverted per the last-seen config, or per the checkers' own words ("Failure:
    Inverted health check: ...") when the config has not been refreshed yet."""
    if config.get("Inverted"):
        return True
    checkers = (obs.detail.get("checkers") or {}).values() if obs is not None else ()
    return any("inverted health check" in status.lower() for status in checkers)


def _reason(c, obs):
    if obs.kind == ObservationKind.ROUTE53_HEALTH and obs.state == "unhealthy":
        d = obs.detail
        inverted = " (inverted)" if is_inverted(c.config, obs) else ""
        return (
            f"Route 53 health check {c.identifier}{inverted} unhealthy in AWS "
            f"({d.get('healthy_checkers', 0)} of {d.get('checkers_total', 0)} checkers healthy)"
        )
    if obs.kind == ObservationKind.GA_ENDPOINT_HEALTH and obs.state == "unhealthy":
        why = "; ".join(
            sorted({e.get("HealthReason") or e.get("HealthState") for e in obs.detail.get("endpoints", [])})
        )
        return f"Global Accelerator endpoint unhealthy{f' ({why})' if why else ''}"
    if obs.kind == ObservationKind.ALARM_STATE and obs.state == "ALARM":
        return f"alarm {c.name or c.identifier} in ALARM"
    if obs.kind == ObservationKind.REPLICA_STATUS and obs.state not in ("ACTIVE", "UPDATING"):
        if obs.state == "paused":
            return "replication to this replica is paused"
        return f"DynamoDB replica {obs.state}"
    return None


def apply_observations(app_status, reasons):
    """The ApplicationStatus with AWS's reasons added: a region AWS finds unhealthy (or
    whose alarm is in ALARM) is at least degraded, with that reason. Pure."""
    if not reasons:
        return app_status
    regions = []
    for region in app_status.regions:
        extra = reasons.get(region.stack_id)
        if not extra:
            regions.append(region)
            continue
        text = "; ".join(extra)
        if region.status == HealthStatus.HEALTHY:
            status, reason = HealthStatus.DEGRADED, text
        elif region.status == HealthStatus.UNKNOWN:
            status, reason = HealthStatus.DEGRADED, f"{text}; probes: {region.reason}"
        else:
            status, reason = region.status, f"{region.reason}; {text}"
        regions.append(dataclasses.replace(region, status=status, reason=reason))
    status, reason = rollup_regions(regions, app_status.global_endpoint)
    return dataclasses.replace(app_status, status=status, reason=reason, regions=regions)
