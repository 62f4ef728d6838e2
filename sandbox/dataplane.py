"""The global data plane: health checkers and each application's global endpoint.

Health checkers evaluate, like Route 53 and Global Accelerator do:
- every Route 53 health check configured in moto (Type HTTP/HTTPS, IPAddress or FQDN,
  Port, ResourcePath, RequestInterval, FailureThreshold, Inverted, Disabled), re-read
  each round, so UpdateHealthCheck takes effect on the next probe;
- every Global Accelerator endpoint (an ALB) with its endpoint group's health check
  port, path, interval and threshold count.
A check goes unhealthy after `threshold` consecutive failed probes and healthy again
after `threshold` consecutive good ones. Intervals are multiplied by time_scale.

A global endpoint is an HTTP reverse proxy per application that picks the region per
request as Route 53 (latency / failover / weighted records with health checks) or
Global Accelerator (nearest endpoint group, traffic dials, endpoint weights, health,
fail-open) would, for a client at the topology's `client_location`, or, when the
request names a vantage in `X-Controlplane-Vantage` (as the console's probes and drill
observers do) that is an AWS region code, for a client in that region: the regions are
then ranked by great-circle distance from it, standing in for measured latency. So each
vantage of a multi-vantage deployment is a client location of its own here, as it is
for the real Route 53 and Global Accelerator.
"""

import asyncio
import functools
import logging
import math
import random
import time

import aiohttp
from aiohttp import web

from sandbox import motostate

log = logging.getLogger("sandbox.dataplane")
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "host",
    "proxy-connection",
    "upgrade",
    "te",
    "trailer",
    "content-encoding",
}


def _true(value):
    return value is True or str(value).lower() == "true"


class HealthCheckers:
    def __init__(self, world):
        self.world = world
        self.registry = world.registry
        self.account_id = world.topology.account_id
        self._due = {}  # key -> monotonic time of the next probe
        self._inflight = set()
        self._tasks = set()  # strong references: the loop only keeps weak ones

    def _targets(self):
        """(key, url, host header, interval s, threshold, inverted, disabled) to check now."""
        targets = []
        with motostate.DATA_LOCK:
            r53 = motostate.global_backend("route53", self.account_id)
            for hc in list(r53.health_checks.values()):
                if (hc.type_ or "").upper() not in ("HTTP", "HTTPS", "HTTP_STR_MATCH"):
                    continue
                host = hc.ip_address or hc.fqdn
                url = f"http://{host}:{int(hc.port)}{hc.resource_path or '/'}"
                targets.append(
                    (
                        hc.id,
                        url,
                        hc.fqdn,
                        int(hc.request_interval),
                        int(hc.failure_threshold),
                        _true(hc.inverted),
                        _true(hc.disabled),
                    )
                )
        with self.registry.lock:
            for acc in self.registry.accelerators.values():
                for listener in acc.listeners:
                    for group in listener.endpoint_groups:
                        for ep in group.endpoints:
                            url = (
                                f"http://127.0.0.1:{int(group.health_check_port)}"
                                f"{group.health_check_path or '/'}"
                            )
                            targets.append(
                                (
                                    ep.endpoint_id,
                                    url,
                                    None,
                                    int(group.health_check_interval),
                                    int(group.threshold_count),
                                    False,
                                    False,
                                )
                            )
        return targets

    async def run(self, session):
        while True:
            now = time.monotonic()
            try:
                targets = self._targets()
            except Exception:
                log.exception("reading health check configuration failed")
                targets = []
            for target in targets:
                key = target[0]
                if key in self._inflight or now < self._due.get(key, 0):
                    continue
                self._due[key] = now + target[3] * self.world.time_scale
                self._inflight.add(key)
                task = asyncio.create_task(self._probe(session, *target))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            await asyncio.sleep(0.02)

    async def _probe(self, session, key, url, host, interval, threshold, inverted, disabled):
        # Route 53 waits 4 s to connect and 2 s for the response; scaled, but not below
        # what a local server needs.
        timeout = aiohttp.ClientTimeout(total=max(0.5, 6 * self.world.time_scale))
        try:
            headers = {"Host": host} if host else {}
            async with session.get(url, headers=headers, timeout=timeout, allow_redirects=False) as resp:
                await resp.read()
                ok = 200 <= resp.status < 400
                status = f"HTTP Status Code {resp.status}, {resp.reason}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            ok, status = False, f"Connection failed: {type(exc).__name__}"
        finally:
            self._inflight.discard(key)
        if inverted:
            ok = not ok
            status = f"Inverted health check: {status}"
        self._record(key, ok, status, threshold, disabled)

    def _record(self, key, ok, status, threshold, disabled):
        obs = self.registry.observation(key)
        with self.registry.lock:
            obs.checked_at = time.time()
            if ok:
                obs.consecutive_successes += 1
                obs.consecutive_failures = 0
                if obs.consecutive_successes >= threshold:
                    obs.healthy = True
            else:
                obs.consecutive_failures += 1
                obs.consecutive_successes = 0
                if obs.consecutive_failures >= threshold:
                    obs.healthy = False
            if disabled:  # Route 53 considers a disabled check healthy
                obs.healthy = True
                status = f"Disabled health check (considered healthy); last probe: {status}"
            obs.status = f"{'Success' if ok else 'Failure'}: {status}"
            if not ok and not disabled:  # Route 53 does not probe a disabled check
                obs.last_failure, obs.last_failure_at = obs.status, obs.checked_at


# The request header that says where the client sits (the console's vantage label).
# A literal here: the sandbox imports nothing from the console (regions.probes has the same).
VANTAGE_HEADER = "X-Controlplane-Vantage"

# Approximate locations (latitude, longitude) of AWS regions, to rank regions by distance
# from a client in one of them.
REGION_COORDINATES = {
    "us-east-1": (38.9, -77.4),
    "us-east-2": (40.0, -83.0),
    "us-west-1": (37.4, -122.0),
    "us-west-2": (45.8, -119.7),
    "ca-central-1": (45.5, -73.6),
    "sa-east-1": (-23.5, -46.6),
    "eu-west-1": (53.3, -6.3),
    "eu-west-2": (51.5, -0.1),
    "eu-west-3": (48.9, 2.4),
    "eu-central-1": (50.1, 8.7),
    "eu-north-1": (59.3, 18.1),
    "eu-south-1": (45.5, 9.2),
    "ap-south-1": (19.1, 72.9),
    "ap-southeast-1": (1.3, 103.8),
    "ap-southeast-2": (-33.9, 151.2),
    "ap-northeast-1": (35.7, 139.7),
    "ap-northeast-2": (37.6, 127.0),
}


def _distance_km(a, b):
    (lat1, lon1), (lat2, lon2) = (map(math.radians, p) for p in (a, b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371 * math.asin(math.sqrt(h))


def location_order(location, regions, default_order):
    """The regions of an application ranked for a client at `location`: by distance when
    `location` is a known region code, else in `default_order` (the topology's
    client_location), regions not named there last."""
    regions = list(regions)
    if location in REGION_COORDINATES:
        here = REGION_COORDINATES[location]
        far = float("inf")
        return sorted(
            regions,
            key=lambda r: _distance_km(here, REGION_COORDINATES[r]) if r in REGION_COORDINATES else far,
        )
    return [r for r in default_order if r in regions] + [r for r in regions if r not in default_order]


class Router:
    """Picks the serving region for one request to an application's global endpoint."""

    def __init__(self, world, app):
        self.world, self.app = world, app
        self.registry = world.registry
        self.order = self.order_for(None)

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one Router per application, for the world's life
    def order_for(self, location):
        return location_order(location, self.app.regions, self.world.topology.client_location)

    def _stack_healthy(self, stack, health_key):
        obs = self.registry.observations.get(health_key)
        # ARC: a routing control switched Off takes the stack out (as if the record's
        # health check were the routing control's RECOVERY_CONTROL check).
        return (obs is None or obs.healthy) and self.registry.routing_control_on(stack)

    def choose(self, location=None):
        order = self.order_for(location) if location else self.order
        if self.app.architecture == "A":
            return self._route53(order)
        return self._accelerator(order)

    def _route53(self, order):
        account = self.world.topology.account_id
        zone_id = self.world.hosted_zones.get(self.app.name)
        if zone_id is None:
            return None  # still seeding: nothing is routable yet
        with motostate.DATA_LOCK:
            zone = motostate.global_backend("route53", account).get_hosted_zone(zone_id)
            records = [
                r for r in zone.rrsets if r.name.rstrip(".") == f"api.{self.app.domain}" and r.set_identifier
            ]
        by_region = {}
        for record in records:
            region = record.region or record.set_identifier
            stack = self.registry.stacks.get((self.app.name, region))
            if stack is None:
                continue
            healthy = not record.health_check_id or self._stack_healthy(stack, record.health_check_id)
            by_region[region] = (record, healthy)
        if not by_region:
            return None
        healthy = [r for r, (_, ok) in by_region.items() if ok]
        # Route 53: when every record is unhealthy, it answers as if all were healthy.
        candidates = healthy or list(by_region)
        some = next(iter(by_region.values()))[0]
        if some.failover:
            ranked = sorted(candidates, key=lambda r: by_region[r][0].failover != "PRIMARY")
            return ranked[0]
        if some.weight is not None:
            weights = [int(by_region[r][0].weight or 0) for r in candidates]
            if sum(weights) == 0:
                weights = [1] * len(candidates)
            return random.choices(candidates, weights)[0]
        return min(candidates, key=lambda r: order.index(r) if r in order else 99)

    def _accelerator(self, order):
        with self.registry.lock:
            groups = []
            for acc in self.registry.accelerators.values():
                if acc.tags.get("controlplane:application") != self.app.name:
                    continue
                for listener in acc.listeners:
                    groups.extend(listener.endpoint_groups)
            groups.sort(key=lambda g: order.index(g.region) if g.region in order else 99)
            stacks = {s.load_balancer_arn: s for s in self.registry.stacks.values()}

            def usable(group, need_health):
                eps = [e for e in group.endpoints if e.weight > 0 and e.endpoint_id in stacks]
                if need_health:
                    eps = [e for e in eps if self._stack_healthy(stacks[e.endpoint_id], e.endpoint_id)]
                return eps

            # Nearest group first; its traffic dial keeps that share, the rest spills to
            # the next nearest group with healthy endpoints.
            for need_health in (True, False):  # second pass: fail open
                live = [(g, usable(g, need_health)) for g in groups]
                live = [(g, eps) for g, eps in live if eps and g.traffic_dial > 0]
                for group, eps in live:
                    if random.uniform(0, 100) < group.traffic_dial or group is live[-1][0]:
                        chosen = random.choices(eps, [e.weight for e in eps])[0]
                        return stacks[chosen.endpoint_id].region
        return None


class GlobalEndpoint:
    def __init__(self, world, app):
        self.world, self.app = world, app
        self.router = Router(world, app)

    def build(self):
        web_app = web.Application()
        web_app.router.add_route("*", "/{tail:.*}", self.proxy)
        return web_app

    async def proxy(self, request):
        region = self.router.choose(request.headers.get(VANTAGE_HEADER))
        if region is None:
            return web.json_response({"message": f"no region of {self.app.name} is routable"}, status=503)
        stack = self.world.registry.stacks[(self.app.name, region)]
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        body = await request.read()
        try:
            async with self.world.http.request(
                request.method,
                f"{stack.base_url}{request.rel_url}",
                headers=headers,
                data=body or None,
                allow_redirects=False,
            ) as upstream:
                payload = await upstream.read()
                out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
                out["X-Sandbox-Routed-To"] = region
                return web.Response(status=upstream.status, body=payload, headers=out)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return web.json_response(
                {"message": f"upstream {region} failed: {type(exc).__name__}"},
                status=502,
                headers={"X-Sandbox-Routed-To": region},
            )
