"""Resource Groups Tagging API (regional): every resource of a region tagged with
settings.DISCOVERY_TAG_KEY, each then read by its own service's module."""

from controlplane import aws
from regions.discovery import apigateway, awslambda, cloudwatch, dynamodb, elbv2, fis, ssm
from regions.discovery.reader import tag_dict


def scan_region(reader, region):
    tagging = aws.client_for_region("resourcegroupstaggingapi", region)
    tag_filter = {"Key": reader.tag_key}
    if reader.applications:
        tag_filter["Values"] = sorted(reader.applications)
    mappings = reader.paginate(
        f"tagging in {region.code}",
        tagging,
        "get_resources",
        "ResourceTagMappingList",
        TagFilters=[tag_filter],
    )
    for mapping in mappings or []:
        tags = tag_dict(mapping.get("Tags"))
        app = reader.wanted(tags)
        if app:
            describe(reader, region, app, mapping["ResourceARN"], tags)
    # Services whose resources the tagging API may not return (moto, partitions
    # without tagging support): their own list calls, de-duplicated by identifier.
    apigateway.scan(reader, region)
    fis.scan(reader, region)


def describe(reader, region, app, arn, tags):
    """Read one tagged resource with its service's module, by its ARN."""
    parts = arn.split(":", 5)
    if len(parts) < 6:
        return
    service, resource = parts[2], parts[5]
    code = region.code
    if service == "lambda" and resource.startswith("function:"):
        awslambda.read_function(reader, region, app, arn)
    elif service == "dynamodb" and resource.startswith("table/") and "/" not in resource[6:]:
        dynamodb.read_table(reader, region, app, arn, resource[len("table/") :])
    elif service == "apigateway" and "/stages/" in resource:
        _, _, api_id, _, stage = resource.split("/", 4)
        reader.entry_tags(app, code, tags)
        apigateway.read_stage(reader, region, app, api_id, stage)
    elif service == "elasticloadbalancing" and resource.startswith("loadbalancer/app/"):
        reader.entry_tags(app, code, tags)
        elbv2.read_load_balancer(reader, region, app, arn)
    elif service == "ssm" and resource.startswith("parameter/"):
        rest = resource[len("parameter") :]
        name = rest if rest.count("/") > 1 else rest[1:]
        ssm.read_parameter(reader, region, app, name)
    elif service == "cloudwatch" and resource.startswith("alarm:"):
        cloudwatch.read_alarm(reader, region, app, arn, resource[len("alarm:") :])
    elif service == "fis" and resource.startswith("experiment-template/"):
        fis.read_template(reader, region, app, resource[len("experiment-template/") :])
