"""Forms of the drills console and API: requesting a drill, deciding on one, halting,
closing a ledger row, filtering the list, editing a scenario, proposing, pausing and
resuming a schedule.

A form parses: it turns the input into objects (an unknown application, region or
scenario, a date out of range is a message on its field) and nothing more. Whether the
request may be made (the role, the halt, the architecture, the region's stack, the
window) is decided by `experiments.services`, with its messages: the request form asks
it (`request_problems`) about the choices that parsed and puts the service's
ValidationError messages back on its fields, so the console and the API answer with one
message per field.
"""

from datetime import UTC, timedelta

from django import forms
from django.core.exceptions import ValidationError

from experiments import gamedays, schedules, services
from experiments.models import DrillState, Scenario
from regions.models import Application, Region

REPORT_DEFAULT_DAYS = 90


class _SlugChoiceField(forms.ModelChoiceField):
    """A ModelChoiceField that names the value it could not find. Its select offers
    `queryset`, which a form may narrow; any row of the model parses, so that a choice
    that exists but does not fit is the service's to explain (not "unknown")."""

    def __init__(self, queryset, *args, noun, **kwargs):
        super().__init__(queryset, *args, **kwargs)
        self.noun = noun
        self.parses = queryset

    def to_python(self, value):
        offered, self.queryset = self.queryset, self.parses
        try:
            return super().to_python(value)
        except ValidationError as exc:
            if exc.code == "invalid_choice":
                message = f"Unknown {self.noun} {str(value)[:80]!r}."
                raise ValidationError(message, code="invalid_choice") from exc
            raise
        finally:
            self.queryset = offered


class _UTCDateTimeField(forms.DateTimeField):
    """A date-time in UTC (naive input is UTC, the console's zone). One that cannot be
    expressed in UTC (9999-12-31T23:59:59-05:00 is in the year 10000) is refused here:
    the database would raise OverflowError converting it."""

    def to_python(self, value):
        result = super().to_python(value)
        if result is None:
            return None
        try:
            return result.astimezone(UTC)
        except OverflowError as exc:
            raise ValidationError(
                "This date is out of range once converted to UTC (years 1 to 9999).", code="invalid"
            ) from exc


class _ServiceErrors:
    """Puts the service's ValidationError messages on the form's fields."""

    def add_service_errors(self, error):
        if hasattr(error, "error_dict"):
            for field, messages in error.message_dict.items():
                self.add_error(field if field in self.fields else None, messages)
        else:
            self.add_error(None, error.messages)


class DrillRequestForm(_ServiceErrors, forms.Form):
    application = _SlugChoiceField(
        Application.objects.order_by("name"), to_field_name="name", noun="application",
        error_messages={"required": "Choose the application."},
    )
    region = _SlugChoiceField(
        Region.objects.order_by("code"), to_field_name="code", noun="region",
        error_messages={"required": "Choose the target region."},
    )
    scenario = _SlugChoiceField(
        Scenario.objects.order_by("-built_in", "name"), to_field_name="slug", noun="scenario",
        error_messages={"required": "Choose a scenario."},
    )
    window_start = _UTCDateTimeField(
        required=False, label="Window opens (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="Empty: as soon as approved.",
    )
    window_end = _UTCDateTimeField(
        required=False, label="Window closes (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Offer only the regions the chosen application has a stack in and the scenarios
        # that apply to its architecture, before and after an error (what does not fit
        # still parses: the service says why it does not fit).
        name = self.data.get("application") if self.is_bound else self.initial.get("application")
        # (a NUL is refused by PostgreSQL before the field can say "unknown application")
        usable = isinstance(name, str) and name and "\x00" not in name
        app = Application.objects.filter(name=name).first() if usable else None
        if app is not None:
            self.fields["scenario"].queryset = Scenario.objects.filter(
                architecture__in=["", app.architecture]
            ).order_by("-built_in", "name")
            self.fields["region"].queryset = Region.objects.filter(stacks__application=app).order_by("code")

    def clean(self):
        """What the service would refuse among the choices that parsed
        (`services.request_problems`: its messages), so that the request page's preview and
        a bad request say everything at once. `services.request` checks them again."""
        cleaned = super().clean()
        problems = services.request_problems(
            cleaned.get("scenario"), cleaned.get("application"), cleaned.get("region"),
            cleaned.get("window_start"), cleaned.get("window_end"),
        )
        for field, message in problems.items():
            self.add_error(field, message)
        return cleaned

    def submit(self, user, *, source, request_id=""):
        """Request the drill through `experiments.services` (console and API alike).
        Returns the Drill, or None with the service's messages put on the fields.
        PermissionDenied propagates."""
        if not self.is_valid():
            return None
        data = self.cleaned_data
        try:
            return services.request(
                user=user,
                scenario=data["scenario"],
                application=data["application"],
                region=data["region"],
                window_start=data.get("window_start"),
                window_end=data.get("window_end"),
                source=source,
                request_id=request_id,
            )
        except ValidationError as exc:
            self.add_service_errors(exc)
            return None


class DecisionForm(_ServiceErrors, forms.Form):
    # Whether a comment is given is the service's to say (services.reject needs one).
    comment = forms.CharField(
        required=False, max_length=2000, label="Comment (required to reject)",
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    plan_hash = forms.CharField(
        max_length=64, widget=forms.HiddenInput,
        error_messages={"required": "The form did not say which plan you reviewed; reload the page."},
    )


class HaltForm(forms.Form):
    """Halting all drills and clearing the halt. Whether a reason is given is the
    service's to say (services.halt_all, services.clear_halt)."""

    reason = forms.CharField(required=False, max_length=500, strip=True)


class AbortForm(forms.Form):
    reason = forms.CharField(required=False, max_length=500)


class ScheduleSwitchForm(forms.Form):
    """Pausing or resuming a schedule, with an optional reason (audited)."""

    reason = forms.CharField(required=False, max_length=500, strip=True)


class CloseLedgerRowForm(forms.Form):
    # Whether a reason is given is the ledger's to say (ledger.close_ledger_row).
    reason = forms.CharField(required=False, max_length=500)


class DrillFilterForm(forms.Form):
    """The drill list's filters (GET); unknown values are ignored, not errors (an
    unknown state leaves `state` out of cleaned_data, so the list is not filtered)."""

    state = forms.ChoiceField(required=False, choices=[("", "any"), *DrillState.choices])
    application = forms.CharField(required=False)
    region = forms.CharField(required=False)
    scenario = forms.CharField(required=False)


class ScenarioForm(forms.ModelForm):
    """Operators create and edit their own scenarios (built-ins are read-only)."""

    class Meta:
        model = Scenario
        fields = [
            "slug", "name", "description", "fault_kind", "target_selector", "parameters",
            "hypothesis", "stop_conditions", "max_duration", "architecture",
        ]

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        if self.instance.pk:
            self.fields["slug"].disabled = True  # stable

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk and self.instance.built_in:
            raise ValidationError("Built-in scenarios cannot be edited; copy one instead.")
        return cleaned

    def save(self, commit=True):
        if self.user is not None and not self.instance.pk:
            self.instance.created_by = self.user
        return super().save(commit)


EXPORT_FORMATS = [("fis", "AWS FIS experiment template"), ("chaostoolkit", "Chaos Toolkit experiment")]


class ScenarioExportForm(forms.Form):
    """Which application and region to bind a scenario to for an export, and in which
    format (experiments.interop). The service's request rules say what fits."""

    format = forms.ChoiceField(
        choices=EXPORT_FORMATS,
        error_messages={"required": "Choose a format: fis or chaostoolkit.",
                        "invalid_choice": "Unknown format %(value)s: fis or chaostoolkit."},
    )
    application = _SlugChoiceField(
        Application.objects.order_by("name"), to_field_name="name", noun="application",
        error_messages={"required": "Choose the application."},
    )
    region = _SlugChoiceField(
        Region.objects.order_by("code"), to_field_name="code", noun="region",
        error_messages={"required": "Choose the region."},
    )
    role_arn = forms.CharField(
        required=False, max_length=2048, label="FIS role ARN",
        help_text="FIS only; empty: the role of the application's FIS templates in the inventory.",
    )

    def __init__(self, *args, scenario, **kwargs):
        super().__init__(*args, **kwargs)
        self.scenario = scenario

    def clean(self):
        cleaned = super().clean()
        problems = services.request_problems(self.scenario, cleaned.get("application"), cleaned.get("region"))
        for field, message in problems.items():
            self.add_error(field if field in self.fields else None, message)
        return cleaned


class ExperimentUploadForm(forms.Form):
    """A Chaos Toolkit experiment file to import as a scenario (experiments.interop)."""

    experiment = forms.FileField(label="Chaos Toolkit experiment (JSON)")
    slug = forms.SlugField(required=False, max_length=63, help_text="Empty: the experiment's own.")


class ReportForm(forms.Form):
    """The period report's choices (experiments/reports.py): the days from..to (UTC,
    both included; by default the last 90) and one application or all."""

    start = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    application = _SlugChoiceField(
        Application.objects.order_by("name"), required=False, to_field_name="name", noun="application",
        empty_label="All applications",
    )

    def __init__(self, data, *, today):
        data = data.copy()
        # ?from= and ?to= in the URL; the fields' own names would shadow Python's keywords
        for field, key in (("start", "from"), ("end", "to")):
            data.setdefault(field, data.get(key, ""))
        super().__init__(data)
        self.today = today

    def clean(self):
        data = super().clean()
        end = data.get("end") or self.today
        start = data.get("start") or end - timedelta(days=REPORT_DEFAULT_DAYS)
        if "start" in data and "end" in data and start > end:
            raise ValidationError(f"The period starts ({start}) after it ends ({end}).")
        data["start"], data["end"] = start, end
        return data


class ScheduleForm(_ServiceErrors, forms.Form):
    """A schedule's proposal, parsed; `experiments.schedules.propose` validates it."""

    application = _SlugChoiceField(
        Application.objects.order_by("name"), to_field_name="name", noun="application",
        error_messages={"required": "Choose the application."},
    )
    region = _SlugChoiceField(
        Region.objects.order_by("code"), to_field_name="code", noun="region", required=False,
        empty_label="each region in turn", help_text="Empty: each of the application's regions in turn.",
    )
    scenario = _SlugChoiceField(
        Scenario.objects.order_by("-built_in", "name"), to_field_name="slug", noun="scenario",
        error_messages={"required": "Choose a scenario."},
    )
    cron = forms.CharField(
        max_length=100,
        help_text='Five fields: minute hour day-of-month month day-of-week, e.g. "0 3 * * 1".',
        error_messages={"required": "Give the recurrence as five cron fields."},
    )
    time_zone = forms.CharField(max_length=64, initial="UTC", help_text="The zone the cron is read in.")
    run_window = forms.IntegerField(
        initial=15, label="Run window (minutes)",
        help_text="How long after its time an occurrence may still start; later, it is skipped.",
    )
    expires_at = _UTCDateTimeField(
        label="Expires (UTC)", help_text="At most 90 days out.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        error_messages={"required": "Give the expiry (at most 90 days out)."},
    )

    def submit(self, user, *, source, request_id=""):
        """Propose the schedule (console and API alike). Returns the Schedule, or None
        with the service's messages on the fields. PermissionDenied propagates."""
        if not self.is_valid():
            return None
        data = self.cleaned_data
        # Clamped only so that timedelta cannot overflow; the service says what fits.
        minutes = max(min(data["run_window"], 10**6), -(10**6))
        try:
            return schedules.propose(
                user=user, scenario=data["scenario"], application=data["application"],
                region=data.get("region"), cron=data["cron"], time_zone=data["time_zone"],
                run_window=timedelta(minutes=minutes), expires_at=data["expires_at"],
                source=source, request_id=request_id,
            )
        except ValidationError as exc:
            self.add_service_errors(exc)
            return None


# --- game days --------------------------------------------------------------------------


class GameDayForm(_ServiceErrors, forms.Form):
    """A game day's proposal: `rows` step rows (scenario, application, region each);
    empty rows are left out. Whether the steps may run, the name and the pause are the
    service's to say (experiments.gamedays.propose)."""

    STEP_FIELDS = ("scenario", "application", "region")

    name = forms.CharField(required=False, max_length=1000, strip=True)
    pause_seconds = forms.IntegerField(required=False, label="Pause between steps (seconds)")
    continue_on_failure = forms.BooleanField(
        required=False, label="Continue after a drill that does not pass",
        help_text="Off: a failed, errored, aborted or inconclusive drill stops the rest.",
    )

    def __init__(self, *args, rows=3, **kwargs):
        super().__init__(*args, **kwargs)
        self.rows = range(1, rows + 1)
        for n in self.rows:
            self.fields[f"step_{n}_scenario"] = _SlugChoiceField(
                Scenario.objects.order_by("-built_in", "name"), to_field_name="slug", noun="scenario",
                required=False, label="Scenario",
            )
            self.fields[f"step_{n}_application"] = _SlugChoiceField(
                Application.objects.order_by("name"), to_field_name="name", noun="application",
                required=False, label="Application",
            )
            self.fields[f"step_{n}_region"] = _SlugChoiceField(
                Region.objects.order_by("code"), to_field_name="code", noun="region",
                required=False, label="Region",
            )

    def step_rows(self):
        """[(n, [bound fields of row n])] for the template."""
        return [(n, [self[f"step_{n}_{part}"] for part in self.STEP_FIELDS]) for n in self.rows]

    def clean(self):
        cleaned = super().clean()
        steps = []
        for n in self.rows:
            names = [f"step_{n}_{part}" for part in self.STEP_FIELDS]
            if any(name in self.errors for name in names):
                continue
            chosen = [cleaned.get(name) for name in names]
            if all(chosen):
                steps.append(tuple(chosen))
            elif any(chosen):
                for name, value in zip(names, chosen, strict=True):
                    if not value:
                        self.add_error(name, f"Step {n}: choose a scenario, an application and a region.")
        cleaned["steps"] = steps
        return cleaned

    def submit(self, user, *, source, request_id=""):
        """Propose the game day (console and API alike): the GameDay, or None with the
        service's messages on the fields. PermissionDenied propagates."""
        if not self.is_valid():
            return None
        data = self.cleaned_data
        pause = data.get("pause_seconds")
        try:
            return gamedays.propose(
                user=user, name=data.get("name", ""), steps=data["steps"],
                pause_seconds=0 if pause is None else pause,
                continue_on_failure=bool(data.get("continue_on_failure")),
                source=source, request_id=request_id,
            )
        except ValidationError as exc:
            self.add_service_errors(exc)
            return None
