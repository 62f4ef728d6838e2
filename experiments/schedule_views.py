"""The schedules console: the list, the proposal form, a schedule's page with its plan
hashes and occurrences, and its approve, pause and resume buttons. Every change goes
through `experiments.schedules`, which checks the role (and the four-eyes rule) again,
validates and writes the audit event; these views add the HTTP: login, role (403),
POST-only for changes, the service's refusals shown on the page, live parts by polling."""

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import F, Prefetch, Window
from django.db.models.functions import RowNumber
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from controlplane.durations import format_duration
from controlplane.models import AuditSource
from controlplane.rendering import not_stored, polled, render_page
from experiments import schedules, services, versions
from experiments.forms import DecisionForm, ScheduleForm, ScheduleSwitchForm
from experiments.models import (
    SCHEDULE_MAX_LIFETIME,
    Schedule,
    ScheduleOccurrence,
    ScheduleState,
)
from experiments.views import PAGE_SIZE, _redirect

# The expiry the proposal form offers: a month, within SCHEDULE_MAX_LIFETIME.
DEFAULT_LIFETIME = timedelta(days=30)


def _get_schedule_for_user(user, pk):
    if not user.has_perm("experiments.view_drill"):
        raise PermissionDenied
    return get_object_or_404(
        Schedule.objects.select_related("scenario", "application", "region", "requested_by", "approved_by"),
        pk=pk,
    )


def _next_time(schedule, now):
    """What the pages say of the schedule's next occurrence: (UTC time or None, note)."""
    if schedule.state == ScheduleState.PROPOSED:
        return None, "after approval"
    if schedule.state == ScheduleState.PAUSED:
        return None, "none while paused"
    if schedule.state == ScheduleState.EXPIRED or schedule.expires_at <= now:
        return None, "none: expired"
    due = schedules.next_due(schedule, max(now, schedule.active_since or now))
    if due > schedule.expires_at:
        return None, "none before its expiry"
    return due, ""


def _annotate(schedule, now):
    """The schedule's next time (`next_at`, `next_note`)."""
    schedule.next_at, schedule.next_note = _next_time(schedule, now)
    return schedule


def _this_minute():
    """A schedule's next time moves with the clock, at most once a minute (cron's step)."""
    return timezone.now().replace(second=0, microsecond=0).isoformat()


# --- the list -----------------------------------------------------------------------


def _list_version(request):
    rows = versions.schedules()
    running = any(row[0] == ScheduleState.APPROVED for row in rows)
    return [rows, _this_minute() if running else None], False


@login_required
@permission_required("experiments.view_drill", raise_exception=True)
@require_GET
@not_stored
@polled(_list_version)
def schedule_list(request):
    """Newest first: state, scenario, application, region (or each in turn), recurrence,
    next time, expiry and what became of the last occurrence. Queries: the page's count,
    its rows (with scenario, application, region, proposer) and their last occurrences,
    whatever their number. htmx polls the table every 5 s; a poll when nothing changed
    is answered without rendering (controlplane.rendering.polled)."""
    last = ScheduleOccurrence.objects.annotate(
        rank=Window(RowNumber(), partition_by=[F("schedule_id")], order_by=[F("due_at").desc()])
    ).filter(rank=1).select_related("region")
    rows = (
        Schedule.objects.select_related("scenario", "application", "region", "requested_by")
        .prefetch_related(Prefetch("occurrences", queryset=last, to_attr="last_occurrences"))
        .order_by("-requested_at", "-pk")
    )
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    now = timezone.now()
    for schedule in page.object_list:
        _annotate(schedule, now)
        schedule.last = schedule.last_occurrences[0] if schedule.last_occurrences else None
    context = {"page": page, "schedules": page.object_list}
    return render_page(request, "experiments/schedule_list.html", context, partial="table")


# --- proposing ----------------------------------------------------------------------


def _new_page(request, form, status=200):
    context = {"form": form, "max_days": SCHEDULE_MAX_LIFETIME.days}
    return render_page(request, "experiments/schedule_new.html", context, status=status)


@login_required
@permission_required("experiments.request_drill", raise_exception=True)
@require_GET
def schedule_new(request):
    expires = (timezone.now() + DEFAULT_LIFETIME).replace(second=0, microsecond=0)
    return _new_page(request, ScheduleForm(initial={"expires_at": expires}))


@login_required
@permission_required("experiments.request_drill", raise_exception=True)
@require_POST
def schedule_create(request):
    form = ScheduleForm(request.POST)
    schedule = form.submit(request.user, source=AuditSource.CONSOLE, request_id=request.request_id)
    if schedule is None:
        return _new_page(request, form, status=400)
    messages.success(request, f"Schedule #{schedule.pk} proposed: an approver other than you approves it.")
    return _redirect(request, reverse("experiments:schedule", args=[schedule.pk]))


# --- a schedule's page --------------------------------------------------------------


def _detail_version(request, pk):
    version = versions.schedule(pk)
    if version is None:
        raise Http404("No such schedule.")
    running = version[0] == ScheduleState.APPROVED
    final = version[0] == ScheduleState.EXPIRED and not version[versions.OPEN_DRILLS]
    return [version, _this_minute() if running else None], final


def _schedule_page(request, schedule, *, decision=None, switch=None, status=200):
    now = timezone.now()
    _annotate(schedule, now)
    occurrences = schedule.occurrences.select_related("region", "drill").order_by("-due_at")
    page = Paginator(occurrences, PAGE_SIZE).get_page(request.GET.get("page"))
    poll_url = reverse("experiments:schedule", args=[schedule.pk])
    digest = schedules.plan_digest(schedule.plan_hashes)
    why_not = services.why_cannot_decide(schedule, request.user)
    context = {
        "schedule": schedule,
        "state": ScheduleState(schedule.state),
        "run_window": format_duration(schedule.run_window),
        "hashes": [(code, proposed, schedule.approved_hashes.get(code))
                   for code, proposed in sorted(schedule.plan_hashes.items())],
        "plan_hash": digest,
        "page": page,
        "occurrences": page.object_list,
        # the page's own URL also after a refused POST, on the page of occurrences shown
        "poll_url": poll_url if page.number == 1 else f"{poll_url}?page={page.number}",
        "why_not": why_not,
        "is_proposer": request.user.pk == schedule.requested_by_id,
        "decision": decision or DecisionForm(initial={"plan_hash": digest}),
        "switch": switch or ScheduleSwitchForm(),
    }
    return render_page(request, "experiments/schedule_detail.html", context, partial="live", status=status)


@login_required
@permission_required("experiments.view_drill", raise_exception=True)
@require_GET
@not_stored
@polled(_detail_version)
def schedule_detail(request, pk):
    """A schedule: its recurrence, the plan hashes proposed and approved, its buttons by
    role and state, and its occurrences (due time, region, created or skipped and why,
    the drill). htmx polls the live part every 5 s until it is expired and its drills
    are final; 204 while nothing changed (controlplane.rendering.polled). Never stored:
    Back asks again rather than show Approve or Pause for a schedule that moved on."""
    return _schedule_page(request, _get_schedule_for_user(request.user, pk))


@login_required
@permission_required("experiments.approve_drill", raise_exception=True)
@require_POST
def schedule_approve(request, pk):
    """Approve the plans the approver saw (their hash is in the form): 403 with the
    service's refusal for the proposer, 409 when the plans or the schedule moved on."""
    schedule = _get_schedule_for_user(request.user, pk)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        return _schedule_page(request, schedule, decision=form, status=400)
    seen, digest = form.cleaned_data["plan_hash"], schedules.plan_digest(schedule.plan_hashes)
    if seen != digest:
        form.add_error(None, f"The schedule's plans hash {digest[:12]}…, not {seen[:12]}… as you saw: "
                             "reload the page and review them.")
        return _schedule_page(request, schedule, decision=form, status=409)
    try:
        approved = schedules.approve(schedule, request.user, comment=form.cleaned_data["comment"],
                                     source=AuditSource.CONSOLE, request_id=request.request_id)
    except PermissionDenied as exc:
        form.add_error(None, str(exc))
        return _schedule_page(request, schedule, decision=form, status=403)
    except ValidationError as exc:
        form.add_service_errors(exc)
        return _schedule_page(request, schedule, decision=form, status=409)
    if approved:
        messages.success(request, f"Schedule #{schedule.pk} approved: its times run under this approval "
                                  "while their plans hash the same.")
    else:
        schedule.refresh_from_db(fields=["state"])
        messages.info(request, f"Schedule #{schedule.pk} is {schedule.state}: it no longer waits for "
                               "approval; nothing was done.")
    return _redirect(request, reverse("experiments:schedule", args=[schedule.pk]))


def _switch(request, pk, switch, done, wanted):
    """Pause or resume (`switch`): a reason too long is a form error (400), an expired
    schedule the service's refusal (409), a schedule not `wanted` a note; then back."""
    schedule = _get_schedule_for_user(request.user, pk)
    form = ScheduleSwitchForm(request.POST)
    if not form.is_valid():
        return _schedule_page(request, schedule, switch=form, status=400)
    try:
        changed = switch(schedule, request.user, reason=form.cleaned_data["reason"],
                         source=AuditSource.CONSOLE, request_id=request.request_id)
    except ValidationError as exc:
        form.add_error(None, exc.messages)
        return _schedule_page(request, schedule, switch=form, status=409)
    if changed:
        messages.success(request, f"Schedule #{schedule.pk} {done}.")
    else:
        schedule.refresh_from_db(fields=["state"])
        messages.info(request, f"Schedule #{schedule.pk} is {schedule.state}, not {wanted}: nothing done.")
    return _redirect(request, reverse("experiments:schedule", args=[schedule.pk]))


@login_required
@permission_required("experiments.abort_drill", raise_exception=True)
@require_POST
def schedule_pause(request, pk):
    return _switch(request, pk, schedules.pause, "paused: no occurrence until it is resumed", "approved")


@login_required
@permission_required("experiments.abort_drill", raise_exception=True)
@require_POST
def schedule_resume(request, pk):
    return _switch(request, pk, schedules.resume, "resumed: its times from now on run", "paused")
