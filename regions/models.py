from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, RegexValidator
from django.db import connections, models, router, transaction
from django.urls import reverse
from django.utils import timezone

from controlplane import aws
from regions.kinds import Architecture, ComponentKind

# The shape of a region code (us-east-1, us-gov-west-1, us-isob-east-1, eusc-de-east-1).
region_format_validator = RegexValidator(
    r"^[a-z]{2,4}(-[a-z]+)?-[a-z]+-\d{1,2}$", "Use an AWS region code such as us-east-1."
)


def region_code_validator(code):
    """A region code that AWS has: one botocore knows, or one of CONTROLPLANE_EXTRA_REGIONS
    (a region opened after the installed botocore). Every path where a region code comes
    from a person (import, admin, `discover --region`) goes through this."""
    region_format_validator(code)
    if code in aws.known_region_codes() or code in settings.CONTROLPLANE_EXTRA_REGIONS:
        return
    raise ValidationError(
        "%(code)s is not an AWS region known to botocore %(version)s; if AWS opened it since, "
        "add it to CONTROLPLANE_EXTRA_REGIONS.",
        code="unknown_region",
        params={"code": code, "version": aws.botocore_version()},
    )


account_id_validator = RegexValidator(r"^\d{12}$", "An AWS account id has 12 digits.")
role_arn_validator = RegexValidator(
    r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$",
    "Use an IAM role ARN such as arn:aws:iam::123456789012:role/ControlPlane.",
)
# Characters in Application.description (the rest are CharFields, capped by max_length).
DESCRIPTION_MAX_LENGTH = 4000

name_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9-]{0,62}$",
    "Use lowercase letters, digits and hyphens (at most 63), starting with a letter or digit.",
)


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
    # A TextField's max_length only sizes the form widget: the validator enforces it.
    description = models.TextField(
        blank=True, max_length=DESCRIPTION_MAX_LENGTH, validators=[MaxLengthValidator(DESCRIPTION_MAX_LENGTH)]
    )
    probe_interval = models.DurationField(
        null=True,
        blank=True,
        help_text="How often to probe this application; empty uses CONTROLPLANE_PROBE_INTERVAL.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("import_inventory", "Can import or export the inventory"),
            ("run_discovery", "Can run discovery from AWS"),
            ("apply_drift_undo", "Can apply a drift finding's undo to AWS"),
        ]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("regions:application", args=[self.name])

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

    def get_absolute_url(self):
        return reverse("regions:stack", args=[self.application.name, self.region.code])


class Component(models.Model):
    """A typed AWS resource that belongs to a stack, with its last-seen configuration."""

    stack = models.ForeignKey(Stack, on_delete=models.CASCADE, related_name="components")
    kind = models.CharField(max_length=32, choices=ComponentKind.choices)
    identifier = models.CharField(max_length=2048, help_text="ARN or id.")
    name = models.CharField(max_length=255, blank=True)
    config = models.JSONField(default=dict, blank=True, help_text="Last-seen configuration.")
    config_read_at = models.DateTimeField(
        null=True, blank=True, help_text="When `config` was last read from AWS (discovery, live refresh)."
    )
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

    def get_absolute_url(self):
        """Its stack's page, which lists it."""
        return self.stack.get_absolute_url()


# --- Monitoring: time series (facts only; status is computed in regions/status.py) ----


class ProbeTargetKind(models.TextChoices):
    STACK_HEALTH = "stack_health", "Regional /health"
    GLOBAL_ENDPOINT = "global_endpoint", "Global endpoint"


class ErrorClass(models.TextChoices):
    NONE = "", "None"
    TIMEOUT = "timeout", "Timeout"
    REFUSED = "refused", "Connection refused"
    TLS = "tls", "TLS error"
    DNS = "dns", "DNS failure"
    HTTP_5XX = "http_5xx", "HTTP 5xx"
    HTTP_4XX = "http_4xx", "HTTP 4xx"
    THROTTLED = "throttled", "Throttled (429)"
    BAD_BODY = "bad_body", "Unexpected body"
    OTHER = "other", "Other error"


class HealthSample(models.Model):
    """One HTTP probe of a stack's /health (or of an application's global endpoint).

    Bulk-inserted by `regions.tasks.probe_batch`; kept narrow (no text beyond short
    codes) because there is one row per target per vantage every interval. The foreign
    keys carry no index of their own: the composite indexes below start with them."""

    stack = models.ForeignKey(
        Stack, null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    application = models.ForeignKey(
        Application, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    target = models.CharField(max_length=16, choices=ProbeTargetKind.choices)
    vantage = models.CharField(max_length=32, help_text="Region label of the probing worker.")
    at = models.DateTimeField()
    ok = models.BooleanField()
    status_code = models.SmallIntegerField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    served_region = models.CharField(max_length=32, blank=True)
    error_class = models.CharField(max_length=16, blank=True, choices=ErrorClass.choices)

    class Meta:
        indexes = [
            # latest samples per stack (status loader, stack page charts); also serves
            # the stack's ON DELETE CASCADE.
            models.Index("stack", "target", models.F("at").desc(), name="healthsample_stack_latest"),
            # latest global-endpoint samples per application; also serves the
            # application's ON DELETE CASCADE.
            models.Index(
                "application", "target", models.F("at").desc(), name="healthsample_app_latest"
            ),
            # retention prune (at < cutoff) and the per-minute rollup scan.
            models.Index(fields=["at"], name="healthsample_at"),
        ]

    def __str__(self):
        return f"{self.target} {self.vantage} {self.at:%H:%M:%S} {'ok' if self.ok else 'fail'}"


class LagMethod(models.TextChoices):
    METRIC = "metric", "CloudWatch ReplicationLatency"
    CANARY = "canary", "Canary item"


LAG_STATE_COLUMNS = (
    "application_id", "source_region", "receiving_region", "at", "lag_ms", "method", "replicated"
)


def record_lag_states(samples):
    """Upsert the LagState of each sample's pair: INSERT ... ON CONFLICT DO UPDATE ...
    WHERE the sample is newer than the row (PostgreSQL; SQLite >= 3.24), so an older
    sample stored late never replaces a newer one, whatever the order of the batches.
    `samples`: LagSample instances or tuples in LAG_STATE_COLUMNS order. Called by
    every LagSample insert (LagSampleQuerySet)."""
    rows = [
        sample if isinstance(sample, tuple) else tuple(getattr(sample, c) for c in LAG_STATE_COLUMNS)
        for sample in samples
    ]
    if not rows:
        return
    connection = connections[router.db_for_write(LagState)]
    quote = connection.ops.quote_name
    table = quote(LagState._meta.db_table)
    columns = ", ".join(quote(c) for c in LAG_STATE_COLUMNS)
    at = LAG_STATE_COLUMNS.index("at")
    adapt = connection.ops.adapt_datetimefield_value
    placeholders = ", ".join(["%s"] * len(LAG_STATE_COLUMNS))
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) "  # noqa: S608 - names from the model
            f"ON CONFLICT ({', '.join(quote(c) for c in LAG_STATE_COLUMNS[:3])}) DO UPDATE SET "
            + ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in LAG_STATE_COLUMNS[3:])
            + f" WHERE EXCLUDED.{quote('at')} > {table}.{quote('at')}",
            [(*row[:at], adapt(row[at]), *row[at + 1:]) for row in rows],
        )


class LagFields(models.Model):
    """What a lag sample is: one measurement of one (application, source, receiving)
    pair. LagSample keeps every one; LagState the newest per pair."""

    application = models.ForeignKey(
        Application, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    source_region = models.CharField(max_length=32)
    receiving_region = models.CharField(max_length=32)
    at = models.DateTimeField()
    lag_ms = models.FloatField(null=True, blank=True)
    method = models.CharField(max_length=8, choices=LagMethod.choices)
    replicated = models.BooleanField(default=True)

    class Meta:
        abstract = True


class LagSampleQuerySet(models.QuerySet):
    """Every insert of LagSample rows keeps LagState (the newest sample per pair) in the
    same transaction: bulk_create and create upsert it (record_lag_states: an older
    sample never replaces a newer one). Samples are measurements, stored once by
    `regions.monitoring.store_lag_samples` and never rewritten."""

    def bulk_create(self, objs, *args, **kwargs):
        with transaction.atomic(using=self.db, savepoint=False):
            created = super().bulk_create(objs, *args, **kwargs)
            record_lag_states(created)
        return created


class LagSample(LagFields):
    """Replication lag from one region's replica to another, measured at `at`.

    `replicated=False` means a canary written in `source_region` was still not readable
    in `receiving_region` after the canary timeout; then `lag_ms` is the age, at `at`, of
    the pair's oldest canary still not replicated (regions.lag.run_canary).

    Inserted through `objects` only (see LagSampleQuerySet): the status reads LagState."""

    objects = LagSampleQuerySet.as_manager()

    class Meta:
        indexes = [
            # latest lag per (application, source, receiving) pair (status loader);
            # also serves the application's ON DELETE CASCADE.
            models.Index(
                "application",
                "receiving_region",
                "source_region",
                models.F("at").desc(),
                name="lagsample_pair_latest",
            ),
            # retention prune and the per-minute rollup scan.
            models.Index(fields=["at"], name="lagsample_at"),
        ]

    def __str__(self):
        return f"{self.source_region}->{self.receiving_region} {self.lag_ms} ms"

    def save(self, *args, **kwargs):
        adding = self._state.adding
        with transaction.atomic(savepoint=False):
            super().save(*args, **kwargs)
            if adding:
                record_lag_states([self])


class LagState(LagFields):
    """The newest LagSample of one (application, source, receiving) pair: what
    `regions.monitoring.latest_lags` (the status, the API, a drill's preflight) reads,
    one narrow row per pair instead of a window over the samples. Kept by every
    LagSample insert (LagSampleQuerySet), an upsert that only replaces an older row."""

    class Meta:
        constraints = [
            # the upsert's conflict target; also the status loader (application_id IN ...)
            # and the application's ON DELETE CASCADE.
            models.UniqueConstraint(
                fields=["application", "source_region", "receiving_region"], name="lagstate_pair"
            )
        ]

    def __str__(self):
        return f"{self.source_region}->{self.receiving_region} {self.lag_ms} ms at {self.at:%H:%M:%S}"


class HealthRollup(models.Model):
    """Per-minute aggregate of HealthSample rows, kept 30 days (raw rows: 48 h).

    Written by `regions.monitoring.rollup_minutes`: delete-then-insert per minute in one
    transaction, so re-rolling a minute is idempotent."""

    stack = models.ForeignKey(
        Stack, null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    application = models.ForeignKey(
        Application, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    target = models.CharField(max_length=16, choices=ProbeTargetKind.choices)
    vantage = models.CharField(max_length=32)
    minute = models.DateTimeField()
    count = models.PositiveIntegerField()
    ok_count = models.PositiveIntegerField()
    latency_p50_ms = models.FloatField(null=True, blank=True)
    latency_max_ms = models.FloatField(null=True, blank=True)
    latency_avg_ms = models.FloatField(null=True, blank=True)

    class Meta:
        indexes = [
            # a stack's history chart (stack, target, minute range); stack CASCADE.
            models.Index(fields=["stack", "target", "minute"], name="healthrollup_stack_minute"),
            # an application's global-endpoint history chart; application CASCADE.
            models.Index(
                fields=["application", "target", "minute"], name="healthrollup_app_minute"
            ),
            # re-rolling one minute (delete by minute), the rollup cursor, retention prune.
            models.Index(fields=["minute"], name="healthrollup_minute"),
        ]

    def __str__(self):
        return f"{self.target} {self.vantage} {self.minute:%Y-%m-%d %H:%M} {self.ok_count}/{self.count}"


class LagRollup(models.Model):
    """Per-minute aggregate of LagSample rows, kept 30 days."""

    application = models.ForeignKey(
        Application, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    source_region = models.CharField(max_length=32)
    receiving_region = models.CharField(max_length=32)
    minute = models.DateTimeField()
    count = models.PositiveIntegerField()
    avg_lag_ms = models.FloatField(null=True, blank=True)
    max_lag_ms = models.FloatField(null=True, blank=True)
    not_replicated_count = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            # an application's lag history chart per pair; application CASCADE.
            models.Index(
                fields=["application", "receiving_region", "source_region", "minute"],
                name="lagrollup_pair_minute",
            ),
            # re-rolling one minute, the rollup cursor, retention prune.
            models.Index(fields=["minute"], name="lagrollup_minute"),
        ]

    def __str__(self):
        return f"{self.source_region}->{self.receiving_region} {self.minute:%Y-%m-%d %H:%M}"


# --- Monitoring: what AWS itself says (regions/aws_health.py) ----------------------


class ObservationKind(models.TextChoices):
    # value, label; each kind belongs to one component kind (see OBSERVED_COMPONENT_KIND).
    ROUTE53_HEALTH = "route53_health", "Route 53 health check status"
    GA_ENDPOINT_HEALTH = "ga_endpoint_health", "Global Accelerator endpoint health"
    ALARM_STATE = "alarm_state", "CloudWatch alarm state"
    REPLICA_STATUS = "replica_status", "DynamoDB replica status"
    ROUTING_CONTROL_STATE = "routing_control_state", "ARC routing control state"


OBSERVED_COMPONENT_KIND = {
    ObservationKind.ROUTE53_HEALTH: ComponentKind.ROUTE53_HEALTH_CHECK,
    ObservationKind.GA_ENDPOINT_HEALTH: ComponentKind.GA_ENDPOINT_GROUP,
    ObservationKind.ALARM_STATE: ComponentKind.CLOUDWATCH_ALARM,
    ObservationKind.REPLICA_STATUS: ComponentKind.DYNAMODB_REPLICA,
    ObservationKind.ROUTING_CONTROL_STATE: ComponentKind.ARC_ROUTING_CONTROL,
}


class AwsObservation(models.Model):
    """The latest thing AWS said about a component (one row per component and kind,
    upserted by the beat tasks of regions/aws_health.py; the console and the API read
    these rows, never AWS).

    `state` is short and normalised ("healthy", "unhealthy", "ALARM", "On", ...);
    `detail` keeps AWS's own words (per checker region, per endpoint, per replica)."""

    component = models.ForeignKey(Component, on_delete=models.CASCADE, related_name="observations")
    kind = models.CharField(max_length=32, choices=ObservationKind.choices)
    state = models.CharField(max_length=32)
    detail = models.JSONField(default=dict, blank=True)
    observed_at = models.DateTimeField(help_text="When AWS was last asked.")
    changed_at = models.DateTimeField(help_text="When `state` last changed.")

    class Meta:
        constraints = [
            # the upsert key; also serves the component's ON DELETE CASCADE.
            models.UniqueConstraint(fields=["component", "kind"], name="awsobservation_component_kind")
        ]

    def __str__(self):
        return f"{self.kind} {self.state} ({self.component_id})"


class TargetState(models.Model):
    """The hysteresis state of one probe target as seen from one vantage
    (`regions.status.Track`), as of its latest sample: folded forward by
    `regions.monitoring.store_results` in the transaction of the raw insert, so the
    status loader reads one narrow row of scalars per target and replays nothing.

    `target_key` is "s:<stack id>" or "a:<application id>" (the global endpoint): a
    non-null key for the upsert, `stack` being null for the global endpoint. `run_*`
    describe the latest run of consecutive failures (the current one while
    `ok_streak` is 0); `last_*` the latest sample."""

    application = models.ForeignKey(
        Application, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    stack = models.ForeignKey(Stack, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    target = models.CharField(max_length=16, choices=ProbeTargetKind.choices)
    target_key = models.CharField(max_length=24)
    vantage = models.CharField(max_length=32)
    # healthy, unhealthy, or unknown (not decided yet): regions.status.HealthStatus values
    status = models.CharField(max_length=16, default="unknown")
    ok_streak = models.PositiveIntegerField(default=0)
    run_count = models.PositiveIntegerField(default=0, help_text="0: no failure seen yet")
    run_same = models.BooleanField(default=True)
    run_at = models.DateTimeField(null=True, blank=True)
    run_status_code = models.SmallIntegerField(null=True, blank=True)
    run_latency_ms = models.FloatField(null=True, blank=True)
    run_error_class = models.CharField(max_length=16, blank=True, choices=ErrorClass.choices)
    last_at = models.DateTimeField()
    last_ok = models.BooleanField(default=False)
    last_status_code = models.SmallIntegerField(null=True, blank=True)
    last_latency_ms = models.FloatField(null=True, blank=True)
    last_error_class = models.CharField(max_length=16, blank=True, choices=ErrorClass.choices)
    last_served_region = models.CharField(max_length=32, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["target_key", "vantage"], name="targetstate_target_vantage")
        ]
        indexes = [
            # the status loader (application_id IN ...); also the application's CASCADE.
            models.Index(fields=["application"], name="targetstate_application"),
        ]

    def __str__(self):
        return f"{self.target_key} {self.vantage} {self.last_at:%H:%M:%S}"


class ProbeClock(models.Model):
    """The last second (epoch tick) whose due targets `regions.tasks.probe_cycle` has sent.

    Beat runs probe_cycle about once a second, but not on the second: two runs can fall
    in one second and skip the next, which would leave the applications due in the
    skipped second unprobed for a whole interval. Each run claims the seconds from the
    last claimed one up to its own (`monitoring.claim_ticks`, a conditional UPDATE: one
    run per second however many run at once) and sends the targets due in any of them."""

    name = models.CharField(max_length=32, unique=True, default="probes")
    last_tick = models.BigIntegerField()

    def __str__(self):
        return f"{self.name} @ {self.last_tick}"


class ReportedDrift(models.Model):
    """A drift finding (regions.drift.find_drift) as it was told to the notification
    channels: one row per appearance, from the pass that first saw it (`first_seen`,
    when DRIFT_FOUND was published) to the pass that no longer did (`cleared_at`).

    Findings are computed, never stored as truth; these rows only remember what was
    already told, so a fault that stays on is told once and one that comes back again.
    `key` names the finding across passes (its component, kind and words)."""

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="+")
    region = models.CharField(max_length=32)
    # null once discovery has removed the component: the history stays, the row is cleared.
    component = models.ForeignKey(
        Component, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=32, choices=ComponentKind.choices)
    key = models.CharField(max_length=64)
    what = models.TextField()
    undo = models.JSONField(help_text="The undo as data (drift.Undo.as_dict()).")
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    cleared_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # one open row per finding: two passes at once cannot both tell it. Its
            # partial index also serves each pass's read of the open rows.
            models.UniqueConstraint(
                fields=["key"], condition=models.Q(cleared_at__isnull=True), name="reporteddrift_open_key"
            ),
        ]

    def __str__(self):
        return f"{self.what} ({'cleared' if self.cleared_at else 'open'})"
