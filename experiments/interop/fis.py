"""A scenario as an AWS FIS experiment template (the CreateExperimentTemplate body).

Only faults FIS itself can inject have a template: Lambda reserved concurrency 0 (every
invocation refused) as `aws:lambda:invocation-error` with execution prevented, replication
paused as `aws:dynamodb:global-table-pause-replication`, and a FIS template fault as that
template. The others (a Route 53 health check inverted, a Global Accelerator dial, an SSM
flag read by the functions' own code, a stage throttle, an ALB fixed response, an ARC
routing control) have no FIS action: `export` raises ExportError naming the fault.

FIS stops an experiment on CloudWatch alarms only. A stop condition maps to the
application's alarms on the metric that measures the same thing (discovered as
cloudwatch_alarm components); the error rate and p95 latency through the global
endpoint are measured from the clients' side and have no CloudWatch metric. With no
alarm the template says `{"source": "none"}` and its description says why.
"""

from experiments import plans
from experiments.faults import FIS_PAUSE_ACTION, FaultKind
from experiments.interop import ExportError
from regions.models import Component, ComponentKind

LAMBDA_ERROR_ACTION = "aws:lambda:invocation-error"
# The keys of GetExperimentTemplate's answer that CreateExperimentTemplate takes back.
TEMPLATE_KEYS = ("description", "targets", "actions", "stopConditions", "roleArn")
DESCRIPTION_MAX = 512  # FIS's limit
# Stop condition metric -> (namespace, metric name, whose alarms: "region" or "others").
STOP_ALARMS = {
    "replication_lag": ("AWS/DynamoDB", "ReplicationLatency", "region"),
    "other_region_unhealthy": ("AWS/Route53", "HealthCheckStatus", "others"),
}


def export(scenario, application, region, role_arn=""):
    """(template, plan_hash): the CreateExperimentTemplate body for `scenario` on
    `application` in `region`. `role_arn`: the role FIS assumes; by default the one of
    the application's FIS templates in the inventory."""
    if scenario.fault_kind not in (FaultKind.LAMBDA_CONCURRENCY_ZERO, FaultKind.PAUSE_REPLICATION,
                                   FaultKind.FIS_EXPERIMENT):
        raise ExportError(
            f"no FIS action for this fault: {scenario.get_fault_kind_display()} ({scenario.fault_kind}). "
            "FIS has actions for Lambda invocations, DynamoDB replication and its own templates; "
            "export it as a Chaos Toolkit experiment instead.",
            "format",
        )
    plan, digest = plans.make_plan(scenario, application, region)
    if plan["fault_kinds"] == [FaultKind.FIS_EXPERIMENT] * len(plan["fault_kinds"]):
        template = _existing_template(plan)
    else:
        template = _template(scenario, plan)
    template["roleArn"] = role_arn or template.get("roleArn") or _fis_role(application)
    stop_conditions, notes = stop_conditions_for(scenario.stop_conditions, application, region)
    template["stopConditions"] = stop_conditions
    summary = f"{scenario.name}: {application.name} in {region.code} (scenario {scenario.slug})."
    template["description"] = " ".join([summary, *notes])[:DESCRIPTION_MAX]
    template["clientToken"] = digest  # the same plan exported twice creates one template
    template["tags"] = {
        "controlplane:scenario": scenario.slug,
        "controlplane:application": application.name,
        "controlplane:region": region.code,
        "controlplane:plan-hash": digest,
    }
    return template, digest


def _duration(scenario):
    minutes, seconds = divmod(int(scenario.max_duration.total_seconds()), 60)
    return f"PT{minutes}M{seconds}S" if seconds else f"PT{minutes}M"


def _template(scenario, plan):
    """Targets and the one action, from the plan's targets (the ones a drill would break)."""
    arns = sorted({t["identifier"] for t in plan["target_snapshots"]})
    duration = _duration(scenario)
    if scenario.fault_kind == FaultKind.LAMBDA_CONCURRENCY_ZERO:
        reserved = plan["parameters"].get("reserved_concurrency", 0)
        if reserved != 0:
            raise ExportError(
                f"no FIS action for this fault: reserved concurrency {reserved} limits invocations, "
                "it does not refuse them; FIS has no action that caps concurrency.",
                "format",
            )
        target = {"resourceType": "aws:lambda:function", "resourceArns": arns, "selectionMode": "ALL"}
        action = {
            "actionId": LAMBDA_ERROR_ACTION,
            "description": "Every invocation fails without running, as with reserved concurrency 0.",
            "parameters": {"duration": duration, "invocationPercentage": "100", "preventExecution": "true"},
            "targets": {"Functions": "Functions"},
        }
        return {"targets": {"Functions": target}, "actions": {"InvocationError": action}}
    target = {"resourceType": "aws:dynamodb:global-table", "resourceArns": arns, "selectionMode": "ALL"}
    action = {
        "actionId": FIS_PAUSE_ACTION,
        "description": "Pause replication to the region's replica.",
        "parameters": {"duration": duration},
        "targets": {"Tables": "Tables"},
    }
    return {"targets": {"Tables": target}, "actions": {"PauseReplication": action}}


def _existing_template(plan):
    """The FIS template the plan starts, as discovered (one template per plan)."""
    snapshots = plan["target_snapshots"]
    if len(snapshots) != 1:
        raise ExportError(f"the plan starts {len(snapshots)} FIS templates; export one at a time.")
    config = snapshots[0]["config"]
    return {key: config[key] for key in TEMPLATE_KEYS if key in config and key != "description"}


def _fis_role(application):
    roles = sorted({
        c.config["roleArn"]
        for c in Component.objects.filter(
            stack__application=application, kind=ComponentKind.FIS_EXPERIMENT_TEMPLATE
        )
        if (c.config or {}).get("roleArn")
    })
    if len(roles) != 1:
        found = "none" if not roles else ", ".join(roles)
        raise ExportError(
            "role_arn: say which IAM role FIS assumes (the application's FIS templates in the "
            f"inventory use {found}).",
            "role_arn",
        )
    return roles[0]


def stop_conditions_for(conditions, application, region):
    """(FIS stop conditions, notes): each scenario stop condition as the application's
    CloudWatch alarms on the same metric, or a note saying why it has none."""
    alarms = Component.objects.filter(
        stack__application=application, kind=ComponentKind.CLOUDWATCH_ALARM
    ).select_related("stack__region").order_by("identifier")
    out, notes = [], []
    for condition in conditions or []:
        metric = condition.get("metric")
        if metric not in STOP_ALARMS:
            notes.append(f"Stop condition {metric}: measured through the global endpoint, not by an alarm.")
            continue
        namespace, name, whose = STOP_ALARMS[metric]
        found = [
            a.identifier for a in alarms
            if (a.config or {}).get("Namespace") == namespace and (a.config or {}).get("MetricName") == name
            and (a.stack.region_id == region.pk) == (whose == "region")
        ]
        if not found:
            notes.append(f"Stop condition {metric}: no alarm on {namespace} {name} in the inventory.")
        else:
            notes.append(f"Stop condition {metric}: the alarms' own thresholds apply.")
        out.extend({"source": "aws:cloudwatch:alarm", "value": arn} for arn in found)
    return (out or [{"source": "none"}]), notes
