"""The sandbox topology: one YAML file describing applications, regions and stacks."""

from dataclasses import dataclass
from pathlib import Path

import yaml

DEFAULT_PATH = Path(__file__).with_name("topology.yaml")


@dataclass(frozen=True)
class Alarm:
    metric: str
    namespace: str
    threshold: float


@dataclass(frozen=True)
class Application:
    name: str
    architecture: str  # "A" (Route 53 + API Gateway) or "B" (Global Accelerator + ALB)
    domain: str
    owner: str
    regions: tuple[str, ...]
    table: str
    functions: tuple[str, ...]
    routing: str = "latency"
    stage: str = "prod"
    request_interval: int = 10
    failure_threshold: int = 3
    alarms: tuple[Alarm, ...] = ()

    @property
    def api_function(self):
        return self.functions[0]

    @property
    def health_function(self):
        return self.functions[-1]

    def ssm_parameter(self, region):
        return f"/{self.name}/{region}/failure-injection"


@dataclass(frozen=True)
class Topology:
    account_id: str
    client_location: tuple[str, ...]
    applications: dict[str, Application]
    replication_delay_ms: float = 300
    replication_jitter_ms: float = 100
    metric_period_s: float = 1

    def stacks(self):
        """Every (application, region) pair, in a stable order."""
        for app in self.applications.values():
            for region in app.regions:
                yield app, region

    def regions(self):
        return sorted({region for _, region in self.stacks()})


def load(path=None):
    data = yaml.safe_load(Path(path or DEFAULT_PATH).read_text())
    apps = {}
    for name, spec in data["applications"].items():
        hc = spec.get("health_check", {})
        architecture = str(spec["architecture"]).upper()
        if architecture not in ("A", "B"):
            raise ValueError(f"{name}: architecture must be A or B, not {architecture!r}")
        apps[name] = Application(
            name=name,
            architecture=architecture,
            domain=spec["domain"],
            owner=spec.get("owner", f"team-{name}"),
            regions=tuple(spec["regions"]),
            table=spec.get("table", name),
            functions=tuple(spec.get("functions", [f"{name}-api", f"{name}-health"])),
            routing=spec.get("routing", "latency"),
            stage=spec.get("stage", "prod"),
            request_interval=int(hc.get("request_interval", 10)),
            failure_threshold=int(hc.get("failure_threshold", 3)),
            alarms=tuple(Alarm(**a) for a in spec.get("alarms", [])),
        )
    repl = data.get("replication", {})
    return Topology(
        account_id=str(data.get("account_id", "123456789012")),
        client_location=tuple(data.get("client_location", [])),
        applications=apps,
        replication_delay_ms=float(repl.get("delay_ms", 300)),
        replication_jitter_ms=float(repl.get("jitter_ms", 100)),
        metric_period_s=float(repl.get("metric_period_s", 1)),
    )
