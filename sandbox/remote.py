"""A running sandbox seen from another process: its state file (sandbox.json, written by
`manage.py sandbox`) and boto3 clients on its AWS endpoint. What `sandbox.faults` needs
(`.state`, `.client(service, region)`), so that `manage.py sandbox_reset` can put the
world back as seeded without a restart."""

import json
import threading
from pathlib import Path
from types import SimpleNamespace

from controlplane import aws


class RemoteSandbox:
    def __init__(self, state_file):
        self.state_file = Path(state_file)
        self.state = json.loads(self.state_file.read_text())
        self.aws_endpoint = self.state["aws_endpoint"]
        self.time_scale = self.state["time_scale"]
        self._clients, self._lock = {}, threading.Lock()

    def stack(self, app_name, region):
        """A stack's ids and URLs from the state file."""
        data = self.state["applications"][app_name]["stacks"][region]
        return SimpleNamespace(
            app=app_name,
            region=region,
            base_url=data["url"],
            stage_name=data["stage"],
            **{k: v or "" for k, v in data.items()},
        )

    def client(self, service, region):
        """A cached boto3 client on the sandbox's endpoint (made by controlplane.aws)."""
        with self._lock:
            if (service, region) not in self._clients:
                self._clients[(service, region)] = aws.client(service, region, endpoint_url=self.aws_endpoint)
            return self._clients[(service, region)]
