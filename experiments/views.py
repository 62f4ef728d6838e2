"""The drills console: list, request, approve or reject, follow live, abort, halt all,
scorecards and scenarios. Every change goes through `experiments.services` (a ledger
row's through `experiments.ledger`), which checks the role again, validates and writes
the audit event; the views add the HTTP: login, role (403), POST-only for changes, htmx
partials and redirects."""

import json

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, Max, Prefetch
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from controlplane import audit, aws
from controlplane.durations import format_duration
from controlplane.models import AuditSource
from controlplane.pdf import PdfUnavailable, html_to_pdf
from controlplane.rendering import is_partial, not_stored, polled, render_page
from experiments import evidence, faults, ledger, plans, reports, services, versions
from experiments.figures import FIGURE_DEFINITIONS, figure_rows, vantage_rows
from experiments.forms import (
    AbortForm,
    CloseLedgerRowForm,
    DecisionForm,
    DrillFilterForm,
    DrillRequestForm,
    ExperimentUploadForm,
    HaltForm,
    ReportForm,
    ScenarioExportForm,
    ScenarioForm,
)
from experiments.interop import ExportError, chaostoolkit, formats
from experiments.models import (
    APPROVAL_TTL,
    FINAL_STATES,
    OPEN_COMPENSATION_STATES,
    OUTCOME_STATES,
    Approval,
    Compensation,
    CompensationState,
    Drill,
    DrillState,
    DrillStep,
    Scenario,
    StepKind,
)
from experiments.queries import last_passes
from regions import monitoring, overview_grid
from regions.models import Application, Region, Stack
from regions.monitoring import Freshness

PAGE_SIZE = 25
SCORECARD_DRILLS = 20


# --- helpers ------------------------------------------------------------------------


def _redirect(request, url):
    """After a POST: a client-side redirect for htmx, a 303-style redirect otherwise."""
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return redirect(url)


def _get_drill_for_user(user, pk):
    if not user.has_perm("experiments.view_drill"):
        raise PermissionDenied
    return get_object_or_404(
        # the occurrence: the drill page names the schedule that requested it
        Drill.objects.select_related("scenario", "application", "region", "requested_by", "occurrence"), pk=pk
    )


def _can_decide(user, drill):
    return drill.state == DrillState.REQUESTED and not services.why_cannot_decide(drill, user)


def _previous_drill(drill):
    """The last drill before this one of the same scenario, application and region."""
    return (
        Drill.objects.filter(
            scenario_id=drill.scenario_id, application_id=drill.application_id,
            region_id=drill.region_id, pk__lt=drill.pk,
        )
        .order_by("-pk")
        .only("pk", "plan", "plan_hash", "state", "requested_at")
        .first()
    )


# --- list, halt ---------------------------------------------------------------------


def _list_version(request):
    """Any drill's change, or the halt switch's, changes every list's table or halt
    panel (drills change a few times a minute at most: an extra render of a filtered
    list is cheap, a query per filter shape is not)."""
    return [versions.drills(), versions.halt()], False


@login_required
@permission_required("experiments.view_drill", raise_exception=True)
@require_GET
@not_stored
@polled(_list_version)
def drill_list(request):
    """Newest first, filtered by state, application, region and scenario. Queries: the
    page's count and rows (with scenario, application, region, requester), the three
    filter choice lists and the halt switch, whatever the number of drills. htmx polls
    the table (and the halt panel, out of band) every 2 s; a poll when no drill changed
    is answered without them (controlplane.rendering.polled)."""
    filters = DrillFilterForm(request.GET)
    filters.is_valid()
    chosen = filters.cleaned_data
    drills = Drill.objects.select_related("scenario", "application", "region", "requested_by").order_by(
        "-requested_at", "-pk"
    )
    if chosen.get("state"):
        drills = drills.filter(state=chosen["state"])
    if chosen.get("application"):
        drills = drills.filter(application__name=chosen["application"])
    if chosen.get("region"):
        drills = drills.filter(region__code=chosen["region"])
    if chosen.get("scenario"):
        drills = drills.filter(scenario__slug=chosen["scenario"])
    page = Paginator(drills, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"page": page, "drills": page.object_list, "query": query.urlencode(), "oob": True}
    if is_partial(request):
        return render_page(request, "experiments/drill_list.html", context, partial="poll")
    context.update({
        "filters": chosen,
        "states": DrillState.choices,
        "applications": list(Application.objects.order_by("name").values_list("name", flat=True)),
        "regions": list(Region.objects.order_by("code").values_list("code", flat=True)),
        "scenarios": list(Scenario.objects.order_by("-built_in", "name").values_list("slug", "name")),
        "halt_form": HaltForm(),
        "oob": False,
    })
    return render_page(request, "experiments/drill_list.html", context)


def _switch_halt(request, switch):
    """Call `switch` (services.halt_all or services.clear_halt) with the reason given;
    its answer, or None with the message of a refused reason (then nothing changed)."""
    form = HaltForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError(form.errors["reason"])
        return switch(
            request.user, form.cleaned_data["reason"], source=AuditSource.CONSOLE,
            request_id=request.request_id,
        )
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
        return None


@login_required
@permission_required("experiments.halt_drills", raise_exception=True)
@require_POST
def halt(request):
    if _switch_halt(request, services.halt_all) is not None:
        messages.warning(request, "All drills are halted: running drills revert, none may start.")
    return _redirect(request, reverse("experiments:list"))


@login_required
@permission_required("experiments.clear_halt", raise_exception=True)
@require_POST
def clear_halt(request):
    cleared = _switch_halt(request, services.clear_halt)
    if cleared:
        messages.success(request, "The halt is cleared: drills may be approved and run again.")
    elif cleared is not None:
        messages.info(request, "Drills were not halted.")
    return _redirect(request, reverse("experiments:list"))


@login_required
@permission_required("experiments.view_drill", raise_exception=True)
@require_GET
@polled(lambda request: (versions.halt(), False))
def halt_banner(request):
    """The red banner of base.html: every page polls it every 2 s (the drills pages
    show it from the start, the others fetch it when they load); a poll while the
    switch has not moved is answered with 204 (controlplane.rendering.polled)."""
    return render_page(request, "base.html#halt_banner", {})


# --- the approvals queue -------------------------------------------------------------


@login_required
@permission_required("experiments.approve_drill", raise_exception=True)
@require_GET
@not_stored
def approvals(request):
    """The drills waiting for this approver's decision (services.awaiting_decision_by),
    oldest first, each with how long it has waited, when it can no longer be approved,
    its plan in brief and a link to its approval page. Its table polls every 5 s (the
    `queue` partial, which also sets the navigation's count). Queries: the page's count
    and rows (with scenario, application, region, requester), whatever their number."""
    now = timezone.now()
    drills = services.awaiting_decision_by(request.user).select_related(
        "scenario", "application", "region", "requested_by"
    ).order_by("requested_at", "pk")
    page = Paginator(drills, PAGE_SIZE).get_page(request.GET.get("page"))
    for drill in page.object_list:
        drill.waited = format_duration(now - drill.requested_at)
        drill.too_late = services.too_late_to_approve(drill, now)
        drill.expires_in = format_duration(services.approval_deadline(drill) - now)
        drill.summary = plans.plan_summary(drill.plan)
    context = {"page": page, "drills": page.object_list, "approval_ttl": format_duration(APPROVAL_TTL)}
    return render_page(request, "experiments/approvals.html", context, partial="queue")


# --- request ------------------------------------------------------------------------


def _preview(form):
    """(calls, plan_hash, error) of the plan the form's choices would make, read now."""
    data = form.cleaned_data
    try:
        plan, digest = plans.make_plan(data["scenario"], data["application"], data["region"])
    except (faults.FaultError, aws.BotoCoreError, aws.ClientError) as exc:
        return None, None, f"Cannot plan: {exc}"
    return plans.plan_calls(plan), digest, ""


@login_required
@permission_required("experiments.request_drill", raise_exception=True)
@require_GET
def drill_new(request):
    """The request form. `?preview=1` with the choices shows the plan that would be
    approved (read now); choosing an application narrows the scenarios (htmx)."""
    preview = None
    if request.GET.get("preview"):
        form = DrillRequestForm(request.GET)
        if form.is_valid():
            calls, digest, error = _preview(form)
            data = form.cleaned_data
            preview = {
                "calls": calls, "plan_hash": digest, "error": error, "region": data["region"].code,
                "measurability": plans.measurability_for(
                    data["application"], data["region"], hypothesis=data["scenario"].hypothesis
                ),
            }
    else:
        initial = {k: v for k, v in request.GET.items() if k in DrillRequestForm.base_fields}
        form = DrillRequestForm(initial=initial)
    context = {"form": form, "preview": preview}
    return render_page(request, "experiments/drill_new.html", context, partial="form")


@login_required
@permission_required("experiments.request_drill", raise_exception=True)
@require_POST
def drill_create(request):
    form = DrillRequestForm(request.POST)
    drill = form.submit(request.user, source=AuditSource.CONSOLE, request_id=request.request_id)
    if drill is not None:
        # The page says, while it is true, that the drill waits for an approver.
        messages.success(request, f"Drill #{drill.pk} requested.")
        warning = plans.drill_measurability(drill)["warning"]
        if warning:
            messages.warning(request, warning)
        return _redirect(request, reverse("experiments:detail", args=[drill.pk]))
    context = {"form": form, "preview": None}
    return render_page(request, "experiments/drill_new.html", context, partial="form", status=400)


# --- the drill page -----------------------------------------------------------------


def _live_context(request, drill):
    """What the drill page's polled parts show: status, actions, figures, timeline,
    ledger, decisions and (for an admin) the open ledger rows to close by hand."""
    steps = list(DrillStep.objects.filter(drill_id=drill.pk).order_by("at", "pk"))
    ledger = list(Compensation.objects.filter(drill_id=drill.pk).order_by("created_at", "pk"))
    for step in steps:
        step.badge = StepKind(step.kind).badge
    for row in ledger:
        row.badge = CompensationState(row.state).badge
    figures = figure_rows(drill.figures)
    return {
        "drill": drill,
        "state": DrillState(drill.state),
        # not a pass: the page says what could not be tested, beside the amber badge
        "inconclusive": drill.state == DrillState.INCONCLUSIVE,
        "steps": steps,
        "ledger": ledger,
        "figures": figures,
        "figure_definitions": [(label, FIGURE_DEFINITIONS[label]) for label, _ in figures],
        "vantages": vantage_rows(drill.figures),
        "series_json": json.dumps((drill.figures or {}).get("success_series") or []),
        "abort_form": AbortForm(),
        "approvals": list(Approval.objects.filter(drill_id=drill.pk).select_related("approver")),
        "can_decide": _can_decide(request.user, drill),
        "stuck_rows": (
            [row for row in ledger if row.state in OPEN_COMPENSATION_STATES]
            if request.user.has_perm("experiments.close_ledger_row")
            else []
        ),
        "close_form": CloseLedgerRowForm(),
    }


def _drill_version(request, pk):
    version = versions.drill(pk)
    if version is None:
        raise Http404("No such drill.")
    return version, version[0] in FINAL_STATES


@login_required
@permission_required("experiments.view_drill", raise_exception=True)
@require_GET
@not_stored
@polled(_drill_version)
def drill_detail(request, pk):
    """The live drill page (and its outcome report once final). htmx polls its parts
    every 2 s (`live`, and out of band its actions, decisions and open ledger rows); a
    poll when nothing changed is answered with 204, and a final drill with 286 so the
    polling stops (controlplane.rendering.polled). The page itself is never stored: Back
    asks the server again instead of showing buttons that no longer apply."""
    drill = _get_drill_for_user(request.user, pk)
    context = _live_context(request, drill)
    if is_partial(request):
        context["oob"] = True
        return render_page(request, "experiments/drill_detail.html", context, partial="poll")
    # The region and application now, as every page says it; polled apart (regions:now),
    # also once the drill is final.
    picture, here = monitoring.load_region(drill.application_id, drill.region.code)
    context.update({
        "picture": picture,
        "here": here,
        "region_definitions": overview_grid.figure_definitions(),
        "calls": plans.plan_calls(drill.plan),
    })
    return render_page(request, "experiments/drill_detail.html", context)


@login_required
@permission_required("experiments.view_drill", raise_exception=True)
@require_GET
@not_stored
def drill_approval(request, pk):
    """The exact plan, each call beside its inverse, its hash and what changed since
    the last drill of the same scenario, application and region."""
    drill = _get_drill_for_user(request.user, pk)
    return _approval_page(request, drill, DecisionForm(initial={"plan_hash": drill.plan_hash}))


def _approval_page(request, drill, form, status=200):
    previous = _previous_drill(drill)
    context = {
        "drill": drill,
        "state": DrillState(drill.state),
        "calls": plans.plan_calls(drill.plan),
        "targets": plans.plan_targets(drill.plan),
        "plan_json": json.dumps(drill.plan, indent=2, sort_keys=True, default=str),
        "hypothesis_json": json.dumps((drill.plan or {}).get("hypothesis", {}), indent=2, sort_keys=True),
        "stop_conditions_json": json.dumps((drill.plan or {}).get("stop_conditions", []), indent=2),
        "previous": previous,
        "diff": plans.plan_diff(previous.plan, drill.plan) if previous else [],
        "same_hash": previous is not None and previous.plan_hash == drill.plan_hash,
        "approvals": list(Approval.objects.filter(drill_id=drill.pk).select_related("approver")),
        "can_decide": _can_decide(request.user, drill),
        "is_requester": request.user.pk == drill.requested_by_id,
        "form": form,
        "measurability": plans.drill_measurability(drill),
    }
    return render_page(request, "experiments/drill_approval.html", context, status=status)


def _decide(request, pk, decision):
    drill = _get_drill_for_user(request.user, pk)
    services.ensure_can_decide(drill, request.user)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        return _approval_page(request, drill, form, status=400)
    seen = form.cleaned_data["plan_hash"]
    if seen != drill.plan_hash:
        form.add_error(None, services.plan_changed_message(seen, drill))
        # The form keeps the hash the approver saw: approving again needs a reload.
        return _approval_page(request, drill, form, status=409)
    drill.plan_hash = seen  # decide() compares it with the row under a lock
    comment = form.cleaned_data["comment"]
    action = services.approve if decision == "approve" else services.reject
    try:
        result = action(drill, request.user, comment=comment, source=AuditSource.CONSOLE,
                        request_id=request.request_id)
    except ValidationError as exc:
        form.add_service_errors(exc)
        # A missing comment is the approver's to fix (400); the halt or an expired
        # request is the drill's state (409).
        return _approval_page(request, drill, form, status=400 if hasattr(exc, "error_dict") else 409)
    if result is None:
        drill.refresh_from_db(fields=["state", "plan_hash"])
        messages.warning(request, services.not_waiting_message(drill))
    elif decision == "approve":
        drill.refresh_from_db(fields=["state", "dispatched_at"])
        # The drill was queued on commit; outside a transaction (every real request) its
        # dispatch has run by now, and a refused or unanswered publish left it unsent.
        if not transaction.get_connection().in_atomic_block and services.waiting_for_broker(drill):
            messages.warning(
                request,
                f"Drill #{drill.pk} approved and queued, but the task broker is not answering: "
                "the drill stays queued and is sent when the broker is back.",
            )
        else:
            messages.success(request, f"Drill #{drill.pk} approved.")
    else:
        messages.info(request, f"Drill #{drill.pk} rejected.")
    return _redirect(request, reverse("experiments:detail", args=[drill.pk]))


@login_required
@permission_required("experiments.approve_drill", raise_exception=True)
@require_POST
def drill_approve(request, pk):
    return _decide(request, pk, "approve")


@login_required
@permission_required("experiments.approve_drill", raise_exception=True)
@require_POST
def drill_reject(request, pk):
    return _decide(request, pk, "reject")


@login_required
@permission_required("experiments.abort_drill", raise_exception=True)
@require_POST
def drill_abort(request, pk):
    drill = _get_drill_for_user(request.user, pk)
    form = AbortForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    result = services.abort(drill, request.user, reason=reason, source=AuditSource.CONSOLE,
                            request_id=request.request_id)
    if result == "aborted":
        messages.success(request, f"Drill #{drill.pk} aborted.")
    elif result == "abort requested":
        messages.warning(request, f"Abort requested: drill #{drill.pk} reverts its faults now.")
    else:
        messages.info(request, f"Drill #{drill.pk} had already ended.")
    return _redirect(request, reverse("experiments:detail", args=[drill.pk]))


@login_required
@permission_required("experiments.close_ledger_row", raise_exception=True)
@require_POST
def close_ledger_row(request, pk, row):
    """An admin closes a stuck ledger row without reverting it, with a reason (audited)."""
    drill = _get_drill_for_user(request.user, pk)
    form = CloseLedgerRowForm(request.POST)
    if not form.is_valid():
        messages.error(request, form.errors["reason"][0])
        return _redirect(request, reverse("experiments:detail", args=[drill.pk]))
    if not Compensation.objects.filter(pk=row, drill_id=drill.pk).exists():
        raise Http404("No such ledger row on this drill.")
    try:
        closed = ledger.close_ledger_row(
            row, request.user, form.cleaned_data["reason"], source=AuditSource.CONSOLE,
            request_id=request.request_id,
        )
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
        return _redirect(request, reverse("experiments:detail", args=[drill.pk]))
    if closed:
        messages.success(request, f"Ledger row {row} closed without a revert; the reaper can end the drill.")
    else:
        messages.info(request, f"Ledger row {row} was no longer open; nothing done.")
    return _redirect(request, reverse("experiments:detail", args=[drill.pk]))


# --- evidence pack ------------------------------------------------------------------


@login_required
@permission_required("experiments.view_drill", raise_exception=True)
@require_GET
def drill_evidence(request, pk, fmt="html"):
    """The drill's evidence pack (HTML, or its PDF), for anyone who may see the drill;
    each download is audited with who and the digest (experiments/evidence.py). Without
    a PDF engine: 503 saying so, and the HTML still works."""
    drill = _get_drill_for_user(request.user, pk)
    try:
        pack = evidence.produce(drill, request.user, fmt, source=AuditSource.CONSOLE,
                                request_id=request.request_id)
    except PdfUnavailable as exc:
        context = {"drill": drill, "message": str(exc)}
        return render_page(request, "experiments/evidence_unavailable.html", context, status=503)
    return pack.response()


# --- period report ------------------------------------------------------------------


@login_required
@require_GET
@not_stored
def period_report(request, fmt="html"):
    """`?from=&to=&application=`: the drills of a period and what they prove
    (experiments/reports.py), as a console page or a PDF, for approvers and admins
    (403 with a message for the others). Bad dates: the form says what is wrong (400)."""
    if not request.user.has_perm(reports.PERMISSION):
        raise PermissionDenied(reports.FORBIDDEN)
    form = ReportForm(request.GET, today=timezone.now().date())
    if not form.is_valid():
        context = {"form": form, "query": request.GET.urlencode()}
        return render_page(request, "experiments/reports.html", context, status=400)
    chosen = form.cleaned_data
    context = reports.build(chosen["start"], chosen["end"], chosen["application"])
    context.update({"form": form, "query": request.GET.urlencode()})
    if fmt == "pdf":
        try:
            content = html_to_pdf(render_to_string("experiments/report_document.html", context).encode())
        except PdfUnavailable as exc:
            context["pdf_unavailable"] = str(exc)
            return render_page(request, "experiments/reports.html", context, status=503)
        response = HttpResponse(content, content_type="application/pdf")
        name = f"drills-report-{chosen['start']}-{chosen['end']}.pdf"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response
    return render_page(request, "experiments/reports.html", context)


# --- scorecard ----------------------------------------------------------------------


def _get_application_for_user(user, name):
    if not user.has_perm("experiments.view_drill"):
        raise PermissionDenied
    return get_object_or_404(Application.objects.prefetch_related(
        Prefetch("stacks", queryset=Stack.objects.select_related("region"))
    ), name=name)


def outcome_counts(rows):
    """{region code: {"counts": [(DrillState, n)] in OUTCOME_STATES order, "last_pass":
    when its last passed drill finished or None}} from (region code, state, n, last
    finished_at) rows. Only a pass is a success: an inconclusive drill (its hypothesis
    could not be tested) is counted apart and never moves "last pass"."""
    by_region = {}
    for code, state, count, last in rows:
        region = by_region.setdefault(code, {"counts": dict.fromkeys(OUTCOME_STATES, 0), "last_pass": None})
        region["counts"][DrillState(state)] = count
        if state == DrillState.PASSED:
            region["last_pass"] = last
    return {
        code: {"counts": list(region["counts"].items()), "last_pass": region["last_pass"]}
        for code, region in by_region.items()
    }


def _days_since(now, then):
    return (now - then).days if then else None


def _scorecard_version(request, app):
    """The application's stacks and drills, and the whole days since each region's last
    pass (they change with the clock alone): two queries."""
    stacks = versions.stacks_of(app)
    if stacks is None:
        raise Http404("No such application.")
    drills = versions.drills(application_id=stacks[0])
    now = timezone.now()
    days = [
        (region, _days_since(now, versions.as_datetime(row[versions.LAST_FINISHED])))
        for region, state, *row in drills if state == DrillState.PASSED
    ]
    return [stacks, drills, days], False


@login_required
@permission_required("experiments.view_drill", raise_exception=True)
@require_GET
@polled(_scorecard_version)
def scorecard(request, app):
    """Recent drills of one application, its time-to-failover trend and, per region,
    the days since the last passing drill and how many drills ended in each outcome.
    htmx polls the outcomes every 5 s (the trend and the recent drills out of band)."""
    application = _get_application_for_user(request.user, app)
    now = timezone.now()
    recent = list(
        Drill.objects.filter(application=application)
        .select_related("scenario", "region", "requested_by")
        .order_by("-requested_at", "-pk")[:SCORECARD_DRILLS]
    )
    outcomes = outcome_counts(
        Drill.objects.filter(application=application, state__in=OUTCOME_STATES)
        .values("region__code", "state")
        .annotate(count=Count("pk"), last=Max("finished_at"))
        .order_by()
        .values_list("region__code", "state", "count", "last")
    )
    passes = last_passes([application.pk])
    none = {"counts": [(state, 0) for state in OUTCOME_STATES], "last_pass": None}
    regions = []
    for stack in sorted(application.stacks.all(), key=lambda s: s.region.code):
        region = outcomes.get(stack.region.code, none)
        last = region["last_pass"]
        regions.append({
            "code": stack.region.code,
            "last_pass": last,
            "days": _days_since(now, last),
            "freshness": Freshness.at(passes.get((application.pk, stack.region.code)), now),
            "counts": region["counts"],
        })
    totals = [
        (state, sum(dict(r["counts"])[state] for r in regions)) for state in OUTCOME_STATES
    ]
    trend = [
        {
            "at": d.finished_at or d.requested_at,
            "drill": d,
            "seconds": (d.figures or {}).get("time_to_failover"),
        }
        for d in sorted(recent, key=lambda d: d.finished_at or d.requested_at)
        # an inconclusive drill's figures were measured on too little to be evidence
        if d.is_final and d.state != DrillState.INCONCLUSIVE
        and isinstance((d.figures or {}).get("time_to_failover"), int | float)
    ]
    chart = [[int(t["at"].timestamp()), round(t["seconds"], 2)] for t in trend]
    context = {
        "application": application,
        "recent": recent,
        "regions": regions,
        "outcomes": OUTCOME_STATES,
        "totals": totals,
        "trend": trend,
        "trend_json": json.dumps(chart),
        "oob": is_partial(request),
        "fresh_days": settings.CONTROLPLANE_DRILL_FRESH_DAYS,
    }
    return render_page(request, "experiments/scorecard.html", context, partial="poll")


# --- scenarios ----------------------------------------------------------------------


@login_required
@permission_required("experiments.view_scenario", raise_exception=True)
@require_GET
def scenario_list(request):
    return _scenario_list_page(request, ExperimentUploadForm())


def _scenario_list_page(request, upload, status=200):
    scenarios = Scenario.objects.select_related("created_by").order_by("-built_in", "name")
    context = {"scenarios": scenarios, "upload": upload}
    return render_page(request, "experiments/scenario_list.html", context, status=status)


@login_required
@permission_required("experiments.add_scenario", raise_exception=True)
@require_POST
def scenario_import(request):
    """A Chaos Toolkit experiment uploaded: a scenario, or the form with what could not
    be mapped (nothing created)."""
    form = ExperimentUploadForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            experiment = json.loads(form.cleaned_data["experiment"].read().decode("utf-8"))
            scenario = chaostoolkit.import_experiment(
                experiment, request.user, source=AuditSource.CONSOLE, request_id=request.request_id,
                slug=form.cleaned_data["slug"],
            )
        except (UnicodeDecodeError, ValueError) as exc:
            form.add_error("experiment", f"Not a JSON file: {str(exc)[:200]}")
        except chaostoolkit.ImportRefused as exc:
            for field, problems in exc.errors.items():
                prefix = "" if field == "non_field_errors" else f"{field}: "
                form.add_error(None, [prefix + problem for problem in problems])
        else:
            messages.success(request, f"Scenario {scenario.name} imported.")
            return _redirect(request, reverse("experiments:scenario", args=[scenario.slug]))
    return _scenario_list_page(request, form, status=400)


def _get_scenario_for_user(user, slug):
    if not user.has_perm("experiments.view_scenario"):
        raise PermissionDenied
    return get_object_or_404(Scenario, slug=slug)


def _scenario_page(request, scenario, form, status=200, export=None):
    context = {
        "scenario": scenario,
        "form": form,
        "editable": form is not None,
        "export": export if export is not None or scenario is None else ScenarioExportForm(scenario=scenario),
        # A read-only scenario's settings as the JSON the form and the API take.
        "settings": scenario and [
            (title, json.dumps(getattr(scenario, field), indent=2, sort_keys=True))
            for title, field in (("Target selector", "target_selector"), ("Parameters", "parameters"),
                                 ("Hypothesis", "hypothesis"), ("Stop conditions", "stop_conditions"))
        ],
    }
    return render_page(request, "experiments/scenario_form.html", context, status=status)


@login_required
@permission_required("experiments.add_scenario", raise_exception=True)
@require_GET
def scenario_new(request):
    copy_of = Scenario.objects.filter(slug=request.GET.get("copy", "")).first()
    initial = {}
    if copy_of is not None:
        initial = {f: getattr(copy_of, f) for f in ScenarioForm.Meta.fields}
        initial["slug"] = f"{copy_of.slug}-copy"
        initial["name"] = f"{copy_of.name} (copy)"
    return _scenario_page(request, None, ScenarioForm(user=request.user, initial=initial))


@login_required
@permission_required("experiments.add_scenario", raise_exception=True)
@require_POST
def scenario_create(request):
    form = ScenarioForm(request.POST, user=request.user)
    if not form.is_valid():
        return _scenario_page(request, None, form, status=400)
    scenario = form.save()
    audit.record_request(
        request, "scenario.created", obj=scenario,
        after={"slug": scenario.slug, "fault_kind": scenario.fault_kind},
    )
    messages.success(request, f"Scenario {scenario.name} created.")
    return _redirect(request, reverse("experiments:scenario", args=[scenario.slug]))


@login_required
@permission_required("experiments.view_scenario", raise_exception=True)
@require_GET
def scenario_detail(request, slug):
    scenario = _get_scenario_for_user(request.user, slug)
    editable = not scenario.built_in and request.user.has_perm("experiments.change_scenario")
    form = ScenarioForm(instance=scenario, user=request.user) if editable else None
    return _scenario_page(request, scenario, form)


@login_required
@permission_required("experiments.change_scenario", raise_exception=True)
@require_POST
def scenario_save(request, slug):
    scenario = _get_scenario_for_user(request.user, slug)
    if scenario.built_in:
        raise PermissionDenied("Built-in scenarios are read-only; copy one instead.")
    before = {f: plans.show_value(getattr(scenario, f)) for f in ScenarioForm.Meta.fields}
    form = ScenarioForm(request.POST, instance=scenario, user=request.user)
    if not form.is_valid():
        return _scenario_page(request, scenario, form, status=400)
    scenario = form.save()
    after = {f: plans.show_value(getattr(scenario, f)) for f in ScenarioForm.Meta.fields}
    changed = [f for f in after if after[f] != before[f]]
    audit.record_request(
        request, "scenario.updated", obj=scenario,
        before={f: before[f] for f in changed}, after={f: after[f] for f in changed},
    )
    messages.success(request, f"Scenario {scenario.name} saved.")
    return _redirect(request, reverse("experiments:scenario", args=[scenario.slug]))


@login_required
@permission_required("experiments.view_scenario", raise_exception=True)
@require_GET
def scenario_export(request, slug):
    """The scenario bound to an application and region, downloaded as an AWS FIS template
    or a Chaos Toolkit experiment; the page with the form's errors when it cannot be."""
    scenario = _get_scenario_for_user(request.user, slug)
    form = ScenarioExportForm(request.GET, scenario=scenario)
    if form.is_valid():
        data = form.cleaned_data
        try:
            document, filename = formats.export(
                data["format"], scenario, data["application"], data["region"], data["role_arn"]
            )
        except ExportError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        else:
            response = HttpResponse(json.dumps(document, indent=2), content_type="application/json")
            response["Content-Disposition"] = f'attachment; filename="{filename}"'
            return response
    editable = not scenario.built_in and request.user.has_perm("experiments.change_scenario")
    edit = ScenarioForm(instance=scenario, user=request.user) if editable else None
    return _scenario_page(request, scenario, edit, status=400, export=form)
