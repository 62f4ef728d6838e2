"""Discovery of applications, stacks and components from AWS by tags (docs/DISCOVERY.md).

Two phases:

1. **Read** (no database transaction held): per scanned region, the Resource Groups
   Tagging API lists the resources tagged with ``settings.DISCOVERY_TAG_KEY``; each is
   then described with its own service's API to read its configuration. Services the
   tagging API does not return in every environment (API Gateway stages and FIS
   templates under moto) are also listed through their own list calls; results are
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
"""

import contextlib
import json
import logging
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

from controlplane import aws
from controlplane.models import AuditSource
from regions.inventory import Summary, Writer
from regions.models import (
    Application,
    Architecture,
    Component,
    ComponentKind,
    Region,
    Stack,
    region_code_validator,
)

log = logging.getLogger(__name__)

REGION_TAG = "controlplane:region"
ARCHITECTURE_TAG = "controlplane:architecture"
GLOBAL_ENDPOINT_URL_TAG = "controlplane:global-endpoint-url"
HEALTH_URL_TAG = "controlplane:health-url"

# Which architecture a component kind implies, for applications without the tag.
KIND_ARCHITECTURE = {
    ComponentKind.ROUTE53_RECORD: Architecture.DNS,
    ComponentKind.API_GATEWAY_STAGE: Architecture.DNS,
    ComponentKind.GA_ENDPOINT_GROUP: Architecture.ANYCAST,
    ComponentKind.ALB_LISTENER: Architecture.ANYCAST,
}


@dataclass
class Found:
    """One component seen in AWS."""

    application: str
    region: str
    kind: str
    identifier: str
    name: str
    config: dict

    def __str__(self):
        return f"{self.application}/{self.region} {self.kind} {self.identifier}"


@dataclass
class DiscoveryReport:
    """What a run saw and what it changed.

    regions   region codes scanned
    found     Found components (application, region, kind, identifier, name, config)
    summary   regions.inventory.Summary: created/updated/unchanged counts per model,
              and `changes`, one line per created or updated object
    warnings  services or resources that could not be read, and tags that were ignored
    """

    regions: list = field(default_factory=list)
    found: list = field(default_factory=list)
    summary: Summary = field(default_factory=Summary)
    warnings: list = field(default_factory=list)

    @property
    def changes(self):
        return self.summary.changes

    def as_dict(self):
        return {
            "regions": self.regions,
            "found": [
                {
                    "application": f.application,
                    "region": f.region,
                    "kind": f.kind,
                    "identifier": f.identifier,
                    "name": f.name,
                }
                for f in self.found
            ],
            "counts": self.summary.as_dict(),
            "changes": self.changes,
            "warnings": self.warnings,
        }

    def lines(self):
        out = [f"Scanned regions: {', '.join(self.regions) or '(none)'}"]
        out.append(f"Found {len(self.found)} component(s):")
        for f in sorted(self.found, key=lambda f: (f.application, f.region, f.kind, f.identifier)):
            out.append(f"  {f.application}/{f.region}  {f.kind}  {f.identifier}")
        out.append("Changes:" if self.changes else "Changes: none")
        out.extend(f"  {line}" for line in self.changes)
        out.extend(self.summary.lines())
        if self.warnings:
            out.append(f"Warnings ({len(self.warnings)}):")
            out.extend(f"  {w}" for w in self.warnings)
        return out


# --- Helpers ----------------------------------------------------------------------


def _json(value):
    """boto3 output as plain JSON values (datetimes as ISO strings), for stable compares."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def _pick(data, *keys):
    return {k: data[k] for k in keys if k in data}


def _tags(raw):
    """Tags as a dict, whichever shape the service returns them in."""
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return dict(raw)
    return {t["Key"]: t.get("Value", "") for t in raw}


def _error_text(exc):
    if isinstance(exc, aws.ClientError):
        err = exc.response.get("Error", {})
        code = err.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = (err.get("Message") or "").strip().splitlines()
        text = f"{code}: {message[0][:160]}" if message and not message[0].startswith("<") else str(code)
        return text
    return str(exc)[:200]


def _health_url_from_check(config):
    """The URL a Route 53 health check requests, or "" for TCP/calculated checks."""
    kind = config.get("Type", "")
    if kind.startswith("HTTPS"):
        scheme, default_port = "https", 443
    elif kind.startswith("HTTP"):
        scheme, default_port = "http", 80
    else:
        return ""
    host = config.get("FullyQualifiedDomainName") or config.get("IPAddress")
    if not host:
        return ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    port = config.get("Port") or default_port
    netloc = host if port == default_port else f"{host}:{port}"
    path = config.get("ResourcePath") or "/"
    if not path.startswith("/"):
        path = "/" + path
    return f"{scheme}://{netloc}{path}"


def _valid_url(value):
    try:
        URLValidator()(value)
    except ValidationError:
        return False
    return True


# --- Phase 1: reading AWS ---------------------------------------------------------


class _Reader:
    def __init__(self, regions, applications, warnings):
        self.regions = regions  # code -> Region (saved or not)
        self.applications = set(applications) if applications else None
        self.tag_key = settings.DISCOVERY_TAG_KEY
        self.warnings = warnings
        self.found = {}  # (app, region, kind, identifier) -> Found
        self.app_facts = {}  # app -> {"architecture", "global_endpoint", "global_endpoint_url"}
        self.health_urls = {}  # (app, region) -> URL from a health-url tag
        self.derived_health_urls = {}  # (app, region) -> URL from the Route 53 health check
        self.unscanned = set()

    # -- bookkeeping

    def warn(self, message):
        log.warning("discovery: %s", message)
        self.warnings.append(message)

    def call(self, where, fn, *args, **kwargs):
        """Run one AWS call; on failure record a warning and return None."""
        try:
            return fn(*args, **kwargs)
        except (aws.ClientError, aws.BotoCoreError) as exc:
            self.warn(f"{where}: {_error_text(exc)}")
            return None

    def paginate(self, where, client, operation, key, **kwargs):
        """All items of a paginated list call, or None (and a warning) on failure."""
        items = []
        try:
            for page in client.get_paginator(operation).paginate(**kwargs):
                items.extend(page.get(key) or [])
        except (aws.ClientError, aws.BotoCoreError) as exc:
            self.warn(f"{where}: {_error_text(exc)}")
            return None
        return items

    def wanted(self, tags):
        app = tags.get(self.tag_key)
        if not app:
            return None
        if self.applications is not None and app not in self.applications:
            return None
        return app

    def add(self, app, region, kind, identifier, name, config):
        if region not in self.regions:
            if region not in self.unscanned:
                self.unscanned.add(region)
                self.warn(
                    f"{app}: resources tagged for region {region}, which is not scanned "
                    f"(add it to the inventory or pass --region {region})"
                )
            return
        key = (app, region, kind, identifier)
        self.found[key] = Found(app, region, kind, identifier, name or "", _json(config))

    def facts(self, app, tags, *, architecture=None, global_endpoint=""):
        facts = self.app_facts.setdefault(app, {})
        arch = tags.get(ARCHITECTURE_TAG) or architecture
        if arch:
            facts.setdefault("architecture", arch)
        if tags.get(GLOBAL_ENDPOINT_URL_TAG):
            facts.setdefault("global_endpoint_url", tags[GLOBAL_ENDPOINT_URL_TAG])
        if global_endpoint:
            facts.setdefault("global_endpoint", global_endpoint)

    def entry_tags(self, app, region, tags):
        if tags.get(HEALTH_URL_TAG):
            self.health_urls.setdefault((app, region), tags[HEALTH_URL_TAG])

    # -- regional

    def scan_region(self, region):
        code = region.code
        tagging = aws.client_for_region("resourcegroupstaggingapi", region)
        tag_filter = {"Key": self.tag_key}
        if self.applications:
            tag_filter["Values"] = sorted(self.applications)
        mappings = self.paginate(
            f"tagging in {code}",
            tagging,
            "get_resources",
            "ResourceTagMappingList",
            TagFilters=[tag_filter],
        )
        for mapping in mappings or []:
            tags = _tags(mapping.get("Tags"))
            app = self.wanted(tags)
            if app:
                self.describe(region, app, mapping["ResourceARN"], tags)
        # Services whose resources the tagging API may not return (moto, partitions
        # without tagging support): their own list calls, de-duplicated by identifier.
        self.scan_api_gateway(region)
        self.scan_fis(region)

    def describe(self, region, app, arn, tags):
        parts = arn.split(":", 5)
        if len(parts) < 6:
            return
        service, resource = parts[2], parts[5]
        code = region.code
        if service == "lambda" and resource.startswith("function:"):
            self.lambda_function(region, app, arn)
        elif service == "dynamodb" and resource.startswith("table/") and "/" not in resource[6:]:
            self.dynamodb_table(region, app, arn, resource[len("table/") :])
        elif service == "apigateway" and "/stages/" in resource:
            _, _, api_id, _, stage = resource.split("/", 4)
            self.entry_tags(app, code, tags)
            self.api_stage(region, app, api_id, stage)
        elif service == "elasticloadbalancing" and resource.startswith("loadbalancer/app/"):
            self.entry_tags(app, code, tags)
            self.load_balancer(region, app, arn)
        elif service == "ssm" and resource.startswith("parameter/"):
            rest = resource[len("parameter") :]
            name = rest if rest.count("/") > 1 else rest[1:]
            self.ssm_parameter(region, app, name)
        elif service == "cloudwatch" and resource.startswith("alarm:"):
            self.alarm(region, app, arn, resource[len("alarm:") :])
        elif service == "fis" and resource.startswith("experiment-template/"):
            self.fis_template(region, app, resource[len("experiment-template/") :])

    def lambda_function(self, region, app, arn):
        lam = aws.client_for_region("lambda", region)
        where = f"lambda {arn}"
        cfg = self.call(where, lam.get_function_configuration, FunctionName=arn)
        if cfg is None:
            return
        concurrency = self.call(where, lam.get_function_concurrency, FunctionName=arn) or {}
        config = _pick(
            cfg, "FunctionName", "Runtime", "Handler", "MemorySize", "Timeout", "Architectures",
            "Role", "Version",
        )
        config["ReservedConcurrentExecutions"] = concurrency.get("ReservedConcurrentExecutions")
        self.add(app, region.code, ComponentKind.LAMBDA_FUNCTION, arn, cfg.get("FunctionName"), config)

    def dynamodb_table(self, region, app, arn, name):
        ddb = aws.client_for_region("dynamodb", region)
        result = self.call(f"dynamodb {arn}", ddb.describe_table, TableName=name)
        if result is None:
            return
        table = result["Table"]
        config = _pick(table, "TableName", "TableStatus", "KeySchema", "GlobalTableVersion")
        config["BillingMode"] = table.get("BillingModeSummary", {}).get(
            "BillingMode", "PROVISIONED"
        )
        config["Replicas"] = [
            _pick(r, "RegionName", "ReplicaStatus") for r in table.get("Replicas", [])
        ]
        if "StreamSpecification" in table:
            config["StreamSpecification"] = table["StreamSpecification"]
        self.add(app, region.code, ComponentKind.DYNAMODB_REPLICA, table.get("TableArn", arn), name, config)

    def api_stage(self, region, app, api_id, stage_name, api_name=None, stage=None):
        apigw = aws.client_for_region("apigateway", region)
        where = f"apigateway {api_id}/{stage_name} in {region.code}"
        if stage is None:
            stage = self.call(where, apigw.get_stage, restApiId=api_id, stageName=stage_name)
            if stage is None:
                return
        if api_name is None:
            api = self.call(where, apigw.get_rest_api, restApiId=api_id) or {}
            api_name = api.get("name", api_id)
        config = {"restApiId": api_id}
        config.update(
            _pick(stage, "stageName", "deploymentId", "methodSettings", "variables",
                  "tracingEnabled", "cacheClusterEnabled")
        )
        arn = f"arn:aws:apigateway:{region.code}::/restapis/{api_id}/stages/{stage_name}"
        self.add(app, region.code, ComponentKind.API_GATEWAY_STAGE, arn, f"{api_name}/{stage_name}", config)

    def scan_api_gateway(self, region):
        apigw = aws.client_for_region("apigateway", region)
        apis = self.paginate(f"apigateway in {region.code}", apigw, "get_rest_apis", "items")
        for api in apis or []:
            result = self.call(
                f"apigateway {api['id']} in {region.code}", apigw.get_stages, restApiId=api["id"]
            )
            for stage in (result or {}).get("item", []):
                tags = {**_tags(api.get("tags")), **_tags(stage.get("tags"))}
                app = self.wanted(tags)
                if app:
                    self.entry_tags(app, region.code, tags)
                    self.api_stage(
                        region, app, api["id"], stage["stageName"], api.get("name"), stage
                    )

    def load_balancer(self, region, app, arn):
        elb = aws.client_for_region("elbv2", region)
        listeners = self.paginate(
            f"elbv2 {arn}", elb, "describe_listeners", "Listeners", LoadBalancerArn=arn
        )
        lb_name = arn.split("/")[2] if arn.count("/") >= 3 else arn
        for listener in listeners or []:
            config = _pick(listener, "Port", "Protocol", "DefaultActions", "LoadBalancerArn", "SslPolicy")
            config["LoadBalancerName"] = lb_name
            self.add(
                app, region.code, ComponentKind.ALB_LISTENER, listener["ListenerArn"],
                f"{lb_name}:{listener.get('Port')}", config,
            )

    def ssm_parameter(self, region, app, name):
        ssm = aws.client_for_region("ssm", region)
        result = self.call(f"ssm {name} in {region.code}", ssm.get_parameter, Name=name)
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
        self.add(app, region.code, ComponentKind.SSM_FAULT_PARAMETER, name, name, config)

    def alarm(self, region, app, arn, name):
        cw = aws.client_for_region("cloudwatch", region)
        result = self.call(f"cloudwatch {arn}", cw.describe_alarms, AlarmNames=[name])
        alarms = (result or {}).get("MetricAlarms") or []
        if not alarms:
            return
        config = _pick(
            alarms[0], "Namespace", "MetricName", "Statistic", "Period", "EvaluationPeriods",
            "Threshold", "ComparisonOperator", "Dimensions", "TreatMissingData", "ActionsEnabled",
        )
        arn = alarms[0].get("AlarmArn", arn)
        self.add(app, region.code, ComponentKind.CLOUDWATCH_ALARM, arn, name, config)

    def fis_template(self, region, app, template_id):
        fis = aws.client_for_region("fis", region)
        result = self.call(
            f"fis {template_id} in {region.code}", fis.get_experiment_template, id=template_id
        )
        if result is None:
            return
        template = result["experimentTemplate"]
        config = _pick(template, "description", "targets", "actions", "stopConditions", "roleArn")
        name = _tags(template.get("tags")).get("Name", template_id)
        self.add(app, region.code, ComponentKind.FIS_EXPERIMENT_TEMPLATE, template_id, name, config)

    def scan_fis(self, region):
        fis = aws.client_for_region("fis", region)
        templates = self.paginate(
            f"fis in {region.code}", fis, "list_experiment_templates", "experimentTemplates"
        )
        for template in templates or []:
            app = self.wanted(_tags(template.get("tags")))
            if app and not any(
                k[2] == ComponentKind.FIS_EXPERIMENT_TEMPLATE and k[3] == template["id"]
                for k in self.found
            ):
                self.fis_template(region, app, template["id"])

    # -- global

    def scan_global(self, region):
        self.scan_route53(region)
        self.scan_global_accelerator(region)
        self.scan_arc(region)

    def scan_route53(self, region):
        r53 = aws.client_for_region("route53", region)
        checks = self.paginate("route53 health checks", r53, "list_health_checks", "HealthChecks")
        check_stack = {}  # health check id -> (app, region)
        checks = {c["Id"]: c for c in checks or []}
        for batch_tags in self._route53_tags(r53, "healthcheck", list(checks)):
            check_id, tags = batch_tags
            app = self.wanted(tags)
            code = tags.get(REGION_TAG)
            if not app:
                continue
            if not code:
                self.warn(f"route53 health check {check_id} ({app}): no {REGION_TAG} tag; ignored")
                continue
            hc_config = checks[check_id].get("HealthCheckConfig", {})
            config = _pick(
                hc_config, "Type", "FullyQualifiedDomainName", "IPAddress", "Port",
                "ResourcePath", "RequestInterval", "FailureThreshold", "Inverted", "Disabled",
                "SearchString", "Regions",
            )
            name = tags.get("Name") or hc_config.get("FullyQualifiedDomainName") or check_id
            check_stack[check_id] = (app, code)
            self.add(app, code, ComponentKind.ROUTE53_HEALTH_CHECK, check_id, name, config)
            url = _health_url_from_check(hc_config)
            if url:
                self.derived_health_urls.setdefault((app, code), url)

        zones = self.paginate("route53 hosted zones", r53, "list_hosted_zones", "HostedZones")
        zones = {z["Id"].split("/")[-1]: z for z in zones or []}
        for zone_id, tags in self._route53_tags(r53, "hostedzone", list(zones)):
            app = self.wanted(tags)
            if not app:
                continue
            url = tags.get(GLOBAL_ENDPOINT_URL_TAG, "")
            endpoint = urlsplit(url).hostname if url else zones[zone_id]["Name"].rstrip(".")
            self.facts(app, tags, architecture=Architecture.DNS, global_endpoint=endpoint or "")
            records = self.paginate(
                f"route53 records of {zone_id}", r53, "list_resource_record_sets",
                "ResourceRecordSets", HostedZoneId=zone_id,
            )
            for record in records or []:
                code = self._record_region(app, record, check_stack)
                if not code:
                    continue
                set_id = record.get("SetIdentifier", "")
                identifier = f"{zone_id}/{record['Name']}/{record['Type']}/{set_id}"
                config = _pick(
                    record, "Type", "SetIdentifier", "Region", "Failover", "Weight", "TTL",
                    "HealthCheckId", "AliasTarget", "GeoLocation",
                )
                if "ResourceRecords" in record:
                    config["ResourceRecords"] = [r["Value"] for r in record["ResourceRecords"]]
                name = record["Name"].rstrip(".")
                self.add(app, code, ComponentKind.ROUTE53_RECORD, identifier, name, config)

    def _route53_tags(self, r53, resource_type, ids):
        """(id, tags) for each resource, ten ids per ListTagsForResources call."""
        for start in range(0, len(ids), 10):
            batch = ids[start : start + 10]
            result = self.call(
                f"route53 tags of {resource_type}s",
                r53.list_tags_for_resources,
                ResourceType=resource_type,
                ResourceIds=batch,
            )
            for tag_set in (result or {}).get("ResourceTagSets", []):
                yield tag_set["ResourceId"], _tags(tag_set.get("Tags"))

    def _record_region(self, app, record, check_stack):
        """The region whose stack a record routes to, or None."""
        owner = check_stack.get(record.get("HealthCheckId"))
        if owner:
            return owner[1] if owner[0] == app else None
        if record.get("Region"):
            return record["Region"]
        set_id = record.get("SetIdentifier", "")
        if set_id:
            for code in sorted(self.regions, key=len, reverse=True):
                if code in set_id:
                    return code
        return None

    def scan_global_accelerator(self, region):
        ga = aws.client_for_region("globalaccelerator", region)
        accelerators = self.paginate(
            "globalaccelerator", ga, "list_accelerators", "Accelerators"
        )
        for acc in accelerators or []:
            arn = acc["AcceleratorArn"]
            result = self.call(f"globalaccelerator tags of {arn}", ga.list_tags_for_resource, ResourceArn=arn)
            tags = _tags((result or {}).get("Tags"))
            app = self.wanted(tags)
            if not app:
                continue
            self.facts(app, tags, architecture=Architecture.ANYCAST, global_endpoint=acc.get("DnsName", ""))
            listeners = self.paginate(
                f"globalaccelerator listeners of {arn}", ga, "list_listeners", "Listeners",
                AcceleratorArn=arn,
            )
            for listener in listeners or []:
                groups = self.paginate(
                    f"globalaccelerator endpoint groups of {listener['ListenerArn']}", ga,
                    "list_endpoint_groups", "EndpointGroups", ListenerArn=listener["ListenerArn"],
                )
                for group in groups or []:
                    code = group.get("EndpointGroupRegion")
                    config = _pick(
                        group, "EndpointGroupRegion", "TrafficDialPercentage", "HealthCheckPort",
                        "HealthCheckProtocol", "HealthCheckPath", "HealthCheckIntervalSeconds",
                        "ThresholdCount", "PortOverrides",
                    )
                    # Health state moves on its own; the config keeps what was set.
                    config["EndpointDescriptions"] = [
                        _pick(e, "EndpointId", "Weight", "ClientIPPreservationEnabled")
                        for e in group.get("EndpointDescriptions", [])
                    ]
                    config["AcceleratorArn"] = arn
                    config["ListenerArn"] = listener["ListenerArn"]
                    config["PortRanges"] = listener.get("PortRanges", [])
                    self.add(
                        app, code, ComponentKind.GA_ENDPOINT_GROUP, group["EndpointGroupArn"],
                        f"{acc.get('Name', app)} {code}", config,
                    )

    def scan_arc(self, region):
        arc = aws.client_for_region("route53-recovery-control-config", region)
        clusters = self.paginate("route53-recovery-control-config", arc, "list_clusters", "Clusters")
        for cluster in clusters or []:
            panels = self.paginate(
                f"arc control panels of {cluster['ClusterArn']}", arc, "list_control_panels",
                "ControlPanels", ClusterArn=cluster["ClusterArn"],
            )
            for panel in panels or []:
                controls = self.paginate(
                    f"arc routing controls of {panel['ControlPanelArn']}", arc,
                    "list_routing_controls", "RoutingControls",
                    ControlPanelArn=panel["ControlPanelArn"],
                )
                for control in controls or []:
                    arn = control["RoutingControlArn"]
                    result = self.call(f"arc tags of {arn}", arc.list_tags_for_resource, ResourceArn=arn)
                    tags = _tags((result or {}).get("Tags"))
                    app = self.wanted(tags)
                    if not app:
                        continue
                    code = tags.get(REGION_TAG)
                    if not code:
                        self.warn(f"arc routing control {arn} ({app}): no {REGION_TAG} tag; ignored")
                        continue
                    config = {
                        "Status": control.get("Status"),
                        "ControlPanelArn": panel["ControlPanelArn"],
                        "ControlPanelName": panel.get("Name"),
                        "ClusterArn": cluster["ClusterArn"],
                        "ClusterEndpoints": cluster.get("ClusterEndpoints", []),
                    }
                    self.add(app, code, ComponentKind.ARC_ROUTING_CONTROL, arn, control.get("Name"), config)


# --- Phase 2: writing the inventory -----------------------------------------------


def _apply(reader, report, *, actor, source, prune=False):
    now = timezone.now()
    # Pruning trusts only a complete scan: after any warning (a service that did not
    # answer) a missing component may simply not have been read.
    prune = prune and not report.warnings
    writer = Writer(actor, source, report.summary)
    by_app = {}
    for found in reader.found.values():
        by_app.setdefault(found.application, []).append(found)
    app_names = sorted(set(by_app) | set(reader.app_facts))

    with transaction.atomic():
        regions = {r.code: r for r in Region.objects.select_for_update()}
        for name in app_names:
            facts = reader.app_facts.get(name, {})
            components = by_app.get(name, [])
            app = Application.objects.select_for_update().filter(name=name).first()
            values = {}
            arch = facts.get("architecture")
            if arch and arch not in Architecture.values:
                report.warnings.append(f"{name}: {ARCHITECTURE_TAG}={arch!r} is not A or B; ignored")
                arch = None
            if arch:
                values["architecture"] = arch
            url = facts.get("global_endpoint_url")
            if url and not _valid_url(url):
                report.warnings.append(f"{name}: {GLOBAL_ENDPOINT_URL_TAG}={url!r} is not a URL; ignored")
            elif url:
                values["global_endpoint_url"] = url
            if facts.get("global_endpoint"):
                values["global_endpoint"] = facts["global_endpoint"][:255]
            if app is None:
                try:
                    Application._meta.get_field("name").run_validators(name)
                except ValidationError:
                    report.warnings.append(f"{name!r}: not a valid application name; ignored")
                    continue
                if "architecture" not in values:
                    implied = {KIND_ARCHITECTURE[f.kind] for f in components if f.kind in KIND_ARCHITECTURE}
                    if len(implied) != 1:
                        report.warnings.append(
                            f"{name}: architecture unknown (tag a global resource with "
                            f"{ARCHITECTURE_TAG}); not created"
                        )
                        continue
                    values["architecture"] = implied.pop()
            app = writer.save(Application, app, values, create={"name": name})

            stacks = {
                s.region.code: s
                for s in Stack.objects.select_for_update()
                .filter(application=app)
                .select_related("application", "region")
            }
            for code in sorted({f.region for f in components}):
                if code not in regions:
                    regions[code] = writer.save(Region, None, {}, create={"code": code})
                svalues = {}
                health_url = reader.health_urls.get((name, code)) or reader.derived_health_urls.get(
                    (name, code)
                )
                if health_url and _valid_url(health_url):
                    svalues["health_url"] = health_url
                elif health_url:
                    report.warnings.append(f"{name}/{code}: health URL {health_url!r} is not a URL; ignored")
                stack = writer.save(
                    Stack,
                    stacks.get(code),
                    svalues,
                    create={"application": app, "region": regions[code]},
                    touch={"discovered_at": now},
                )
                existing = {
                    (c.kind, c.identifier): c
                    for c in Component.objects.select_for_update().filter(stack=stack)
                }
                seen = set()
                for f in sorted(components, key=lambda f: (f.kind, f.identifier)):
                    if f.region != code:
                        continue
                    seen.add((f.kind, f.identifier))
                    writer.save(
                        Component,
                        existing.get((f.kind, f.identifier)),
                        {"name": f.name[:255], "config": f.config},
                        create={"stack": stack, "kind": f.kind, "identifier": f.identifier},
                        touch={"discovered_at": now},
                    )
                if prune:
                    for key, component in sorted(existing.items()):
                        if key not in seen:
                            writer.delete(component)


def run_discovery(
    *, actor="system", regions=None, applications=None, source=AuditSource.SYSTEM, prune=False
):
    """Discover stacks and components from AWS by tags and update the inventory.

    regions       region codes to scan (default: every Region in the inventory); a code
                  not yet in the inventory is scanned with the default credentials and
                  created if something is found there
    applications  application names to limit discovery to (default: all tagged)
    prune         delete the components of discovered stacks that are no longer found
                  (audited; only when the scan finished without warnings)
    Returns a DiscoveryReport."""
    report = DiscoveryReport()
    known = {r.code: r for r in Region.objects.all()}
    if regions:
        scan = {}
        for code in regions:
            try:
                region_code_validator(code)
            except ValidationError as exc:
                report.warnings.append(f"{code[:40]!r}: {' '.join(exc.messages)} Skipped.")
                continue
            scan[code] = known.get(code) or Region(code=code)
    else:
        scan = known
    report.regions = sorted(scan)
    if not scan:
        report.warnings.append("no regions to scan: add regions to the inventory or pass --region")
        return report

    reader = _Reader(scan, applications, report.warnings)
    for code in sorted(scan):
        reader.scan_region(scan[code])
    # Global services once per set of credentials (role and external id).
    seen = set()
    for code in sorted(scan):
        key = (scan[code].role_arn, scan[code].external_id)
        if key not in seen:
            seen.add(key)
            reader.scan_global(scan[code])

    report.found = sorted(
        reader.found.values(), key=lambda f: (f.application, f.region, f.kind, f.identifier)
    )
    _apply(reader, report, actor=actor, source=source, prune=prune)
    return report
