"""Route 53 and Global Accelerator route the global endpoints the way AWS would."""

import time

import pytest

from tests.sandbox_support import http, wait_for

pytestmark = pytest.mark.sandbox


def _served_by(url):
    status, headers, _ = http("GET", f"{url}health")
    return status == 200 and headers["X-Served-By-Region"]


def _observed(r53, hc_id):
    observations = r53.get_health_check_status(HealthCheckId=hc_id)["HealthCheckObservations"]
    return {o["StatusReport"]["Status"].split(":")[0] for o in observations}


def test_inverting_a_health_check_fails_the_region_over_and_back(sandbox, sandbox_aws):
    url = sandbox.state["applications"]["orders"]["global_endpoint"]
    hc_id = sandbox.stack("orders", "us-east-1").health_check_id
    r53 = sandbox_aws("route53", "us-east-1")
    assert _served_by(url) == "us-east-1"  # nearest to the client
    assert _observed(r53, hc_id) == {"Success"}
    # RequestInterval 10 x FailureThreshold 3, scaled; plus slack for a busy machine.
    budget = 10 * 3 * sandbox.time_scale + 3

    r53.update_health_check(HealthCheckId=hc_id, Inverted=True)
    wait_for(lambda: _served_by(url) == "us-west-2", budget, "failover to us-west-2")
    assert _observed(r53, hc_id) == {"Failure"}
    assert all(_served_by(url) == "us-west-2" for _ in range(20))

    r53.update_health_check(HealthCheckId=hc_id, Inverted=False)
    wait_for(lambda: _served_by(url) == "us-east-1", budget, "failback to us-east-1")


def test_disabled_health_check_counts_as_healthy(sandbox, sandbox_aws):
    url = sandbox.state["applications"]["orders"]["global_endpoint"]
    hc_id = sandbox.stack("orders", "us-east-1").health_check_id
    r53 = sandbox_aws("route53", "us-east-1")
    r53.update_health_check(HealthCheckId=hc_id, Inverted=True, Disabled=True)

    def probed_while_disabled():
        observation = r53.get_health_check_status(HealthCheckId=hc_id)["HealthCheckObservations"][0][
            "StatusReport"
        ]["Status"]
        return "Disabled health check" in observation

    # Probes after the change fail (inverted), yet the disabled check stays healthy: the
    # steady state holds for longer than interval x threshold.
    wait_for(probed_while_disabled, 10 * sandbox.time_scale + 2, "a probe of the disabled check")
    until = time.monotonic() + 10 * 3 * sandbox.time_scale + 0.5
    while time.monotonic() < until:
        assert _served_by(url) == "us-east-1"


def test_failing_health_function_moves_dns_traffic(sandbox, sandbox_aws):
    url = sandbox.state["applications"]["orders"]["global_endpoint"]
    sandbox_aws("ssm", "us-east-1").put_parameter(
        Name="/orders/us-east-1/failure-injection",
        Type="String",
        Overwrite=True,
        Value='{"is_enabled": true, "fault_type": "exception", "rate": 1}',
    )
    wait_for(
        lambda: _served_by(url) == "us-west-2",
        10 * 3 * sandbox.time_scale + 3,
        "failover away from the failing health function",
    )


def test_traffic_dial_zero_moves_accelerator_traffic(sandbox, sandbox_aws):
    url = sandbox.state["applications"]["payments"]["global_endpoint"]
    group_arn = sandbox.stack("payments", "us-west-2").endpoint_group_arn
    ga = sandbox_aws("globalaccelerator", "us-west-2")
    assert _served_by(url) == "us-west-2"  # nearer the client than eu-central-1

    ga.update_endpoint_group(EndpointGroupArn=group_arn, TrafficDialPercentage=0)
    assert {_served_by(url) for _ in range(30)} == {"eu-central-1"}

    ga.update_endpoint_group(EndpointGroupArn=group_arn, TrafficDialPercentage=50)
    served = [_served_by(url) for _ in range(200)]
    assert 60 <= served.count("us-west-2") <= 140

    ga.update_endpoint_group(EndpointGroupArn=group_arn, TrafficDialPercentage=100)
    assert {_served_by(url) for _ in range(30)} == {"us-west-2"}


def test_unhealthy_accelerator_endpoint_loses_its_traffic(sandbox, sandbox_aws):
    url = sandbox.state["applications"]["payments"]["global_endpoint"]
    stack = sandbox.stack("payments", "us-west-2")
    ga = sandbox_aws("globalaccelerator", "us-west-2")
    sandbox_aws("elbv2", "us-west-2").modify_listener(
        ListenerArn=stack.listener_arn,
        DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "503"}}],
    )

    def endpoint_state():
        group = ga.describe_endpoint_group(EndpointGroupArn=stack.endpoint_group_arn)
        return group["EndpointGroup"]["EndpointDescriptions"][0]["HealthState"]

    wait_for(
        lambda: endpoint_state() == "UNHEALTHY",
        10 * 3 * sandbox.time_scale + 3,
        "the ALB endpoint to turn unhealthy",
    )
    assert {_served_by(url) for _ in range(20)} == {"eu-central-1"}


def test_routing_control_off_takes_the_region_out(sandbox, sandbox_aws):
    url = sandbox.state["applications"]["orders"]["global_endpoint"]
    control = sandbox.stack("orders", "us-east-1").routing_control_arn
    config = sandbox_aws("route53-recovery-control-config", "us-west-2")
    cluster = config.list_clusters()["Clusters"][0]
    endpoint = cluster["ClusterEndpoints"][0]
    from controlplane import aws

    arc = aws.client("route53-recovery-cluster", endpoint["Region"], endpoint_url=endpoint["Endpoint"])
    assert arc.get_routing_control_state(RoutingControlArn=control)["RoutingControlState"] == "On"
    arc.update_routing_control_state(RoutingControlArn=control, RoutingControlState="Off")
    assert arc.get_routing_control_state(RoutingControlArn=control)["RoutingControlState"] == "Off"
    assert {_served_by(url) for _ in range(20)} == {"us-west-2"}


def test_failover_records_serve_the_primary_until_its_check_fails(sandbox, sandbox_aws):
    """Route 53 failover routing, with the records rewritten through the API."""
    app = sandbox.state["applications"]["orders"]
    zone = app["hosted_zone_id"]
    r53 = sandbox_aws("route53", "us-east-1")
    latency = [
        r
        for r in r53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
        if r.get("SetIdentifier")
    ]

    def failover(record, role):
        record = {k: v for k, v in record.items() if k != "Region"}
        return {**record, "Failover": role}

    primary = next(r for r in latency if r["SetIdentifier"] == "us-west-2")
    secondary = next(r for r in latency if r["SetIdentifier"] == "us-east-1")
    as_failover = [failover(primary, "PRIMARY"), failover(secondary, "SECONDARY")]
    r53.change_resource_record_sets(
        HostedZoneId=zone,
        ChangeBatch={
            "Changes": [
                *({"Action": "DELETE", "ResourceRecordSet": r} for r in latency),
                *({"Action": "CREATE", "ResourceRecordSet": r} for r in as_failover),
            ]
        },
    )
    try:
        url = app["global_endpoint"]
        assert {_served_by(url) for _ in range(10)} == {"us-west-2"}
        r53.update_health_check(HealthCheckId=primary["HealthCheckId"], Inverted=True)
        wait_for(
            lambda: _served_by(url) == "us-east-1",
            10 * 3 * sandbox.time_scale + 3,
            "failover to the SECONDARY record",
        )
    finally:
        r53.change_resource_record_sets(
            HostedZoneId=zone,
            ChangeBatch={
                "Changes": [
                    *({"Action": "DELETE", "ResourceRecordSet": r} for r in as_failover),
                    # UPSERT: moto refuses to CREATE a change it has already journaled once.
                    *({"Action": "UPSERT", "ResourceRecordSet": r} for r in latency),
                ]
            },
        )


def _served_from(url, vantage):
    status, headers, _ = http("GET", f"{url}health", headers={"X-Controlplane-Vantage": vantage})
    return status == 200 and headers["X-Served-By-Region"]


def test_latency_routing_honours_the_vantage_as_client_location(sandbox, sandbox_aws):
    """A request that names its vantage (a region code) is routed as for a client there:
    nearest healthy region first; an unknown vantage gets the topology's client_location."""
    orders = sandbox.state["applications"]["orders"]["global_endpoint"]  # us-east-1, us-west-2
    payments = sandbox.state["applications"]["payments"]["global_endpoint"]  # eu-central-1, us-west-2
    assert _served_from(orders, "us-west-2") == "us-west-2"
    assert _served_from(orders, "us-west-1") == "us-west-2"  # nearest of the two
    assert _served_from(orders, "eu-central-1") == "us-east-1"
    assert _served_from(orders, "local") == "us-east-1"  # the topology's client_location
    assert _served_by(orders) == "us-east-1"
    assert _served_from(payments, "eu-west-1") == "eu-central-1"
    assert _served_from(payments, "us-east-1") == "us-west-2"

    # The vantage's region failing sends that client to the next nearest one.
    hc_id = sandbox.stack("orders", "us-west-2").health_check_id
    r53 = sandbox_aws("route53", "us-east-1")
    r53.update_health_check(HealthCheckId=hc_id, Inverted=True)
    try:
        budget = 10 * 3 * sandbox.time_scale + 3
        wait_for(lambda: _served_from(orders, "us-west-2") == "us-east-1", budget, "failover of us-west-2")
        assert _served_by(orders) == "us-east-1"
    finally:
        r53.update_health_check(HealthCheckId=hc_id, Inverted=False)
    wait_for(lambda: _served_from(orders, "us-west-2") == "us-west-2", budget, "failback to us-west-2")
