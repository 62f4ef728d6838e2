"""Systems Manager: a stack's failure-injection parameter (docs/DISCOVERY.md)."""

import contextlib
import json

from regions.models import ComponentKind


def read_parameter(reader, region, app, name):
    result = reader.read("ssm", region, "get_parameter", name, Name=name)
    if result is None:
        return
    param = result["Parameter"]
    value = param.get("Value")
    if param.get("Type") != "SecureString":
        with contextlib.suppress(TypeError, ValueError):
            value = json.loads(value)
    else:
        value = None  # never store secrets
    config = {"Type": param.get("Type"), "Value": value, "Version": param.get("Version")}
    reader.add(app, region.code, ComponentKind.SSM_FAULT_PARAMETER, name, name, config)
