"""Start and stop the whole sandbox in this process.

    from sandbox import world
    sb = world.start(time_scale=0.1)       # free ports, seeded, checkers running
    sb.aws_endpoint                          # "http://127.0.0.1:PORT" for every boto3 client
    sb.state                                 # what var/sandbox.json holds
    sb.stop()

moto keeps its state in module globals, so one sandbox runs per process at a time;
start() resets moto's backends (as POST /moto-api/reset does).
"""

import asyncio
import json
import logging
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiohttp import web
from moto.moto_server.werkzeug_app import MotoRequestHandler
from werkzeug.serving import make_server

from controlplane import aws
from sandbox import motofixes
from sandbox import topology as topology_mod
from sandbox.appserver import RegionalApp
from sandbox.awsapi import AwsFront
from sandbox.dataplane import GlobalEndpoint, HealthCheckers
from sandbox.registry import Registry, Stack
from sandbox.replication import Replicator
from sandbox.seed import Seeder

log = logging.getLogger("sandbox")
_running_lock = threading.Lock()
_running = None

# moto needs some credentials to sign with; the sandbox accepts any.
SANDBOX_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "sandbox",
    "AWS_SECRET_ACCESS_KEY": "sandbox",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# moto settings read at backend creation: skip loading thousands of EC2 AMIs (the ALBs
# only need the default VPC's subnets).
MOTO_SETTINGS = {"MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}


class QuietHandler(MotoRequestHandler):
    """moto's request handler, without a log line per AWS call."""

    def log_request(self, code="-", size="-"):
        pass


def _reset_moto():
    from moto.moto_api._internal.models import moto_api_backend

    moto_api_backend.reset()


# moto backends the seed and the data plane use, built before seeding (moto builds them
# lazily, on the first request, which would make the first calls of each service slow).
REGIONAL_SERVICES = ("dynamodb", "ssm", "lambda", "cloudwatch", "fis", "resourcegroupstaggingapi")
GLOBAL_SERVICES = ("iam", "route53", "sts")
ARCHITECTURE_SERVICES = {"A": ("apigateway",), "B": ("ec2", "elbv2")}


def _warm_backends(topology, dispatcher):
    from moto.backends import get_backend
    from moto.moto_server.werkzeug_app import create_backend_app

    account = topology.account_id
    wanted = {(service, "global") for service in GLOBAL_SERVICES}
    for app, region in topology.stacks():
        for service in REGIONAL_SERVICES + ARCHITECTURE_SERVICES[app.architecture]:
            wanted.add((service, region))
    for service, region in sorted(wanted):
        get_backend(service)[account][region]
    # moto's server builds one Flask app per service on its first request; build them now.
    with dispatcher.lock:
        for service in sorted({service for service, _ in wanted}):
            if service not in dispatcher.app_instances:
                dispatcher.app_instances[service] = create_backend_app(service)


class Sandbox:
    def __init__(self, topology, time_scale, aws_port, base_port, state_file):
        self.topology = topology
        self.time_scale = float(time_scale)
        self.registry = Registry(topology.account_id)
        self.log = log
        self.hosted_zones = {}  # app -> Route 53 zone id
        self.global_ports = {}  # app -> port
        self._aws_port, self._base_port = aws_port, base_port
        self.state_file = Path(state_file) if state_file else None
        self.state = {}
        self.replicator = Replicator(self)
        self._runners = []
        self._checker_task = None
        self.http = None  # aiohttp.ClientSession, on the sandbox's event loop
        self._clients, self._clients_lock = {}, threading.Lock()
        self.regional_apps = []

    # --- public ----------------------------------------------------------------------
    @property
    def aws_endpoint(self):
        return f"http://127.0.0.1:{self._aws_server.server_port}"

    def global_endpoint_url(self, app_name):
        return f"http://127.0.0.1:{self.global_ports[app_name]}/"

    def stack(self, app_name, region):
        return self.registry.stacks[(app_name, region)]

    def client(self, service, region):
        """A cached boto3 client on the sandbox (made by controlplane.aws)."""
        key = (service, region)
        with self._clients_lock:
            if key not in self._clients:
                self._clients[key] = aws.client(service, region, endpoint_url=self.aws_endpoint)
            return self._clients[key]

    def global_table(self, table_name, region):
        """The application whose global table `table_name` has a replica in `region`, or None."""
        for app in self.topology.applications.values():
            if app.table == table_name and region in app.regions:
                return app
        return None

    def replica_status(self, app, region):
        """A replica's ReplicaStatus: REPLICATION_NOT_AUTHORIZED while replication to it is
        paused (what FIS's pause action shows in AWS), else ACTIVE."""
        return "REPLICATION_NOT_AUTHORIZED" if self.replicator.paused(app, region, fresh=True) else "ACTIVE"

    def replicas_of(self, table_name, region):
        """DescribeTable's Replicas for a sandbox global table seen from `region`."""
        app = self.global_table(table_name, region)
        if app is None:
            return []
        return [
            {
                "RegionName": other,
                "ReplicaStatus": self.replica_status(app, other),
                "ReplicaTableClassSummary": {"TableClass": "STANDARD"},
            }
            for other in app.regions
            if other != region
        ]

    # --- lifecycle -----------------------------------------------------------------------
    def _start(self):
        t0 = self._t0 = time.monotonic()
        for key, value in {**SANDBOX_CREDENTIALS, **MOTO_SETTINGS}.items():
            os.environ.setdefault(key, value)
        _reset_moto()
        motofixes.install()
        front = AwsFront(self)
        self._aws_server = make_server(
            "127.0.0.1", self._aws_port, front, threaded=True, request_handler=QuietHandler
        )
        self._aws_thread = threading.Thread(
            target=self._aws_server.serve_forever, name="sandbox-aws", daemon=True
        )
        self._aws_thread.start()

        self.loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(
            target=self.loop.run_forever, name="sandbox-dataplane", daemon=True
        )
        self._loop_thread.start()
        self._call(self._start_servers())

        t1 = time.monotonic()
        _warm_backends(self.topology, front.moto)
        log.debug("moto backends warmed in %.2fs", time.monotonic() - t1)
        t1 = time.monotonic()
        Seeder(self).run()
        log.debug("seeded in %.2fs", time.monotonic() - t1)
        self.replicator.start()
        self._checker_task = self._call(self._start_checkers())
        self.state = self._build_state()
        if self.state_file:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.state, indent=2))
            tmp.replace(self.state_file)  # readers never see a half-written file
        self.startup_seconds = time.monotonic() - t0
        log.info("sandbox up in %.2fs at %s", self.startup_seconds, self.aws_endpoint)

    def stop(self):
        global _running
        self.replicator.stop()
        if getattr(self, "loop", None) and self.loop.is_running():
            self._call(self._stop_servers())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._loop_thread.join(timeout=5)
            self.loop.close()
        if getattr(self, "_aws_server", None):
            self._aws_server.shutdown()
            self._aws_server.server_close()
            self._aws_thread.join(timeout=5)
        if self.state_file and self.state_file.exists():
            self.state_file.unlink()
        with _running_lock:
            if _running is self:
                _running = None

    # --- on the event loop --------------------------------------------------------------
    def _call(self, coro, timeout=30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _serve(self, web_app, port):
        runner = web.AppRunner(web_app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port, reuse_address=True, backlog=512)
        await site.start()
        self._runners.append(runner)
        return runner.addresses[0][1]

    def _next_port(self):
        if not self._base_port:
            return 0
        port = self._base_port
        self._base_port += 1
        return port

    async def _start_servers(self):
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256), auto_decompress=False)
        for app, region in self.topology.stacks():
            stack = Stack(app.name, region, app.architecture)
            self.registry.stacks[(app.name, region)] = stack
            regional = RegionalApp(self, app, stack)
            self.regional_apps.append(regional)
            stack.port = await self._serve(regional.build(), self._next_port())
        for app in self.topology.applications.values():
            self.global_ports[app.name] = await self._serve(
                GlobalEndpoint(self, app).build(), self._next_port()
            )

    async def _start_checkers(self):
        return asyncio.create_task(HealthCheckers(self).run(self.http))

    async def _stop_servers(self):
        if self._checker_task:
            self._checker_task.cancel()
            await asyncio.gather(self._checker_task, return_exceptions=True)
        if self.http:
            await self.http.close()
        for runner in self._runners:
            await runner.cleanup()

    def _build_state(self):
        apps = {}
        for app in self.topology.applications.values():
            stacks = {}
            for region in app.regions:
                s = self.stack(app.name, region)
                stacks[region] = {
                    "url": s.base_url,
                    "port": s.port,
                    "health_url": s.health_url,
                    "table": app.table,
                    "table_arn": s.table_arn,
                    "ssm_fault_parameter": app.ssm_parameter(region),
                    "functions": list(app.functions),
                    "health_check_id": s.health_check_id or None,
                    "rest_api_id": s.rest_api_id or None,
                    "stage": s.stage_name or None,
                    "load_balancer_arn": s.load_balancer_arn or None,
                    "listener_arn": s.listener_arn or None,
                    "target_group_arn": s.target_group_arn or None,
                    "endpoint_group_arn": s.endpoint_group_arn or None,
                    "routing_control_arn": s.routing_control_arn,
                }
            apps[app.name] = {
                "architecture": app.architecture,
                "global_endpoint": self.global_endpoint_url(app.name),
                "regions": {r: self.stack(app.name, r).base_url for r in app.regions},
                "hosted_zone_id": self.hosted_zones.get(app.name),
                "stacks": stacks,
            }
        return {
            "aws_endpoint": self.aws_endpoint,
            "time_scale": self.time_scale,
            "startup_seconds": round(time.monotonic() - self._t0, 3),
            "started_at": datetime.now(UTC).isoformat(),
            "pid": os.getpid(),
            "account_id": self.topology.account_id,
            "client_location": list(self.topology.client_location),
            "applications": apps,
        }


def start(topology_path=None, time_scale=0.1, *, aws_port=0, base_port=0, state_file=None):
    """Start the sandbox on free ports (or the given ones) and return it, seeded.

    time_scale multiplies health-check intervals and the metric period (0.1: a 10 s
    Route 53 interval becomes 1 s). state_file: where to write the state JSON, if at all.
    """
    global _running
    with _running_lock:
        if _running is not None:
            raise RuntimeError("a sandbox is already running in this process (moto is global)")
        sandbox = Sandbox(topology_mod.load(topology_path), time_scale, aws_port, base_port, state_file)
        _running = sandbox
    try:
        sandbox._start()
    except BaseException:
        sandbox.stop()
        raise
    return sandbox
