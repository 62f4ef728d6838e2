"""Global Accelerator and ARC answer unchanged boto3 calls on the sandbox endpoint."""

import pytest

pytestmark = pytest.mark.sandbox


def test_global_accelerator_round_trip(sandbox, sandbox_aws):
    ga = sandbox_aws("globalaccelerator", "us-west-2")
    accelerators = ga.list_accelerators()["Accelerators"]
    assert len(accelerators) == 1
    acc = ga.describe_accelerator(AcceleratorArn=accelerators[0]["AcceleratorArn"])["Accelerator"]
    assert acc["DnsName"].endswith(".awsglobalaccelerator.com")
    tags = {
        t["Key"]: t["Value"] for t in ga.list_tags_for_resource(ResourceArn=acc["AcceleratorArn"])["Tags"]
    }
    assert tags["controlplane:application"] == "payments"
    assert tags["controlplane:architecture"] == "B"
    assert (
        tags["controlplane:global-endpoint-url"]
        == (sandbox.state["applications"]["payments"]["global_endpoint"])
    )
    listener = ga.list_listeners(AcceleratorArn=acc["AcceleratorArn"])["Listeners"][0]
    groups = ga.list_endpoint_groups(ListenerArn=listener["ListenerArn"])["EndpointGroups"]
    assert {g["EndpointGroupRegion"] for g in groups} == {"eu-central-1", "us-west-2"}
    group = next(g for g in groups if g["EndpointGroupRegion"] == "eu-central-1")
    endpoint = group["EndpointDescriptions"][0]
    assert endpoint["EndpointId"] == sandbox.stack("payments", "eu-central-1").load_balancer_arn
    assert endpoint["HealthState"] == "HEALTHY"

    updated = ga.update_endpoint_group(
        EndpointGroupArn=group["EndpointGroupArn"],
        TrafficDialPercentage=25,
        EndpointConfigurations=[{"EndpointId": endpoint["EndpointId"], "Weight": 64}],
    )["EndpointGroup"]
    assert updated["TrafficDialPercentage"] == 25
    described = ga.describe_endpoint_group(EndpointGroupArn=group["EndpointGroupArn"])
    assert described["EndpointGroup"]["EndpointDescriptions"][0]["Weight"] == 64

    with pytest.raises(ga.exceptions.EndpointGroupNotFoundException):
        ga.describe_endpoint_group(EndpointGroupArn=group["EndpointGroupArn"] + "0")


def test_arc_config_and_cluster_round_trip(sandbox, sandbox_aws):
    config = sandbox_aws("route53-recovery-control-config", "us-west-2")
    cluster = config.list_clusters()["Clusters"][0]
    described = config.describe_cluster(ClusterArn=cluster["ClusterArn"])["Cluster"]
    assert len(described["ClusterEndpoints"]) == 5
    panels = config.list_control_panels(ClusterArn=cluster["ClusterArn"])["ControlPanels"]
    assert {p["Name"] for p in panels} == {"orders-control-panel", "payments-control-panel"}
    panel = next(p for p in panels if p["Name"] == "orders-control-panel")
    assert config.list_tags_for_resource(ResourceArn=panel["ControlPanelArn"])["Tags"] == {
        "controlplane:application": "orders"
    }
    controls = config.list_routing_controls(ControlPanelArn=panel["ControlPanelArn"])
    by_region = {}
    for control in controls["RoutingControls"]:
        tags = config.list_tags_for_resource(ResourceArn=control["RoutingControlArn"])["Tags"]
        by_region[tags["controlplane:region"]] = control["RoutingControlArn"]
        assert (
            config.describe_routing_control(RoutingControlArn=control["RoutingControlArn"])["RoutingControl"][
                "Name"
            ]
            == control["Name"]
        )
    assert set(by_region) == {"us-east-1", "us-west-2"}

    arc = sandbox_aws("route53-recovery-cluster", "us-west-2")
    arc.update_routing_control_states(
        UpdateRoutingControlStateEntries=[
            {"RoutingControlArn": arn, "RoutingControlState": "Off"} for arn in by_region.values()
        ]
    )
    states = arc.list_routing_controls(ControlPanelArn=panel["ControlPanelArn"])
    assert {c["RoutingControlState"] for c in states["RoutingControls"]} == {"Off"}
    with pytest.raises(arc.exceptions.ResourceNotFoundException):
        arc.get_routing_control_state(RoutingControlArn=panel["ControlPanelArn"] + "/nope")
