"""Failover drills: scenarios, drills and their timeline, approvals, the compensation
ledger and the halt-all switch.

State lives in rows; every state change is a conditional UPDATE in
`experiments.services` (a ledger row's in `experiments.ledger`; never `save()` of a
loaded row), which also writes the audit event. Status-like facts (is an approval
still valid? is the halt on?) are computed from stored facts and `now`.
"""

from datetime import timedelta

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.urls import reverse
from django.utils import timezone

from controlplane.choices import ColouredChoices
from experiments.faults import FaultKind
from experiments.scenarios import validate_scenario
from regions.models import Application, Architecture, Component, Region

APPROVAL_TTL = timedelta(hours=24)

def approval_expiry():
    return timezone.now() + APPROVAL_TTL


class DrillState(ColouredChoices):
    # value, label, badge colour
    REQUESTED = "requested", "Requested", "blue"
    APPROVED = "approved", "Approved", "teal"
    QUEUED = "queued", "Queued", "teal"
    RUNNING = "running", "Running", "orange"
    REVERTING = "reverting", "Reverting", "orange"
    PASSED = "passed", "Passed", "green"
    FAILED = "failed", "Failed", "red"
    # The hypothesis could not be tested (outcome_reason says why): never a pass.
    INCONCLUSIVE = "inconclusive", "Inconclusive", "amber"
    ABORTED = "aborted", "Aborted", "gray"
    ERRORED = "errored", "Errored", "red"
    REJECTED = "rejected", "Rejected", "gray"
    EXPIRED = "expired", "Expired", "gray"


# The state lists, each written once. A runner owns the drill: its faults may be on in
# AWS, the reaper watches its heartbeat, an abort is a request the runner acts on.
RUNNING_STATES = (DrillState.RUNNING, DrillState.REVERTING)
# A drill in one of these states may have faults in AWS (or is about to).
LIVE_STATES = (DrillState.QUEUED, *RUNNING_STATES)
# Not started yet: an abort ends the drill at once.
NOT_STARTED_STATES = (DrillState.REQUESTED, DrillState.APPROVED, DrillState.QUEUED)
# Approved, waiting for its window or a worker: a halt aborts it.
SCHEDULED_STATES = (DrillState.APPROVED, DrillState.QUEUED)
FINAL_STATES = (
    DrillState.PASSED,
    DrillState.FAILED,
    DrillState.INCONCLUSIVE,
    DrillState.ABORTED,
    DrillState.ERRORED,
    DrillState.REJECTED,
    DrillState.EXPIRED,
)
# How a drill that was let run ended: the scorecard's count per outcome, in this order.
# Only passed is a success; inconclusive is its own count, neither pass nor fail.
OUTCOME_STATES = (
    DrillState.PASSED,
    DrillState.FAILED,
    DrillState.INCONCLUSIVE,
    DrillState.ABORTED,
    DrillState.ERRORED,
)
# The timestamp column set when a drill enters each state (services.transition).
STATE_TIMESTAMP = {
    DrillState.REQUESTED: "requested_at",
    DrillState.APPROVED: "approved_at",
    DrillState.QUEUED: "queued_at",
    DrillState.RUNNING: "started_at",
    DrillState.REVERTING: "reverting_at",
    **{state: "finished_at" for state in FINAL_STATES},
}


class Scenario(models.Model):
    """A named drill recipe: which fault, on what, with which parameters, what we expect
    (hypothesis) and when to stop early. Validation lives in `clean()` so the console
    form, the admin and the API give the same message per field."""

    slug = models.SlugField(max_length=63, unique=True, help_text="Stable; never reused.")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    fault_kind = models.CharField(max_length=40, choices=FaultKind.choices)
    target_selector = models.JSONField(
        default=dict,
        blank=True,
        encoder=DjangoJSONEncoder,
        help_text='Which components of the chosen region, e.g. {"component_kind": '
        '"lambda_function", "name": "*-api"}; empty: the fault\'s own kind, all of them.',
    )
    parameters = models.JSONField(default=dict, blank=True, help_text="Fault parameters.")
    hypothesis = models.JSONField(
        default=dict,
        blank=True,
        help_text='{"steady_state": [{"check": "global_success_rate", "min_percent": 99}], '
        '"max_time_to_failover_seconds": 60}',
    )
    stop_conditions = models.JSONField(
        default=list,
        blank=True,
        help_text='[{"metric": "global_error_rate", "threshold_percent": 5, "for_seconds": 30}, '
        '{"metric": "other_region_unhealthy"}]',
    )
    max_duration = models.DurationField(default=timedelta(minutes=10))
    architecture = models.CharField(
        max_length=1,
        blank=True,
        choices=Architecture.choices,
        help_text="The architecture this scenario applies to; empty: both.",
    )
    built_in = models.BooleanField(default=False, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-built_in", "name"]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("experiments:scenario", args=[self.slug])

    def applies_to(self, application):
        return not self.architecture or self.architecture == application.architecture

    def clean(self):
        validate_scenario(self)


class Drill(models.Model):
    """One run of a scenario on one application in one region."""

    scenario = models.ForeignKey(Scenario, on_delete=models.PROTECT, related_name="drills")
    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="drills")
    region = models.ForeignKey(
        Region, on_delete=models.PROTECT, related_name="drills", help_text="The target region."
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="requested_drills"
    )
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=16, choices=DrillState.choices, default=DrillState.REQUESTED)

    plan = models.JSONField(default=dict, encoder=DjangoJSONEncoder, editable=False)
    plan_hash = models.CharField(max_length=64, editable=False)

    requested_at = models.DateTimeField(default=timezone.now)
    approved_at = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    reverting_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True, help_text="hostname:pid of the runner.")
    dispatched_at = models.DateTimeField(
        null=True, blank=True, help_text="When the run message was last sent (the reaper resends)."
    )
    abort_requested_at = models.DateTimeField(null=True, blank=True)
    abort_reason = models.CharField(max_length=500, blank=True)
    outcome_reason = models.TextField(blank=True)
    figures = models.JSONField(
        default=dict,
        blank=True,
        encoder=DjangoJSONEncoder,
        help_text="time_to_detect, time_to_failover, time_to_recover (s), error_rate, "
        "p95_latency_ms, lag_during_ms, lag_after_ms.",
    )

    class Meta:
        ordering = ["-requested_at"]
        indexes = [
            # the console's drill list filtered by state, newest first; the reaper's
            # scan for live drills whose heartbeat stopped (state IN live, heartbeat_at < t);
            # the approvals queue and its count (state = requested, oldest first).
            models.Index(fields=["state", "-requested_at"], name="drill_state_recent"),
            # "one live drill per application": a drill request checks
            # application=X AND state IN (queued, running, reverting); also the app page.
            models.Index(fields=["application", "state"], name="drill_app_state"),
        ]
        permissions = [
            ("request_drill", "Can request a drill"),
            ("approve_drill", "Can approve or reject a drill"),
            ("abort_drill", "Can abort a drill"),
            ("halt_drills", "Can halt all drills"),
            ("clear_halt", "Can clear the halt on drills"),
            ("close_ledger_row", "Can close a stuck ledger row without reverting it"),
        ]

    def __str__(self):
        return f"drill #{self.pk} ({self.state})"

    def get_absolute_url(self):
        return reverse("experiments:detail", args=[self.pk])

    @property
    def is_final(self):
        return self.state in FINAL_STATES

    def audit_repr(self):
        """How audit events name a drill (with its scenario, application and region)."""
        return f"drill #{self.pk} {self.scenario.slug} on {self.application.name}/{self.region.code}"

    @property
    def state_badge(self):
        return DrillState.colour_of(self.state)


class StepKind(ColouredChoices):
    STATE = "state", "State change", "blue"
    PLAN = "plan", "Plan", "gray"
    INJECT = "inject", "Fault injected", "orange"
    REVERT = "revert", "Fault reverted", "teal"
    OBSERVATION = "observation", "Observation", "gray"
    STOP_CONDITION = "stop_condition", "Stop condition", "red"
    ERROR = "error", "Error", "red"
    NOTE = "note", "Note", "gray"


class DrillStep(models.Model):
    """One row of a drill's timeline."""

    drill = models.ForeignKey(Drill, on_delete=models.CASCADE, related_name="steps", db_index=False)
    at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=16, choices=StepKind.choices)
    message = models.CharField(max_length=500)
    data = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)

    class Meta:
        ordering = ["at", "pk"]
        indexes = [
            # the drill page's timeline (drill=X ORDER BY at); also the drill's CASCADE.
            models.Index(fields=["drill", "at"], name="drillstep_timeline"),
        ]

    def __str__(self):
        return f"{self.at:%H:%M:%S} {self.kind}: {self.message}"

    @classmethod
    def add(cls, drill_id, kind, message, data=None, at=None):
        """Append a row to the drill's timeline (the message cut to its column's size)."""
        return cls.objects.create(
            drill_id=drill_id, kind=kind, message=message[:500], data=data or {}, at=at or timezone.now()
        )


class ObserverBatch(models.Model):
    """Requests through the global endpoint made for a drill from one vantage by that
    vantage's probe worker (experiments.observer.observe_remotely), appended about twice a
    second; the drill runner reads them as they arrive."""

    drill = models.ForeignKey(Drill, on_delete=models.CASCADE, related_name="+", db_index=False)
    vantage = models.CharField(max_length=32)
    seq = models.PositiveIntegerField()
    # [[unix time, ok, status or null, served region, latency ms, error class], ...]
    samples = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["drill", "vantage", "seq"], name="observerbatch_unique_seq"),
        ]

    def __str__(self):
        return f"drill {self.drill_id} from {self.vantage} #{self.seq} ({len(self.samples)} samples)"


class Decision(ColouredChoices):
    APPROVE = "approve", "Approve", "green"
    REJECT = "reject", "Reject", "red"


class Approval(models.Model):
    """An approver's decision on the exact plan (by hash). Valid only while the drill's
    plan hash is unchanged and until `expires_at` (see `is_valid_for`)."""

    drill = models.ForeignKey(Drill, on_delete=models.CASCADE, related_name="approvals", db_index=False)
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=8, choices=Decision.choices)
    comment = models.TextField(blank=True)
    plan_hash = models.CharField(max_length=64, help_text="The hash of the plan approved.")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(default=approval_expiry)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # a drill's approvals, newest first (validity check, drill page); drill CASCADE.
            models.Index(fields=["drill", "-created_at"], name="approval_drill_recent"),
        ]

    def __str__(self):
        return f"{self.decision} of drill #{self.drill_id} by {self.approver_id}"

    @property
    def decision_badge(self):
        return Decision.colour_of(self.decision)

    def is_valid_for(self, drill, now=None):
        now = now or timezone.now()
        return (
            self.decision == Decision.APPROVE
            and self.plan_hash == drill.plan_hash
            and self.expires_at > now
            and self.approver_id != drill.requested_by_id
        )


class CompensationState(ColouredChoices):
    PENDING = "pending", "Pending (row written, call not confirmed)", "blue"
    INJECTED = "injected", "Injected", "orange"
    REVERTED = "reverted", "Reverted", "green"
    FAILED = "failed", "Revert failed (retried)", "red"
    # Terminal without a revert: the target no longer exists (its inverse answered "not
    # found"), or an admin closed the row with a reason. Both are audited.
    GONE = "gone", "Target gone (nothing to revert)", "amber"
    CLOSED = "closed", "Closed by an admin", "amber"


# Ledger rows still to revert (the reaper's work); every other state is closed.
OPEN_COMPENSATION_STATES = (CompensationState.PENDING, CompensationState.INJECTED, CompensationState.FAILED)


class Compensation(models.Model):
    """The ledger: one row written *before* each mutating AWS call, with the call, its
    exact inverse and the value read before injecting. The reaper reverts every row not
    yet reverted whose drill is not alive by `deadline`."""

    drill = models.ForeignKey(
        Drill, on_delete=models.PROTECT, related_name="compensations", db_index=False
    )
    step = models.ForeignKey(
        DrillStep, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    component = models.ForeignKey(
        Component, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    fault_kind = models.CharField(max_length=40, choices=FaultKind.choices)
    target = models.JSONField(
        encoder=DjangoJSONEncoder, help_text="Snapshot of the target (kind, identifier, region)."
    )
    call = models.JSONField(encoder=DjangoJSONEncoder, help_text="service, region, operation, params")
    inverse = models.JSONField(encoder=DjangoJSONEncoder, help_text="The call that undoes it.")
    previous_value = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    previous_read = models.BooleanField(
        default=False, help_text="True once previous_value was read (before the call)."
    )
    deadline = models.DateTimeField()
    state = models.CharField(
        max_length=10, choices=CompensationState.choices, default=CompensationState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0, help_text="Revert attempts.")
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    injected_at = models.DateTimeField(null=True, blank=True)
    reverted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [
            # a drill's ledger in order (runner's revert pass, drill page); drill PROTECT.
            models.Index(fields=["drill", "created_at"], name="compensation_drill"),
            # the reaper: state IN (pending, injected, failed) AND deadline < now.
            models.Index(
                fields=["deadline"],
                name="compensation_open_deadline",
                condition=~models.Q(state="reverted"),
            ),
        ]

    def __str__(self):
        return f"{self.call.get('operation')} ({self.state}) for drill #{self.drill_id}"


class HaltState(models.Model):
    """The halt-all switch: one row (pk=1). While halted no drill may start and running
    drills are reverted. History is in the audit log."""

    halted = models.BooleanField(default=False)
    reason = models.TextField(blank=True)
    halted_by = models.CharField(max_length=150, blank=True)
    halted_at = models.DateTimeField(null=True, blank=True)
    cleared_by = models.CharField(max_length=150, blank=True)
    cleared_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(pk=1), name="haltstate_single_row")]

    def __str__(self):
        return "halted" if self.halted else "not halted"

    def get_absolute_url(self):
        """The drills list, whose halt panel shows the switch."""
        return reverse("experiments:list")


class ScheduleState(ColouredChoices):
    PROPOSED = "proposed", "Proposed (waits for approval)", "blue"
    APPROVED = "approved", "Approved (running on schedule)", "green"
    PAUSED = "paused", "Paused", "amber"
    EXPIRED = "expired", "Expired", "gray"


# The furthest a schedule may run: a standing approval is renewed at least this often.
SCHEDULE_MAX_LIFETIME = timedelta(days=90)


class Schedule(models.Model):
    """A drill on a recurrence under a standing approval: an operator proposes it, an
    approver approves the plans it would run once (their hashes, per region); each
    occurrence then requests a drill that is approved by this approval while its plan
    hashes the same (experiments.schedules)."""

    scenario = models.ForeignKey(Scenario, on_delete=models.PROTECT, related_name="schedules")
    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="schedules")
    region = models.ForeignKey(
        Region, null=True, blank=True, on_delete=models.PROTECT, related_name="schedules",
        help_text="The target region; empty: each region of the application in turn.",
    )
    cron = models.CharField(max_length=100, help_text='Five cron fields, e.g. "0 3 * * 1".')
    time_zone = models.CharField(max_length=64, default="UTC", help_text="IANA name the cron is read in.")
    run_window = models.DurationField(
        default=timedelta(minutes=15), help_text="How long after its time an occurrence may still start."
    )
    expires_at = models.DateTimeField()
    state = models.CharField(max_length=10, choices=ScheduleState.choices, default=ScheduleState.PROPOSED)
    # {region code: plan hash} of the plans proposed; the approval binds a copy of it.
    plan_hashes = models.JSONField(default=dict, encoder=DjangoJSONEncoder, editable=False)
    approved_hashes = models.JSONField(default=dict, encoder=DjangoJSONEncoder, editable=False)
    # Named as a drill's, so that services.why_cannot_decide applies the same four-eyes rule.
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="proposed_schedules"
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approval_comment = models.TextField(blank=True)
    requested_at = models.DateTimeField(default=timezone.now)
    approved_at = models.DateTimeField(null=True, blank=True)
    # Occurrences are due after this (approval, or the last resume): none while paused.
    active_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]
        indexes = [
            # beat's pass over the schedules that run (state = approved).
            models.Index(fields=["state"], name="schedule_state"),
        ]

    def __str__(self):
        return f"schedule #{self.pk} ({self.state})"

    def get_absolute_url(self):
        return reverse("experiments:schedule", args=[self.pk])

    def audit_repr(self):
        where = self.region.code if self.region_id else "each region in turn"
        return f"schedule #{self.pk} {self.scenario.slug} on {self.application.name}/{where} ({self.cron})"

    @property
    def state_badge(self):
        return ScheduleState.colour_of(self.state)


class OccurrenceState(ColouredChoices):
    CREATED = "created", "Drill created", "green"
    SKIPPED = "skipped", "Skipped", "amber"


class ScheduleOccurrence(models.Model):
    """One due time of a schedule and what became of it: a drill, or skipped and why
    (missed while beat was down, the halt on, a request refused). One row per due time:
    the unique constraint makes a second beat pass do nothing."""

    schedule = models.ForeignKey(
        Schedule, on_delete=models.CASCADE, related_name="occurrences", db_index=False
    )
    due_at = models.DateTimeField()
    # None only for a due time skipped because the application had no region to drill.
    region = models.ForeignKey(Region, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    state = models.CharField(max_length=8, choices=OccurrenceState.choices)
    reason = models.CharField(max_length=500, blank=True)
    drill = models.OneToOneField(
        Drill, null=True, blank=True, on_delete=models.SET_NULL, related_name="occurrence"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-due_at"]
        constraints = [
            # also the schedule page's occurrences, newest first, and the last due time.
            models.UniqueConstraint(fields=["schedule", "due_at"], name="occurrence_unique_due"),
        ]

    def __str__(self):
        return f"schedule #{self.schedule_id} at {self.due_at:%Y-%m-%d %H:%M} ({self.state})"

    @property
    def state_badge(self):
        return OccurrenceState.colour_of(self.state)


# --- Game days (issue #15): an ordered list of drills approved once ------------------------


class GameDayState(ColouredChoices):
    PROPOSED = "proposed", "Proposed", "blue"
    RUNNING = "running", "Running", "orange"
    # A step's plan changed since the approval: stopped at that step until approved again.
    WAITING = "waiting", "Waiting for a new approval", "amber"
    FINISHED = "finished", "Finished", "green"
    STOPPED = "stopped", "Stopped", "red"
    REJECTED = "rejected", "Rejected", "gray"


# An approver may approve (or reject) a game day in these states.
GAMEDAY_DECIDABLE_STATES = (GameDayState.PROPOSED, GameDayState.WAITING)
GAMEDAY_FINAL_STATES = (GameDayState.FINISHED, GameDayState.STOPPED, GameDayState.REJECTED)


class GameDay(models.Model):
    """Drills run one after the other under one approval: the approver signs the hash
    of every step's plan (`plan_hash`); each step's drill is approved by it while its
    own fresh plan hashes as approved (experiments.gamedays)."""

    name = models.CharField(max_length=100)
    # Named as a drill's so that the four-eyes rule (services.why_cannot_decide) reads it.
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="proposed_gamedays"
    )
    pause = models.DurationField(
        default=timedelta(0), help_text="Between one drill's end and the next start."
    )
    continue_on_failure = models.BooleanField(default=False)
    state = models.CharField(max_length=16, choices=GameDayState.choices, default=GameDayState.PROPOSED)
    plan_hash = models.CharField(max_length=64, help_text="The hash of its steps' plan hashes, in order.")
    approved_hash = models.CharField(max_length=64, blank=True, help_text="The plan_hash last approved.")
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    decision_comment = models.TextField(blank=True)
    current = models.PositiveIntegerField(default=1, help_text="The position of the step running or next.")
    next_start_at = models.DateTimeField(
        null=True, blank=True, help_text="Not before: the pause after a step."
    )
    reason = models.TextField(blank=True, help_text="Why it stopped, waits or finished as it did.")
    requested_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]
        indexes = [
            # the beat pass (state = running) and the list filtered by state, newest first.
            models.Index(fields=["state", "-requested_at"], name="gameday_state_recent"),
        ]

    def __str__(self):
        return f"game day #{self.pk} {self.name} ({self.state})"

    def get_absolute_url(self):
        return reverse("experiments:gameday", args=[self.pk])

    @property
    def is_final(self):
        return self.state in GAMEDAY_FINAL_STATES

    @property
    def state_badge(self):
        return GameDayState.colour_of(self.state)


class GameDayStep(models.Model):
    """One drill of a game day: what to run, the plan the approver saw, the drill it made."""

    game_day = models.ForeignKey(GameDay, on_delete=models.CASCADE, related_name="steps", db_index=False)
    position = models.PositiveIntegerField()
    scenario = models.ForeignKey(Scenario, on_delete=models.PROTECT, related_name="+")
    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="+")
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="+")
    plan = models.JSONField(default=dict, encoder=DjangoJSONEncoder, editable=False)
    plan_hash = models.CharField(max_length=64, editable=False)
    drill = models.OneToOneField(
        Drill, null=True, blank=True, on_delete=models.PROTECT, related_name="game_day_step"
    )

    class Meta:
        ordering = ["game_day", "position"]
        constraints = [
            # a game day's steps in order (the page, the beat pass's current step).
            models.UniqueConstraint(fields=["game_day", "position"], name="gamedaystep_position"),
        ]

    def __str__(self):
        return f"step {self.position} of game day #{self.game_day_id}"
