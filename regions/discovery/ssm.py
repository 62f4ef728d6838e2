"""Systems Manager: a stack's failure-injection parameter (docs/DISCOVERY.md)."""

import contextlib
import json

from controlplane import aws
from regions.models import ComponentKind


def read_parameter(reader, region, app, name):
    ssm = aws.client_for_region("ssm", region)
    result = reader.call(f"ssm {name} in {region.code}", ssm.get_parameter, Name=name)
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
