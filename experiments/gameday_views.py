"""The game days console: list, propose, follow live, approve or reject, abort. Every
change goes through `experiments.gamedays` (which checks the role again, validates and
writes the audit event); these views add the HTTP: login, role (403), POST-only for
changes, the polled live part and redirects."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from controlplane.durations import format_duration
from controlplane.models import AuditSource
from controlplane.rendering import not_stored, polled, render_page
from experiments import gamedays, plans
from experiments.forms import AbortForm, DecisionForm, GameDayForm
from experiments.models import (
    GAMEDAY_DECIDABLE_STATES,
    GAMEDAY_FINAL_STATES,
    DrillState,
    GameDay,
    GameDayState,
    GameDayStep,
)

PAGE_SIZE = 25


def _redirect(request, url):
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _get_gameday_for_user(user, pk):
    if not user.has_perm("experiments.view_drill"):
        raise PermissionDenied
    return get_object_or_404(GameDay.objects.select_related("requested_by", "approved_by"), pk=pk)


@login_required
@permission_required("experiments.view_drill", raise_exception=True)
@require_GET
@not_stored
def gameday_list(request):
    """Newest first. Queries: the page's count and rows (with proposer and step count)."""
    rows = GameDay.objects.select_related("requested_by").annotate(n_steps=Count("steps")).order_by(
        "-requested_at", "-pk"
    )
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    return render_page(request, "experiments/gameday_list.html", {"page": page, "gamedays": page.object_list})


def _rows(value):
    """How many step rows the proposal form offers (`?steps=N` on the page, the form's
    `rows` when it is sent): 1 to MAX_STEPS, default 3."""
    wanted = int(value) if isinstance(value, str) and value.isdigit() else 3
    return max(1, min(wanted, gamedays.MAX_STEPS))


def _more(rows):
    """The number of rows the "More steps" link asks for."""
    return min(rows + 3, gamedays.MAX_STEPS)


@login_required
@permission_required("experiments.request_drill", raise_exception=True)
@require_GET
def gameday_new(request):
    rows = _rows(request.GET.get("steps"))
    form = GameDayForm(rows=rows, initial={"pause_seconds": 30})
    return render_page(request, "experiments/gameday_new.html", {"form": form, "more": _more(rows)})


@login_required
@permission_required("experiments.request_drill", raise_exception=True)
@require_POST
def gameday_create(request):
    rows = _rows(request.POST.get("rows"))
    form = GameDayForm(request.POST, rows=rows)
    game_day = form.submit(request.user, source=AuditSource.CONSOLE, request_id=request.request_id)
    if game_day is not None:
        messages.success(request, f"Game day #{game_day.pk} proposed: an approver reviews its plans.")
        return _redirect(request, reverse("experiments:gameday", args=[game_day.pk]))
    context = {"form": form, "more": _more(rows)}
    return render_page(request, "experiments/gameday_new.html", context, status=400)


def _steps(game_day):
    steps = list(
        GameDayStep.objects.filter(game_day=game_day).select_related(
            "scenario", "application", "region", "drill"
        ).order_by("position")
    )
    for step in steps:
        step.summary = plans.plan_summary(step.plan)
        step.running = game_day.state == GameDayState.RUNNING and step.position == game_day.current
        if step.drill is not None:
            step.drill_state = DrillState(step.drill.state)
            seconds = (step.drill.figures or {}).get("time_to_failover")
            step.failover = format_duration(seconds) if isinstance(seconds, int | float) else None
    return steps


def _context(request, game_day, form=None):
    can_decide = game_day.state in GAMEDAY_DECIDABLE_STATES and not gamedays.why_cannot_decide(
        game_day, request.user
    )
    return {
        "game_day": game_day,
        "state": GameDayState(game_day.state),
        "steps": _steps(game_day),
        "pause": format_duration(game_day.pause.total_seconds()),
        "can_decide": can_decide,
        "why_not": gamedays.why_cannot_decide(game_day, request.user),
        "form": form or DecisionForm(initial={"plan_hash": game_day.plan_hash}),
        "abort_form": AbortForm(),
        "can_abort": game_day.state not in GAMEDAY_FINAL_STATES
        and request.user.has_perm("experiments.abort_drill"),
    }


def _version(request, pk):
    version = gamedays.version(pk)
    if version is None:
        raise Http404("No such game day.")
    return version, version[0][0] in GAMEDAY_FINAL_STATES


@login_required
@permission_required("experiments.view_drill", raise_exception=True)
@require_GET
@not_stored
@polled(_version)
def gameday_detail(request, pk):
    """The game day page: its steps, the one running and the results so far with links
    to the drills and their evidence packs. htmx polls its live part every 2 s (204
    while nothing changed, 286 once final: controlplane.rendering.polled)."""
    game_day = _get_gameday_for_user(request.user, pk)
    context = _context(request, game_day)
    return render_page(request, "experiments/gameday_detail.html", context, partial="live")


def _page(request, game_day, form, status):
    """The page again with the decision form's errors (nothing was changed)."""
    context = _context(request, game_day, form)
    return render_page(request, "experiments/gameday_detail.html", context, status=status)


def _decide(request, pk, action):
    game_day = _get_gameday_for_user(request.user, pk)
    if why := gamedays.why_cannot_decide(game_day, request.user):
        raise PermissionDenied(why)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        return _page(request, game_day, form, 400)
    seen = form.cleaned_data["plan_hash"]
    if seen != game_day.plan_hash:
        form.add_error(None, gamedays.plan_changed_message(seen, game_day))
        return _page(request, game_day, form, 409)
    call = gamedays.approve if action == "approve" else gamedays.reject
    try:
        done = call(game_day, request.user, comment=form.cleaned_data["comment"], source=AuditSource.CONSOLE,
                    request_id=request.request_id)
    except ValidationError as exc:
        form.add_service_errors(exc)
        return _page(request, game_day, form, 400 if hasattr(exc, "error_dict") else 409)
    if not done:
        game_day.refresh_from_db()
        messages.warning(request, gamedays.not_waiting_message(game_day))
    elif action == "approve":
        messages.success(request, f"Game day #{game_day.pk} approved: its drills run one after the other.")
    else:
        messages.info(request, f"Game day #{game_day.pk} rejected.")
    return _redirect(request, reverse("experiments:gameday", args=[game_day.pk]))


@login_required
@permission_required("experiments.approve_drill", raise_exception=True)
@require_POST
def gameday_approve(request, pk):
    return _decide(request, pk, "approve")


@login_required
@permission_required("experiments.approve_drill", raise_exception=True)
@require_POST
def gameday_reject(request, pk):
    return _decide(request, pk, "reject")


@login_required
@permission_required("experiments.abort_drill", raise_exception=True)
@require_POST
def gameday_abort(request, pk):
    game_day = _get_gameday_for_user(request.user, pk)
    form = AbortForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    if gamedays.abort(game_day, request.user, reason=reason, source=AuditSource.CONSOLE,
                      request_id=request.request_id):
        messages.success(request, f"Game day #{game_day.pk} stopped.")
    else:
        messages.info(request, f"Game day #{game_day.pk} had already ended.")
    return _redirect(request, reverse("experiments:gameday", args=[game_day.pk]))
