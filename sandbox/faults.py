"""Put every stack back as seeded, through the same AWS APIs a drill uses.

Used between tests and by anyone who wants a clean world without restarting. Each
call is the exact inverse of a fault the sandbox honours; to stay fast, a fault is
reverted only where a read (through the API too) shows it is present. Works on anything
with `.state` (the sandbox.json dict) and `.client(service, region)`: an in-process
Sandbox or a sandbox running in another process.
"""

import json
import time
from concurrent.futures import ThreadPoolExecutor

from sandbox.replication import PAUSE_TAG
from sandbox.seed import FAULT_OFF


def _stacks(sb):
    for app_name, app in sb.state["applications"].items():
        for region, stack in app["stacks"].items():
            yield app_name, region, stack


def reset_faults(sb):
    """Revert every fault; return the (app, region) stacks where something was reverted.

    Stacks are independent, so they are reset in parallel (the calls are I/O to the
    sandbox endpoint)."""
    stacks = list(_stacks(sb))
    with ThreadPoolExecutor(max_workers=len(stacks) or 1) as pool:
        reverted = list(pool.map(lambda s: _reset_stack(sb, *s), stacks))
    sb.client("route53-recovery-cluster", "us-west-2").update_routing_control_states(
        UpdateRoutingControlStateEntries=[
            {"RoutingControlArn": stack["routing_control_arn"], "RoutingControlState": "On"}
            for _, _, stack in stacks
        ]
    )
    return {(app, region) for (app, region, _), done in zip(stacks, reverted, strict=True) if done}


def _reset_stack(sb, app, region, stack):
    """Revert one stack's faults; True if any was present (health may need to recover)."""
    r53 = sb.client("route53", "us-east-1")
    ga = sb.client("globalaccelerator", "us-west-2")
    reverted = False
    ssm = sb.client("ssm", region)
    name = stack["ssm_fault_parameter"]
    if json.loads(ssm.get_parameter(Name=name)["Parameter"]["Value"]) != FAULT_OFF:
        ssm.put_parameter(Name=name, Value=json.dumps(FAULT_OFF), Type="String", Overwrite=True)
        reverted = True
    lam = sb.client("lambda", region)
    for fn in stack["functions"]:
        if "ReservedConcurrentExecutions" in lam.get_function_concurrency(FunctionName=fn):
            lam.delete_function_concurrency(FunctionName=fn)
            reverted = True
    ddb = sb.client("dynamodb", region)
    tags = ddb.list_tags_of_resource(ResourceArn=stack["table_arn"])["Tags"]
    if any(t["Key"] == PAUSE_TAG for t in tags):
        ddb.untag_resource(ResourceArn=stack["table_arn"], TagKeys=[PAUSE_TAG])
        reverted = True
    if stack["health_check_id"]:
        config = r53.get_health_check(HealthCheckId=stack["health_check_id"])["HealthCheck"][
            "HealthCheckConfig"
        ]
        if config.get("Inverted") or config.get("Disabled"):
            r53.update_health_check(HealthCheckId=stack["health_check_id"], Inverted=False, Disabled=False)
            reverted = True
    if stack["rest_api_id"]:
        apigw = sb.client("apigateway", region)
        settings = apigw.get_stage(restApiId=stack["rest_api_id"], stageName=stack["stage"]).get(
            "methodSettings", {}
        )
        # Seeded stages have no method settings: a throttled one goes as a whole.
        ops = [
            {"op": "remove", "path": f"/{key}"}
            for key, value in settings.items()
            if float(value.get("throttlingRateLimit", 1)) <= 0
        ]
        if ops:
            apigw.update_stage(restApiId=stack["rest_api_id"], stageName=stack["stage"], patchOperations=ops)
            reverted = True
    if stack["listener_arn"]:
        elb = sb.client("elbv2", region)
        listener = elb.describe_listeners(ListenerArns=[stack["listener_arn"]])["Listeners"][0]
        if any(a["Type"] != "forward" for a in listener["DefaultActions"]):
            elb.modify_listener(
                ListenerArn=stack["listener_arn"],
                DefaultActions=[{"Type": "forward", "TargetGroupArn": stack["target_group_arn"]}],
            )
            reverted = True
    if stack["endpoint_group_arn"]:
        # Dials and weights do not change health: reverted without counting.
        ga.update_endpoint_group(
            EndpointGroupArn=stack["endpoint_group_arn"],
            TrafficDialPercentage=100,
            EndpointConfigurations=[{"EndpointId": stack["load_balancer_arn"], "Weight": 128}],
        )
    return reverted


def wait_until_healthy(sb, timeout=30, only=None):
    """Block until every Route 53 check and GA endpoint is healthy again, seen through
    the APIs only.

    GA reports its verdict (HealthState). Route 53 reports each checker's latest probe;
    a check is healthy again after FailureThreshold consecutive successful probes, so
    count successes with distinct CheckedTimes.
    """
    r53 = sb.client("route53", "us-east-1")
    ga = sb.client("globalaccelerator", "us-west-2")
    streak = {}  # health check id -> (last CheckedTime, consecutive successes)
    thresholds = {}
    deadline = time.monotonic() + timeout
    while True:
        bad = []
        for app, region, stack in _stacks(sb):
            if only is not None and (app, region) not in only:
                continue
            hc_id = stack["health_check_id"]
            if hc_id:
                if hc_id not in thresholds:
                    config = r53.get_health_check(HealthCheckId=hc_id)["HealthCheck"]
                    thresholds[hc_id] = config["HealthCheckConfig"].get("FailureThreshold", 3)
                observations = r53.get_health_check_status(HealthCheckId=hc_id)["HealthCheckObservations"]
                if not observations:  # not probed yet
                    bad.append((app, region))
                    continue
                report = observations[0]["StatusReport"]
                checked, count = streak.get(hc_id, (None, 0))
                if report["CheckedTime"] != checked:
                    ok = report["Status"].startswith("Success")
                    streak[hc_id] = (report["CheckedTime"], count + 1 if ok else 0)
                if streak[hc_id][1] < thresholds[hc_id]:
                    bad.append((app, region))
            else:
                group = ga.describe_endpoint_group(EndpointGroupArn=stack["endpoint_group_arn"])
                if any(
                    e["HealthState"] == "UNHEALTHY" for e in group["EndpointGroup"]["EndpointDescriptions"]
                ):
                    bad.append((app, region))
        if not bad:
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"stacks still unhealthy after {timeout}s: {bad}")
        time.sleep(0.1)
