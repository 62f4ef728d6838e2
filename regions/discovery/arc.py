"""Route 53 Application Recovery Controller (route53-recovery-control-config, global):
routing controls tagged for a stack (docs/DISCOVERY.md)."""

from controlplane import aws
from regions.discovery.reader import REGION_TAG
from regions.models import ComponentKind


def scan(reader, region):
    arc = aws.client_for_region("route53-recovery-control-config", region)
    clusters = reader.paginate("route53-recovery-control-config", arc, "list_clusters", "Clusters")
    for cluster in clusters or []:
        panels = reader.paginate(
            f"arc control panels of {cluster['ClusterArn']}", arc, "list_control_panels",
            "ControlPanels", ClusterArn=cluster["ClusterArn"],
        )
        for panel in panels or []:
            controls = reader.paginate(
                f"arc routing controls of {panel['ControlPanelArn']}", arc,
                "list_routing_controls", "RoutingControls",
                ControlPanelArn=panel["ControlPanelArn"],
            )
            for control in controls or []:
                arn = control["RoutingControlArn"]
                app, tags = reader.tagged("arc", arc, arn)
                if not app:
                    continue
                code = tags.get(REGION_TAG)
                if not code:
                    reader.warn(f"arc routing control {arn} ({app}): no {REGION_TAG} tag; ignored")
                    continue
                config = {
                    "Status": control.get("Status"),
                    "ControlPanelArn": panel["ControlPanelArn"],
                    "ControlPanelName": panel.get("Name"),
                    "ClusterArn": cluster["ClusterArn"],
                    "ClusterEndpoints": cluster.get("ClusterEndpoints", []),
                }
                reader.add(app, code, ComponentKind.ARC_ROUTING_CONTROL, arn, control.get("Name"), config)
