"""The kinds of things the inventory knows, as choices with no model behind them: the
fault library (experiments/faults.py, which holds no ORM code) names the component kind
each fault acts on with these."""

from django.db.models import TextChoices


class Architecture(TextChoices):
    # value, label
    DNS = "A", "A · Route 53 → API Gateway → Lambda"
    ANYCAST = "B", "B · Global Accelerator → ALB → Lambda"


class ComponentKind(TextChoices):
    ROUTE53_HEALTH_CHECK = "route53_health_check", "Route 53 health check"
    ROUTE53_RECORD = "route53_record", "Route 53 record"
    GA_ENDPOINT_GROUP = "ga_endpoint_group", "Global Accelerator endpoint group"
    API_GATEWAY_STAGE = "api_gateway_stage", "API Gateway stage"
    ALB_LISTENER = "alb_listener", "ALB listener"
    LAMBDA_FUNCTION = "lambda_function", "Lambda function"
    DYNAMODB_REPLICA = "dynamodb_replica", "DynamoDB replica"
    SSM_FAULT_PARAMETER = "ssm_fault_parameter", "SSM failure-injection parameter"
    ARC_ROUTING_CONTROL = "arc_routing_control", "ARC routing control"
    CLOUDWATCH_ALARM = "cloudwatch_alarm", "CloudWatch alarm"
    FIS_EXPERIMENT_TEMPLATE = "fis_experiment_template", "FIS experiment template"
