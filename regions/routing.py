"""Effective routing: which regions of an application receive traffic right now.

Two sources, each fact saying which one it comes from:

- **clients** (`follow_clients()`): the probes of the application's global endpoint from
  each vantage, as clients reach it (their latest answer names the region that served
  it), with each region's own /health probes. Fresh within one stale limit of the
  status (3 probe intervals): they follow the data plane within one probe interval.
- **AWS** (`routing_state()`): the configuration and health AWS reports, read by beat
  (and again as soon as the clients' routing changes: regions.tasks.follow_routing_change),
  the way the global front end would decide.

`follow_clients()` combines them: the clients' current view decides `receives_traffic`
where it says something (a vantage is served by the region: it receives traffic; no
vantage is, and the region's /health is unhealthy by the probes: it receives none);
elsewhere AWS's view decides. When the two disagree the reason says both.

`routing_state()` is a pure function of the inventory's last-seen configuration
(Component.config, refreshed by `regions.drift.refresh_live_config`) and the stored AWS
observations (regions/aws_health.py). It answers, per region, `Routing(receives_traffic,
reason)`:

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

from datetime import timedelta
from typing import NamedTuple

from controlplane.durations import format_duration
from regions.aws_health import is_inverted
from regions.models import Architecture, ComponentKind, ObservationKind
from regions.status import HealthStatus


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
    config_read_at: object = None  # when `config` was last read from AWS (None: unknown)


class Routing(NamedTuple):
    """Whether a region receives traffic, why, which source decided ("clients" or
    "aws") and when that source last saw it (None: not known)."""

    receives_traffic: bool
    reason: str
    source: str = "aws"
    at: object = None


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


def _switched_off(arc):
    """A region (or record) taken out by its ARC routing control."""
    return Routing(False, "routing control Off", at=_observed_at(arc, ObservationKind.ROUTING_CONTROL_STATE))


def routing_state(architecture, regions, components, *, now=None, stale=None):
    """{region: Routing} for one application. `regions`: its stacks' region codes;
    `components`: its ComponentView tuples."""
    if architecture == Architecture.ANYCAST:
        return _anycast(regions, components, now, stale)
    return _dns(regions, components, now, stale)


# --- A: Route 53 -------------------------------------------------------------------


def _record_health(record, checks, arc_off, now, stale):
    """(healthy, reason, when AWS said so or None) of one record, as Route 53 evaluates it."""
    if arc_off is not None:
        off = _switched_off(arc_off)
        return off.receives_traffic, off.reason, off.at
    check_id = record.config.get("HealthCheckId")
    if not check_id:
        return True, "record without health check", record.config_read_at
    check = checks.get(check_id)
    if check is None:
        return True, f"health check {check_id} not in the inventory", None
    if check.config.get("Disabled"):
        return True, "health check disabled (considered healthy)", check.config_read_at
    obs = _fresh(check, ObservationKind.ROUTE53_HEALTH, now, stale)
    if obs is None:
        return True, "health check status not observed yet", None
    if obs.state == "unhealthy":
        if is_inverted(check.config, obs):
            return False, "health check inverted", obs.observed_at
        return False, f"Route 53 health check unhealthy ({_checkers(obs)})", obs.observed_at
    return True, "health check healthy", obs.observed_at


def _checkers(obs):
    detail = obs.detail
    return f"{detail.get('healthy_checkers', 0)} of {detail.get('checkers_total', 0)} checkers healthy"


def _observed_at(component, kind):
    obs = component.observations.get(kind)
    return obs.observed_at if obs is not None else None


def _dns(regions, components, now, stale):
    checks = {c.identifier: c for c in components if c.kind == ComponentKind.ROUTE53_HEALTH_CHECK}
    records = [c for c in components if c.kind == ComponentKind.ROUTE53_RECORD]
    health = {}
    for record in records:
        health[record.pk] = _record_health(
            record, checks, _arc_off(components, record.region, now, stale), now, stale
        )
    fail_open = bool(records) and not any(ok for ok, _, _ in health.values())
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
            out[region] = _switched_off(arc) if arc else Routing(False, "no Route 53 record")
            continue
        verdicts = []
        for record in mine:
            ok, why, at = health[record.pk]
            if fail_open:
                verdicts.append(Routing(True, f"every record unhealthy: Route 53 fails open ({why})", at=at))
                continue
            if not ok:
                verdicts.append(Routing(False, why, at=at))
                continue
            failover = record.config.get("Failover")
            if failover == "SECONDARY" and primary_healthy:
                verdicts.append(Routing(False, "failover secondary: the primary is healthy", at=at))
            elif failover == "PRIMARY":
                verdicts.append(Routing(True, f"failover primary, {why}", at=at))
            elif record in weighted and int(record.config["Weight"] or 0) == 0 and not all_zero:
                verdicts.append(Routing(False, "record weight 0", at=record.config_read_at))
            else:
                verdicts.append(Routing(True, why, at=at))
        receiving = [v for v in verdicts if v.receives_traffic]
        out[region] = receiving[0] if receiving else verdicts[0]
    return out


# --- B: Global Accelerator ---------------------------------------------------------


def _group_view(group, now, stale):
    """(dial, [(weight, HealthState)], when read) from the freshest source: the
    endpoint-health observation (DescribeEndpointGroup) if any, else the last-seen config."""
    obs = _fresh(group, ObservationKind.GA_ENDPOINT_HEALTH, now, stale)
    dial = group.config.get("TrafficDialPercentage", 100)
    endpoints = [
        (e.get("Weight") if e.get("Weight") is not None else 128, "UNKNOWN")
        for e in group.config.get("EndpointDescriptions", [])
    ]
    at = group.config_read_at
    if obs is not None:
        if obs.detail.get("TrafficDialPercentage") is not None:
            dial = obs.detail["TrafficDialPercentage"]
        endpoints = [
            (e.get("Weight") if e.get("Weight") is not None else 128, e.get("HealthState", "INITIAL"))
            for e in obs.detail.get("endpoints", [])
        ]
        at = obs.observed_at
    return float(dial if dial is not None else 100), endpoints, at


def _anycast(regions, components, now, stale):
    groups = {c.region: c for c in components if c.kind == ComponentKind.GA_ENDPOINT_GROUP}
    views = {region: _group_view(group, now, stale) for region, group in groups.items()}
    # Healthy = HEALTHY, or not observed yet (INITIAL/UNKNOWN: no verdict against it).
    any_healthy = any(
        w > 0 and state in ("HEALTHY", "INITIAL", "UNKNOWN")
        for region, (dial, endpoints, _) in views.items()
        if not _arc_off(components, region, now, stale)
        for w, state in endpoints
    )
    out = {}
    for region in regions:
        if arc := _arc_off(components, region, now, stale):
            out[region] = _switched_off(arc)
            continue
        if region not in views:
            out[region] = Routing(False, "no Global Accelerator endpoint group")
            continue
        dial, endpoints, at = views[region]
        if dial <= 0:
            out[region] = Routing(False, "traffic dial 0 %", at=at)
            continue
        weighted = [(w, s) for w, s in endpoints if w > 0]
        if not weighted:
            out[region] = Routing(False, "endpoint weight 0" if endpoints else "no endpoint", at=at)
            continue
        healthy = [s for _, s in weighted if s in ("HEALTHY", "INITIAL", "UNKNOWN")]
        if not healthy and any_healthy:
            out[region] = Routing(False, "endpoint unhealthy", at=at)
            continue
        if not healthy:
            out[region] = Routing(
                True, f"traffic dial {dial:g} %: no endpoint healthy anywhere, fails open", at=at
            )
            continue
        state = "healthy" if "HEALTHY" in healthy else "not checked yet"
        out[region] = Routing(True, f"traffic dial {dial:g} %, endpoint {state}", at=at)
    return out


# --- both sources: what the clients see decides ------------------------------------


def _vantages(names):
    return names[0] if len(names) == 1 else f"{len(names)} vantages ({', '.join(names)})"


def _ago(at, now):
    return f"{format_duration(max(now - at, timedelta(0)))} ago"


def _served(region, served, now):
    """The clients' fact for a region that serves them: "served by us-east-1 from local,
    0.8 s ago" (or "sent to ... answered 429" when the region failed them)."""
    names = sorted(served)
    newest = max(sample.at for sample in served.values())
    failed = sorted({str(s.status_code or s.error_class or "an error") for s in served.values() if not s.ok})
    if failed:
        return f"sent to {region} from {_vantages(names)}, answered {', '.join(failed)}, {_ago(newest, now)}"
    return f"served by {region} from {_vantages(names)}, {_ago(newest, now)}"


def _elsewhere(region, clients, now):
    """The clients' fact for a region that serves none of them."""
    others = {}
    for vantage, sample in clients.items():
        others.setdefault(sample.served_region or "no region", []).append(vantage)
    where = "; ".join(f"{_vantages(sorted(v))} served by {r}" for r, v in sorted(others.items()))
    newest = max(sample.at for sample in clients.values())
    return f"not serving any vantage ({where}), {_ago(newest, now)}"


def _aws_fact(aws, now):
    when = f", as of {_ago(aws.at, now)}" if aws.at is not None else ""
    return f"AWS: {aws.reason}{when}"


def follow_clients(aws, health, global_tracks, thresholds, now):
    """{region: Routing} for one application, the clients' view first.

    - `aws`: {region: Routing} from `routing_state` (may be empty: no routing component);
    - `health`: {region: status.Verdict} of each region's /health by the probes;
    - `global_tracks`: {vantage: status.Track} of the global endpoint (empty: no global
      endpoint URL); a vantage whose latest probe is older than `thresholds.stale` says
      nothing.

    A region serving at least one vantage receives traffic (source "clients"); a region
    serving none while its /health is unhealthy by the probes receives none ("clients");
    otherwise AWS's view decides ("aws"). Each reason gives both sources' facts, the
    deciding one first, and says when AWS's is behind the clients'. A region neither
    source knows of is left out."""
    clients = {
        vantage: track.last
        for vantage, track in sorted(global_tracks.items())
        if track.last is not None and now - track.last.at <= thresholds.stale
    }
    out = {}
    for region in sorted(set(health) | set(aws)):
        verdict, as_aws = health.get(region), aws.get(region)
        served = {v: sample for v, sample in clients.items() if sample.served_region == region}
        if served:
            decided = Routing(
                True, f"clients: {_served(region, served, now)}", "clients",
                max(sample.at for sample in served.values()),
            )
        elif clients and verdict is not None and verdict.status == HealthStatus.UNHEALTHY:
            decided = Routing(
                False, f"clients: {_elsewhere(region, clients, now)}; probes: /health {verdict.reason}",
                "clients", max(sample.at for sample in clients.values()),
            )
        else:
            decided = None
        if decided is not None:
            if as_aws is not None:  # AWS's fact beside it, and whether it lags behind
                agree = as_aws.receives_traffic == decided.receives_traffic
                behind = "" if agree else " (behind the clients)"
                decided = decided._replace(reason=f"{decided.reason}; {_aws_fact(as_aws, now)}{behind}")
            out[region] = decided
        elif as_aws is not None:
            facts = [_aws_fact(as_aws, now)]
            if clients:
                facts.append(f"clients: {_elsewhere(region, clients, now)}")
            out[region] = as_aws._replace(reason="; ".join(facts))
    return out
