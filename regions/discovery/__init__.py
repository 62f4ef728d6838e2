"""Discovery of applications, stacks and components from AWS by tags (docs/DISCOVERY.md).

Two phases:

1. **Read** (no database transaction held): per scanned region, the Resource Groups
   Tagging API lists the resources tagged with ``settings.DISCOVERY_TAG_KEY``; each is
   then described with its own service's API to read its configuration (one module per
   service, below), through a ``Reader`` that collects what was found and the warnings.
   Services the tagging API does not return in every environment (API Gateway stages and
   FIS templates under moto) are also listed through their own list calls; results are
   de-duplicated by identifier. Global services (Route 53, Global Accelerator, ARC) are
   read once per distinct (role, external id) of the scanned regions.
2. **Write** (one transaction): applications, regions, stacks and components are created
   or updated through ``regions.inventory.Writer``, so each change is audited exactly like
   an import, and a second run over the same resources changes nothing (only the
   ``discovered_at`` timestamps move, which is not a change).

Discovery never deletes: a resource that disappeared stays in the inventory until an
import with ``--prune`` or an admin removes it.

A service that cannot be read (not available in this endpoint, AccessDenied, a
persistent throttle after the client's own retries) becomes a warning in the report;
the rest of the run goes on. There are no retries here beyond the client's standard
retry mode, which already retries the transient errors (``controlplane.aws.is_transient``).

Modules (each service module reads through a ``Reader``; none keeps state of its own):

    reader.py             Reader (found components, application facts, health URLs,
                          warnings; `call` and `paginate`: a failed AWS call is a warning),
                          Found, the tag keys
    tagging.py            Resource Groups Tagging API: a region's tagged resources, each
                          handed to its service's module by ARN
    awslambda.py          Lambda functions (configuration, reserved concurrency)
    dynamodb.py           DynamoDB replicas
    apigateway.py         API Gateway stages (also listed directly: moto's tagging API
                          does not return them)
    elbv2.py              ALB listeners
    ssm.py                SSM failure-injection parameters
    cloudwatch.py         CloudWatch alarms
    fis.py                FIS experiment templates (also listed directly)
    route53.py            Route 53 health checks and records (global)
    globalaccelerator.py  Global Accelerator endpoint groups (global)
    arc.py                ARC routing controls (route53-recovery-control-config, global)
    run.py                run_discovery(): phase 1 over the regions, phase 2 into the
                          inventory; DiscoveryReport

The live configuration refresh (regions/drift.py) re-reads components with the same
``Reader`` and service functions, e.g.::

    reader = Reader({"us-east-1": region})
    awslambda.read_function(reader, region, "orders", function_arn)
    reader.found[("orders", "us-east-1", ComponentKind.LAMBDA_FUNCTION, function_arn)].config
"""

from regions.discovery.reader import (
    ARCHITECTURE_TAG,
    GLOBAL_ENDPOINT_URL_TAG,
    HEALTH_URL_TAG,
    REGION_TAG,
    Found,
    Reader,
)
from regions.discovery.run import KIND_ARCHITECTURE, DiscoveryReport, run_discovery

__all__ = [
    "ARCHITECTURE_TAG",
    "GLOBAL_ENDPOINT_URL_TAG",
    "HEALTH_URL_TAG",
    "KIND_ARCHITECTURE",
    "REGION_TAG",
    "DiscoveryReport",
    "Found",
    "Reader",
    "run_discovery",
]
