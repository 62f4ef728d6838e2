"""A regional stack's data plane: one HTTP server per (application, region).

It plays the whole regional path of the real stack:
  A: API Gateway stage -> Lambda (orders-api / orders-health) -> DynamoDB replica
  B: ALB listener      -> Lambda                               -> DynamoDB replica
and honours, as the real services would, the faults the control plane injects through
the AWS APIs (read from moto's in-process state on every request):

- API Gateway stage throttling rate limit 0 -> 429 {"message": "Too Many Requests"}
- ALB listener default action fixed-response -> that status, content type and body
- Lambda reserved concurrency 0 -> 429 (TooManyRequestsException, the invoke is throttled)
- SSM failure-injection flag (chaos_lambda format) -> latency / exception / status_code,
  each with probability `rate` per request

Every response names the serving region: JSON field "region" and X-Served-By-Region.
"""

import asyncio
import logging
import random
import time
import uuid

from aiohttp import web

from sandbox import motostate

log = logging.getLogger("sandbox.app")
# How long the fault-relevant configuration read from moto is reused. Reading it is a
# handful of dict lookups in-process, so 0: a fault takes effect on the next request.
CONFIG_TTL = 0.0
REGION_HEADER = "X-Served-By-Region"


class StackConfig:
    """The stack's fault-relevant configuration, re-read from moto at most every TTL."""

    def __init__(self, account_id, app, stack):
        self.account_id, self.app, self.stack = account_id, app, stack
        self._value, self._read_at = None, 0.0

    def get(self):
        now = time.monotonic()
        if self._value is None or now - self._read_at > CONFIG_TTL:
            self._value, self._read_at = self._read(), now
        return self._value

    def _read(self):
        acct, region, app, stack = self.account_id, self.stack.region, self.app, self.stack
        cfg = {"fault": {}, "concurrency": {}, "throttled": {}, "fixed": None}
        with motostate.DATA_LOCK:
            try:
                cfg["fault"] = motostate.fault_config(acct, region, app.ssm_parameter(region))
            except Exception:
                log.debug("no failure-injection parameter for %s/%s", app.name, region)
            for fn in app.functions:
                try:
                    cfg["concurrency"][fn] = motostate.reserved_concurrency(acct, region, fn)
                except Exception:
                    cfg["concurrency"][fn] = 0
            if app.architecture == "A":
                for path in ("health", "items"):
                    try:
                        cfg["throttled"][path] = motostate.stage_throttled(
                            acct, region, stack.rest_api_id, stack.stage_name, path, "*"
                        )
                    except Exception:
                        cfg["throttled"][path] = True
            else:
                try:
                    cfg["fixed"] = motostate.listener_fixed_response(acct, region, stack.listener_arn)
                except Exception:
                    cfg["fixed"] = (503, "text/plain", "Service Unavailable")
        return cfg


def _respond(region, status, payload):
    payload = {"region": region, **payload}
    return web.json_response(payload, status=status, headers={REGION_HEADER: region})


class RegionalApp:
    def __init__(self, world, app, stack):
        self.world, self.app, self.stack = world, app, stack
        self.region = stack.region
        self.account_id = world.topology.account_id
        self.config = StackConfig(self.account_id, app, stack)

    def build(self):
        web_app = web.Application()
        web_app.router.add_route("*", "/", self.root)
        web_app.router.add_route("*", "/health", self.health)
        web_app.router.add_route("*", "/items", self.items)
        web_app.router.add_route("*", "/items/{id}", self.items)
        return web_app

    async def _through_stack(self, path, function):
        """Apply the entry layer and Lambda faults; None means: run the function body."""
        cfg = self.config.get()
        if self.app.architecture == "A" and cfg["throttled"].get(path):
            return _respond(self.region, 429, {"message": "Too Many Requests"})
        if self.app.architecture == "B" and cfg["fixed"]:
            status, content_type, body = cfg["fixed"]
            return web.Response(
                status=status,
                text=body,
                content_type=content_type.split(";")[0],
                headers={REGION_HEADER: self.region},
            )
        if cfg["concurrency"].get(function) == 0:
            return _respond(
                self.region,
                429,
                {
                    "message": "Rate Exceeded.",
                    "errorType": "TooManyRequestsException",
                    "reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
                },
            )
        fault = cfg["fault"]
        if fault.get("is_enabled") and random.random() < float(fault.get("rate", 1)):
            kind = fault.get("fault_type")
            if kind == "latency":
                await asyncio.sleep(float(fault.get("delay", 0)) / 1000)
            elif kind == "exception":
                return _respond(
                    self.region,
                    500,
                    {
                        "message": "Internal server error",
                        "errorType": "Exception",
                        "errorMessage": "Injected exception (failure-injection flag)",
                    },
                )
            elif kind == "status_code":
                status = int(fault.get("error_code", 500))
                return _respond(
                    self.region,
                    status,
                    {"message": f"Injected status code {status} (failure-injection flag)"},
                )
        return None

    async def root(self, request):
        """The API's root, as clients (and the control plane's global probes) call it
        through the global endpoint: it goes through the whole regional path."""
        early = await self._through_stack("items", self.app.api_function)
        if early is not None:
            return early
        return _respond(self.region, 200, {"service": self.app.name, "status": "ok"})

    async def health(self, request):
        early = await self._through_stack("health", self.app.health_function)
        if early is not None:
            return early
        # The talk's health function: a read of the regional replica.
        try:
            with motostate.DATA_LOCK:
                motostate.backend("dynamodb", self.account_id, self.region).get_item(
                    self.app.table, {"id": {"S": "health-check"}}
                )
        except Exception as exc:
            return _respond(
                self.region, 503, {"status": "unhealthy", "table_read_ok": False, "error": str(exc)}
            )
        return _respond(self.region, 200, {"status": "healthy", "table_read_ok": True})

    async def items(self, request):
        early = await self._through_stack("items", self.app.api_function)
        if early is not None:
            return early
        ddb = motostate.backend("dynamodb", self.account_id, self.region)
        item_id = request.match_info.get("id") or request.query.get("id")
        if request.method == "POST":
            try:
                body = await request.json()
            except ValueError:
                return _respond(self.region, 400, {"message": "body must be a JSON object"})
            if not isinstance(body, dict):
                return _respond(self.region, 400, {"message": "body must be a JSON object"})
            body.setdefault("id", item_id or uuid.uuid4().hex)
            body["id"] = str(body["id"])
            attrs = {k: motostate.to_ddb(v) for k, v in body.items()}
            with motostate.DATA_LOCK:
                ddb.put_item(self.app.table, attrs)
            return _respond(self.region, 201, {"item": body})
        if request.method != "GET":
            return _respond(self.region, 405, {"message": "Method Not Allowed"})
        with motostate.DATA_LOCK:
            if item_id:
                item = ddb.get_item(self.app.table, {"id": {"S": item_id}})
                if item is None:
                    return _respond(self.region, 404, {"message": f"no item {item_id}"})
                return _respond(self.region, 200, {"item": motostate.item_to_json(item)})
            table = ddb.get_table(self.app.table)
            items = [motostate.item_to_json(i) for i in table.all_items()[:100]]
        return _respond(self.region, 200, {"items": items, "count": len(items)})
