"""Elastic Load Balancing: an application load balancer's listeners, the entry of an
architecture B stack (docs/DISCOVERY.md)."""

from controlplane import aws
from regions.discovery.reader import pick
from regions.models import ComponentKind


def read_load_balancer(reader, region, app, arn):
    elb = aws.client_for_region("elbv2", region)
    listeners = reader.paginate(f"elbv2 {arn}", elb, "describe_listeners", "Listeners", LoadBalancerArn=arn)
    lb_name = arn.split("/")[2] if arn.count("/") >= 3 else arn
    # The load balancer's target groups: where a listener answering a fixed response
    # (a fault) forwards again once undone (regions/drift.py).
    groups = reader.paginate(
        f"elbv2 target groups of {arn}", elb, "describe_target_groups", "TargetGroups", LoadBalancerArn=arn
    )
    for listener in listeners or []:
        config = pick(listener, "Port", "Protocol", "DefaultActions", "LoadBalancerArn", "SslPolicy")
        config["LoadBalancerName"] = lb_name
        if groups is not None:
            config["TargetGroupArns"] = sorted(g["TargetGroupArn"] for g in groups)
        reader.add(
            app, region.code, ComponentKind.ALB_LISTENER, listener["ListenerArn"],
            f"{lb_name}:{listener.get('Port')}", config,
        )
