from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

region_code_validator = RegexValidator(
    r"^[a-z]{2}(-gov)?-[a-z]+-\d$", "Use an AWS region code such as us-east-1."
)
account_id_validator = RegexValidator(r"^\d{12}$", "An AWS account id has 12 digits.")
role_arn_validator = RegexValidator(
    r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$",
    "Use an IAM role ARN such as arn:aws:iam::123456789012:role/ControlPlane.",
)
name_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9-]{0,62}$",
    "Use lowercase letters, digits and hyphens (at most 63), starting with a letter or digit.",
)


class Architecture(models.TextChoices):
    # label, then the badge colour used by the console, in one place
    DNS = "A", "A · Route 53 → API Gateway → Lambda"
    ANYCAST = "B", "B · Global Accelerator → ALB → Lambda"


class Application(models.Model):
    """A global application served active-active from several regions."""

    name = models.CharField(max_length=63, unique=True, validators=[name_validator])
    display_name = models.CharField(max_length=100, blank=True)
    architecture = models.CharField(max_length=1, choices=Architecture.choices)
    global_endpoint = models.CharField(
        max_length=255,
        blank=True,
        help_text="The Route 53 record name or Global Accelerator DNS name clients use.",
    )
    global_endpoint_url = models.URLField(
        blank=True, help_text="URL the probes request through the global endpoint."
    )
    owner_team = models.CharField(max_length=100, blank=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("import_inventory", "Can import or export the inventory"),
            ("run_discovery", "Can run discovery from AWS"),
        ]

    def __str__(self):
        return self.name

    @property
    def title(self):
        return self.display_name or self.name


class Region(models.Model):
    """An AWS region the control plane talks to, and how it reaches it."""

    code = models.CharField(max_length=32, unique=True, validators=[region_code_validator])
    account_id = models.CharField(max_length=12, blank=True, validators=[account_id_validator])
    role_arn = models.CharField(
        max_length=2048,
        blank=True,
        validators=[role_arn_validator],
        help_text="Role to assume for calls in this region; empty uses the default credentials.",
    )
    external_id = models.CharField(
        max_length=1224, blank=True, help_text="External id passed to STS AssumeRole."
    )

    class Meta:
        ordering = ["code"]

    def __str__(self):
        return self.code


class Stack(models.Model):
    """One application deployed in one region."""

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="stacks")
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="stacks")
    health_url = models.URLField(blank=True, help_text="The regional /health URL.")
    in_rotation = models.BooleanField(
        default=True,
        help_text="Whether the stack is meant to receive traffic (inventory intent, not health).",
    )
    discovered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["application__name", "region__code"]
        constraints = [
            models.UniqueConstraint(fields=["application", "region"], name="stack_app_region")
        ]

    def __str__(self):
        return f"{self.application.name}/{self.region.code}"


class ComponentKind(models.TextChoices):
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


class Component(models.Model):
    """A typed AWS resource that belongs to a stack, with its last-seen configuration."""

    stack = models.ForeignKey(Stack, on_delete=models.CASCADE, related_name="components")
    kind = models.CharField(max_length=32, choices=ComponentKind.choices)
    identifier = models.CharField(max_length=2048, help_text="ARN or id.")
    name = models.CharField(max_length=255, blank=True)
    config = models.JSONField(default=dict, blank=True, help_text="Last-seen configuration.")
    discovered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["kind", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["stack", "kind", "identifier"], name="component_stack_kind_id"
            )
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.name or self.identifier}"
