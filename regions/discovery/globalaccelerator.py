"""Global Accelerator (global): the endpoint groups of an application's tagged
accelerator, one per region (docs/DISCOVERY.md)."""

from controlplane import aws
from regions.discovery.reader import pick
from regions.models import Architecture, ComponentKind


def scan(reader, region):
    ga = aws.client_for_region("globalaccelerator", region)
    accelerators = reader.paginate("globalaccelerator", ga, "list_accelerators", "Accelerators")
    for acc in accelerators or []:
        arn = acc["AcceleratorArn"]
        app, tags = reader.tagged("globalaccelerator", ga, arn)
        if not app:
            continue
        reader.facts(app, tags, architecture=Architecture.ANYCAST, global_endpoint=acc.get("DnsName", ""))
        listeners = reader.paginate(
            f"globalaccelerator listeners of {arn}", ga, "list_listeners", "Listeners",
            AcceleratorArn=arn,
        )
        for listener in listeners or []:
            groups = reader.paginate(
                f"globalaccelerator endpoint groups of {listener['ListenerArn']}", ga,
                "list_endpoint_groups", "EndpointGroups", ListenerArn=listener["ListenerArn"],
            )
            for group in groups or []:
                code = group.get("EndpointGroupRegion")
                config = pick(
                    group, "EndpointGroupRegion", "TrafficDialPercentage", "HealthCheckPort",
                    "HealthCheckProtocol", "HealthCheckPath", "HealthCheckIntervalSeconds",
                    "ThresholdCount", "PortOverrides",
                )
                # Health state moves on its own; the config keeps what was set.
                config["EndpointDescriptions"] = [
                    pick(e, "EndpointId", "Weight", "ClientIPPreservationEnabled")
                    for e in group.get("EndpointDescriptions", [])
                ]
                config["AcceleratorArn"] = arn
                config["ListenerArn"] = listener["ListenerArn"]
                config["PortRanges"] = listener.get("PortRanges", [])
                reader.add(
                    app, code, ComponentKind.GA_ENDPOINT_GROUP, group["EndpointGroupArn"],
                    f"{acc.get('Name', app)} {code}", config,
                )
