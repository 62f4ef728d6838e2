"""Route 53 (global): health checks tagged for a stack, and the records of an
application's tagged hosted zone that route to a stack (docs/DISCOVERY.md)."""

from urllib.parse import urlsplit

from controlplane import aws
from regions.discovery.reader import GLOBAL_ENDPOINT_URL_TAG, REGION_TAG, pick, tag_dict
from regions.models import Architecture, ComponentKind


def health_url_from_check(config):
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


def scan(reader, region):
    r53 = aws.client_for_region("route53", region)
    checks = reader.paginate("route53 health checks", r53, "list_health_checks", "HealthChecks")
    check_stack = {}  # health check id -> (app, region)
    checks = {c["Id"]: c for c in checks or []}
    for check_id, tags in _tags(reader, r53, "healthcheck", list(checks)):
        app = reader.wanted(tags)
        code = tags.get(REGION_TAG)
        if not app:
            continue
        if not code:
            reader.warn(f"route53 health check {check_id} ({app}): no {REGION_TAG} tag; ignored")
            continue
        hc_config = checks[check_id].get("HealthCheckConfig", {})
        config = pick(
            hc_config, "Type", "FullyQualifiedDomainName", "IPAddress", "Port",
            "ResourcePath", "RequestInterval", "FailureThreshold", "Inverted", "Disabled",
            "SearchString", "Regions",
        )
        name = tags.get("Name") or hc_config.get("FullyQualifiedDomainName") or check_id
        check_stack[check_id] = (app, code)
        reader.add(app, code, ComponentKind.ROUTE53_HEALTH_CHECK, check_id, name, config)
        url = health_url_from_check(hc_config)
        if url:
            reader.derived_health_urls.setdefault((app, code), url)

    zones = reader.paginate("route53 hosted zones", r53, "list_hosted_zones", "HostedZones")
    zones = {z["Id"].split("/")[-1]: z for z in zones or []}
    for zone_id, tags in _tags(reader, r53, "hostedzone", list(zones)):
        app = reader.wanted(tags)
        if not app:
            continue
        url = tags.get(GLOBAL_ENDPOINT_URL_TAG, "")
        endpoint = urlsplit(url).hostname if url else zones[zone_id]["Name"].rstrip(".")
        reader.facts(app, tags, architecture=Architecture.DNS, global_endpoint=endpoint or "")
        records = reader.paginate(
            f"route53 records of {zone_id}", r53, "list_resource_record_sets",
            "ResourceRecordSets", HostedZoneId=zone_id,
        )
        for record in records or []:
            code = _record_region(reader, app, record, check_stack)
            if not code:
                continue
            set_id = record.get("SetIdentifier", "")
            identifier = f"{zone_id}/{record['Name']}/{record['Type']}/{set_id}"
            config = pick(
                record, "Type", "SetIdentifier", "Region", "Failover", "Weight", "TTL",
                "HealthCheckId", "AliasTarget", "GeoLocation",
            )
            if "ResourceRecords" in record:
                config["ResourceRecords"] = [r["Value"] for r in record["ResourceRecords"]]
            name = record["Name"].rstrip(".")
            reader.add(app, code, ComponentKind.ROUTE53_RECORD, identifier, name, config)


def _tags(reader, r53, resource_type, ids):
    """(id, tags) for each resource, ten ids per ListTagsForResources call."""
    for start in range(0, len(ids), 10):
        batch = ids[start : start + 10]
        result = reader.call(
            f"route53 tags of {resource_type}s",
            r53.list_tags_for_resources,
            ResourceType=resource_type,
            ResourceIds=batch,
        )
        for tag_set in (result or {}).get("ResourceTagSets", []):
            yield tag_set["ResourceId"], tag_dict(tag_set.get("Tags"))


def _record_region(reader, app, record, check_stack):
    """The region whose stack a record routes to, or None."""
    owner = check_stack.get(record.get("HealthCheckId"))
    if owner:
        return owner[1] if owner[0] == app else None
    if record.get("Region"):
        return record["Region"]
    set_id = record.get("SetIdentifier", "")
    if set_id:
        for code in sorted(reader.regions, key=len, reverse=True):
            if code in set_id:
                return code
    return None
