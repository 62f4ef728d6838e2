"""What the sandbox knows beyond moto: stacks' local ports and ids, the Global
Accelerator and ARC models moto lacks, and what the health checkers observed.

One Registry per running sandbox, shared by the AWS API front, the app servers, the
health checkers, the global endpoints and the replicator. Plain data under one lock.
"""

import threading
import time
import uuid
from dataclasses import dataclass, field


def _hex(n):
    return uuid.uuid4().hex[:n]


@dataclass
class Stack:
    app: str
    region: str
    architecture: str
    port: int = 0
    health_check_id: str = ""  # Route 53 (architecture A)
    rest_api_id: str = ""  # API Gateway (A)
    stage_name: str = ""
    load_balancer_arn: str = ""  # ALB (B)
    listener_arn: str = ""
    target_group_arn: str = ""
    table_arn: str = ""
    routing_control_arn: str = ""
    endpoint_group_arn: str = ""  # Global Accelerator (B)

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def health_url(self):
        return f"{self.base_url}/health"


@dataclass
class Observation:
    """The latest verdict of one health checker (Route 53 check or GA endpoint)."""

    healthy: bool = True  # checks start healthy, as new Route 53 checks report
    status: str = "Success: HTTP Status Code 200, OK"
    checked_at: float = field(default_factory=time.time)
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    last_failure: str = ""  # the latest failed probe's status, for GetHealthCheckLastFailureReason
    last_failure_at: float = 0.0


@dataclass
class Endpoint:
    endpoint_id: str  # the ALB ARN
    weight: int = 128
    client_ip_preservation: bool = True


@dataclass
class EndpointGroup:
    arn: str
    region: str
    endpoints: list
    traffic_dial: float = 100.0
    health_check_port: int = 80
    health_check_protocol: str = "HTTP"
    health_check_path: str = "/health"
    health_check_interval: int = 30
    threshold_count: int = 3


@dataclass
class Listener:
    arn: str
    endpoint_groups: list
    port: int = 443
    protocol: str = "TCP"


@dataclass
class Accelerator:
    arn: str
    name: str
    dns_name: str
    ip_addresses: list
    listeners: list
    tags: dict
    created: float = field(default_factory=time.time)
    enabled: bool = True


@dataclass
class RoutingControl:
    arn: str
    name: str
    control_panel_arn: str
    state: str = "On"
    tags: dict = field(default_factory=dict)


@dataclass
class ControlPanel:
    arn: str
    name: str
    cluster_arn: str
    tags: dict = field(default_factory=dict)


@dataclass
class Cluster:
    arn: str
    name: str
    endpoints: list  # [{"Endpoint": url, "Region": region}]
    tags: dict = field(default_factory=dict)


class Registry:
    def __init__(self, account_id):
        self.account_id = account_id
        self.lock = threading.RLock()
        self.stacks = {}  # (app, region) -> Stack
        self.accelerators = {}  # arn -> Accelerator
        self.clusters = {}  # arn -> Cluster
        self.control_panels = {}  # arn -> ControlPanel
        self.routing_controls = {}  # arn -> RoutingControl
        # health check id (Route 53) or ALB ARN (GA endpoint) -> Observation
        self.observations = {}

    # --- ids in AWS's own formats -------------------------------------------------
    def new_accelerator(self, name, tags):
        arn = f"arn:aws:globalaccelerator::{self.account_id}:accelerator/{uuid.uuid4()}"
        dns = f"a{_hex(16)}.awsglobalaccelerator.com"
        ips = [f"75.2.{n}.{10 + n}" for n in range(2)]
        acc = Accelerator(arn, name, dns, ips, [], dict(tags))
        self.accelerators[arn] = acc
        return acc

    def new_listener(self, accelerator):
        listener = Listener(f"{accelerator.arn}/listener/{_hex(8)}", [])
        accelerator.listeners.append(listener)
        return listener

    def new_endpoint_group(self, listener, region, endpoint_id, **health):
        group = EndpointGroup(
            f"{listener.arn}/endpoint-group/{_hex(12)}", region, [Endpoint(endpoint_id)], **health
        )
        listener.endpoint_groups.append(group)
        return group

    def new_cluster(self, name, endpoint_url, regions, tags=None):
        arn = f"arn:aws:route53-recovery-control::{self.account_id}:cluster/{uuid.uuid4()}"
        endpoints = [{"Endpoint": endpoint_url, "Region": r} for r in regions]
        cluster = Cluster(arn, name, endpoints, dict(tags or {}))
        self.clusters[arn] = cluster
        return cluster

    def new_control_panel(self, cluster, name, tags=None):
        arn = f"arn:aws:route53-recovery-control::{self.account_id}:controlpanel/{_hex(32)}"
        panel = ControlPanel(arn, name, cluster.arn, dict(tags or {}))
        self.control_panels[arn] = panel
        return panel

    def new_routing_control(self, panel, name, tags=None):
        arn = f"{panel.arn}/routingcontrol/{_hex(16)}"
        control = RoutingControl(arn, name, panel.arn, "On", dict(tags or {}))
        self.routing_controls[arn] = control
        return control

    # --- lookups ---------------------------------------------------------------------
    def find_endpoint_group(self, arn):
        for acc in self.accelerators.values():
            for listener in acc.listeners:
                for group in listener.endpoint_groups:
                    if group.arn == arn:
                        return acc, listener, group
        return None

    def find_listener(self, arn):
        for acc in self.accelerators.values():
            for listener in acc.listeners:
                if listener.arn == arn:
                    return acc, listener
        return None

    def observation(self, key):
        with self.lock:
            return self.observations.setdefault(key, Observation())

    def routing_control_on(self, stack):
        control = self.routing_controls.get(stack.routing_control_arn)
        return control is None or control.state == "On"
