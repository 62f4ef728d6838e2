"""CloudWatch: a stack's metric alarms (docs/DISCOVERY.md)."""

from regions.discovery.reader import pick
from regions.models import ComponentKind


def read_alarm(reader, region, app, arn, name):
    result = reader.read("cloudwatch", region, "describe_alarms", arn, AlarmNames=[name])
    alarms = (result or {}).get("MetricAlarms") or []
    if not alarms:
        return
    config = pick(
        alarms[0], "Namespace", "MetricName", "Statistic", "Period", "EvaluationPeriods",
        "Threshold", "ComparisonOperator", "Dimensions", "TreatMissingData", "ActionsEnabled",
    )
    arn = alarms[0].get("AlarmArn", arn)
    reader.add(app, region.code, ComponentKind.CLOUDWATCH_ALARM, arn, name, config)
