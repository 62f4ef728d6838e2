"""Effective routing: which regions of an application receive traffic right now.

`routing_state()` is a pure function of the inventory's last-seen configuration
(Component.config, refreshed by `regions.drift.refresh_live_config`) and the stored AWS
observations (regions/aws_health.py). It answers, per region, `Routing(receives_traffic,
reason)`, the way the global front end would decide:

- Architecture A (Route 53): the application's records of the stack's region with
  their health checks as Route 53 sees them (GetHealthCheckStatus), Inverted and
  Disabled (a disabled check is considered healthy). Failover: the SECONDARY receives
  traffic only while the PRIMARY is unhealthy. Weighted: weight 0 receives none (unless
  every record weighs 0). Latency/simple: every healthy record receives its nearby
  clients. When no record is healthy, Route 53 fails open (answers all).
- Architecture B (Global Accelerator): the endpoint group's traffic dial, its endpoints'
  weights and HealthState. When no endpoint is healthy anywhere, traffic goes to the
  dialled-in endpoints anyway (fail open).
- Both: an ARC routing control Off takes the region out (in AWS through a Route 53
  RECOVERY_CONTROL health check on the records).

Observations older than `stale` are ignored (as if not observed yet).
"""

from typing import NamedTuple

from regions.aws_health import is_inverted
from regions.models import Architecture, ComponentKind, ObservationKind


class ComponentView(NamedTuple):
    """What routing, drift and status need of a Component and its observations."""

    pk: int
    application_id: int
    stack_id: int
    region: str
    kind: str
    identifier: str
    name: str
    config: dict
    observations: dict  # ObservationKind -> aws_health.Obs


class Routing(NamedTuple):
    receives_traffic: bool
    reason: str


def _fresh(component, kind, now, stale):
    obs = component.observations.get(kind)
    if obs is None or (stale is not None and now is not None and now - obs.observed_at > stale):
        return None
    return obs


def _arc_off(components, region, now, stale):
    for c in components:
        if c.kind == ComponentKind.ARC_ROUTING_CONTROL and c.region == region:
            obs = _fresh(c, ObservationKind.ROUTING_CONTROL_STATE, now, stale)
            if obs is not None and obs.state == "Off":
                return c
    return None


def routing_state(architecture, regions, components, *, now=None, stale=None):
    """{region: Routing} for one application. `regions`: its stacks' region codes;
    `components`: its ComponentView tuples."""
    if architecture == Architecture.ANYCAST:
        return _anycast(regions, components, now, stale)
    return _dns(regions, components, now, stale)


# --- A: Route 53 -------------------------------------------------------------------


def _record_health(record, checks, arc_off, now, stale):
    """(healthy, reason) of one record, as Route 53 evaluates it."""
    if arc_off is not None:
        return False, "routing control Off"
    check_id = record.config.get("HealthCheckId")
    if not check_id:
        return True, "record without health check"
    check = checks.get(check_id)
    if check is None:
        return True, f"health check {check_id} not in the inventory"
    if check.config.get("Disabled"):
        return True, "health check disabled (considered healthy)"
    obs = _fresh(check, ObservationKind.ROUTE53_HEALTH, now, stale)
    if obs is None:
        return True, "health check status not observed yet"
    if obs.state == "unhealthy":
        if is_inverted(check.config, obs):
            return False, "health check inverted"
        statuses = sorted(set(obs.detail.get("checkers", {}).values()))
        return False, f"health check unhealthy ({statuses[0]})" if statuses else "health check unhealthy"
    return True, "health check healthy"


def _dns(regions, components, now, stale):
    checks = {c.identifier: c for c in components if c.kind == ComponentKind.ROUTE53_HEALTH_CHECK}
    records = [c for c in components if c.kind == ComponentKind.ROUTE53_RECORD]
    health = {}
    for record in records:
        health[record.pk] = _record_health(
            record, checks, _arc_off(components, record.region, now, stale), now, stale
        )
    fail_open = bool(records) and not any(ok for ok, _ in health.values())
    weighted = [r for r in records if r.config.get("Weight") is not None]
    all_zero = bool(weighted) and all(int(r.config.get("Weight") or 0) == 0 for r in weighted)
    primary_healthy = any(
        health[r.pk][0] for r in records if r.config.get("Failover") == "PRIMARY"
    )
    out = {}
    for region in regions:
        mine = [r for r in records if r.region == region]
        if not mine:
            arc = _arc_off(components, region, now, stale)
            out[region] = Routing(False, "routing control Off" if arc else "no Route 53 record")
            continue
        verdicts = []
        for record in mine:
            ok, why = health[record.pk]
            if fail_open:
                verdicts.append(Routing(True, f"every record unhealthy: Route 53 fails open ({why})"))
                continue
            if not ok:
                verdicts.append(Routing(False, why))
                continue
            failover = record.config.get("Failover")
            if failover == "SECONDARY" and primary_healthy:
                verdicts.append(Routing(False, "failover secondary: the primary is healthy"))
            elif failover == "PRIMARY":
                verdicts.append(Routing(True, f"failover primary, {why}"))
            elif record in weighted and int(record.config["Weight"] or 0) == 0 and not all_zero:
                verdicts.append(Routing(False, "record weight 0"))
            else:
                verdicts.append(Routing(True, why))
        receiving = [v for v in verdicts if v.receives_traffic]
        out[region] = receiving[0] if receiving else verdicts[0]
    return out


# --- B: Global Accelerator ---------------------------------------------------------


def _group_view(group, now, stale):
    """(dial, [(weight, HealthState)]) from the freshest source: the endpoint-health
    observation (DescribeEndpointGroup) if any, else the last-seen config."""
    obs = _fresh(group, ObservationKind.GA_ENDPOINT_HEALTH, now, stale)
    dial = group.config.get("TrafficDialPercentage", 100)
    endpoints = [
        (e.get("Weight") if e.get("Weight") is not None else 128, "UNKNOWN")
        for e in group.config.get("EndpointDescriptions", [])
    ]
    if obs is not None:
        if obs.detail.get("TrafficDialPercentage") is not None:
            dial = obs.detail["TrafficDialPercentage"]
        endpoints = [
            (e.get("Weight") if e.get("Weight") is not None else 128, e.get("HealthState", "INITIAL"))
            for e in obs.detail.get("endpoints", [])
        ]
    return float(dial if dial is not None else 100), endpoints


def _anycast(regions, components, now, stale):
    groups = {c.region: c for c in components if c.kind == ComponentKind.GA_ENDPOINT_GROUP}
    views = {region: _group_view(group, now, stale) for region, group in groups.items()}
    # Healthy = HEALTHY, or not observed yet (INITIAL/UNKNOWN: no verdict against it).
    any_healthy = any(
        w > 0 and state in ("HEALTHY", "INITIAL", "UNKNOWN")
        for region, (dial, endpoints) in views.items()
        if not _arc_off(components, region, now, stale)
        for w, state in endpoints
    )
    out = {}
    for region in regions:
        if _arc_off(components, region, now, stale):
            out[region] = Routing(False, "routing control Off")
            continue
        if region not in views:
            out[region] = Routing(False, "no Global Accelerator endpoint group")
            continue
        dial, endpoints = views[region]
        if dial <= 0:
            out[region] = Routing(False, "traffic dial 0 %")
            continue
        weighted = [(w, s) for w, s in endpoints if w > 0]
        if not weighted:
            out[region] = Routing(False, "endpoint weight 0" if endpoints else "no endpoint")
            continue
        healthy = [s for _, s in weighted if s in ("HEALTHY", "INITIAL", "UNKNOWN")]
        if not healthy and any_healthy:
            out[region] = Routing(False, "endpoint unhealthy")
            continue
        if not healthy:
            out[region] = Routing(True, f"traffic dial {dial:g} %: no endpoint healthy anywhere, fails open")
            continue
        state = "healthy" if "HEALTHY" in healthy else "not checked yet"
        out[region] = Routing(True, f"traffic dial {dial:g} %, endpoint {state}")
    return out
