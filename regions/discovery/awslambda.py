"""Lambda: a function's configuration and reserved concurrency (docs/DISCOVERY.md)."""

from controlplane import aws
from regions.discovery.reader import pick
from regions.models import ComponentKind


def read_function(reader, region, app, arn):
    lam = aws.client_for_region("lambda", region)
    where = f"lambda {arn}"
    cfg = reader.call(where, lam.get_function_configuration, FunctionName=arn)
    if cfg is None:
        return
    concurrency = reader.call(where, lam.get_function_concurrency, FunctionName=arn) or {}
    config = pick(
        cfg, "FunctionName", "Runtime", "Handler", "MemorySize", "Timeout", "Architectures",
        "Role", "Version",
    )
    config["ReservedConcurrentExecutions"] = concurrency.get("ReservedConcurrentExecutions")
    reader.add(app, region.code, ComponentKind.LAMBDA_FUNCTION, arn, cfg.get("FunctionName"), config)
