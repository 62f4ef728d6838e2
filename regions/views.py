import json
import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.db.models import Count
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from controlplane import audit
from controlplane.celery import PUBLISH_ERRORS
from controlplane.rendering import render_page
from regions import charts, inventory, monitoring, overview_grid, tasks, undo
from regions.models import (
    Application,
    Component,
    HealthSample,
    ProbeTargetKind,
    Region,
    Stack,
)
from regions.status import Sample, describe_sample

log = logging.getLogger(__name__)


def _overview_context():
    """Applications x regions with their computed status, lag, routing, drift and live
    drills and each region's drill freshness. Nine queries whatever the size of the
    inventory: regions, applications, the status loader's seven (monitoring.load_picture).
    The whole page adds base.html's footer (the heartbeats, one query)."""
    regions = list(Region.objects.filter(stacks__isnull=False).distinct().order_by("code"))
    applications = list(Application.objects.order_by("name"))
    pictures = monitoring.load_picture(freshness=True)
    rows = []
    stack_count = 0
    for app in applications:
        picture = pictures.get(app.pk)
        by_region = {r.region: r for r in picture.regions()} if picture else {}
        stack_count += len(by_region)
        rows.append({
            "application": app,
            "picture": picture,
            "cells": [by_region.get(region.code) for region in regions],
        })
    return {
        "regions": regions,
        "rows": rows,
        "grid_rows": overview_grid.grid_rows(rows),
        "stack_count": stack_count,
        "figure_definitions": overview_grid.figure_definitions(),
        "fresh_days": settings.CONTROLPLANE_DRILL_FRESH_DAYS,
    }


@login_required
@permission_required("regions.view_stack", raise_exception=True)
@require_GET
def overview(request):
    return render_page(request, "regions/overview.html", _overview_context(), partial="grid")


def _get_application_for_user(user, name):
    if not user.has_perm("regions.view_application"):
        raise Http404
    return get_object_or_404(Application, name=name)


@login_required
@permission_required("regions.view_application", raise_exception=True)
@require_GET
def application_detail(request, app):
    """An application, its stacks with the status every page shows (monitoring.load_picture:
    status, lag, traffic, live drills); htmx polls the `live` partial."""
    application = _get_application_for_user(request.user, app)
    picture = monitoring.load_picture(application_ids=[application.pk]).get(application.pk)
    context = {
        "application": application,
        "picture": picture,
        "figure_definitions": overview_grid.figure_definitions(),
    }
    if picture is not None:
        # Counted in SQL, so the page costs the same whatever the number of components.
        stacks = application.stacks.select_related("region").annotate(component_count=Count("components"))
        stacks = {stack.pk: stack for stack in stacks}
        context["rows"] = [(stacks.get(r.status.stack_id), r) for r in picture.regions()]
    return render_page(request, "regions/application.html", context, partial="live")


def _get_stack_for_user(user, app, region):
    if not user.has_perm("regions.view_stack"):
        raise Http404
    return get_object_or_404(
        Stack.objects.select_related("application", "region"),
        application__name=app,
        region__code=region,
    )


# --- stack page: status, last failures (its charts: regions/charts.py) -----------

LAST_FAILURES = 20


def _last_failures(stack):
    """The latest failed /health probes of a stack, newest first, with their reason."""
    rows = (
        HealthSample.objects.filter(stack=stack, target=ProbeTargetKind.STACK_HEALTH, ok=False)
        .order_by("-at")
        .values_list("at", "status_code", "latency_ms", "error_class", "vantage")[:LAST_FAILURES]
    )
    failures = []
    for at, code, latency, error, vantage in rows:
        sample = Sample(at, False, code, latency, error)
        failures.append({
            "at": at,
            "status_code": code,
            "error_class": error,
            "latency_ms": latency,
            "vantage": vantage,
            "reason": describe_sample(sample),
        })
    return failures


def _stack_and_window(request, app, region):
    """(stack, chart window, "") or, for a window the page does not offer, (stack, None,
    why); a stack the user may not see is a 404."""
    stack = _get_stack_for_user(request.user, app, region)
    try:
        return stack, charts.parse_window(request.GET.get("window")), ""
    except charts.BadWindow as error:
        return stack, None, str(error)


@login_required
@permission_required("regions.view_stack", raise_exception=True)
@require_GET
def stack_detail(request, app, region):
    stack, window, window_error = _stack_and_window(request, app, region)
    window = window or charts.DEFAULT_WINDOW
    picture, here = monitoring.load_region(stack.application_id, stack.region.code)
    context = {
        "stack": stack,
        "picture": picture,
        "here": here,
        "figure_definitions": overview_grid.figure_definitions(),
        "failures": _last_failures(stack),
        "window": window,
        "windows": list(charts.WINDOWS),
        "window_error": window_error,
        "max_points": charts.MAX_POINTS,
    }
    partial = "live" if request.htmx and not request.htmx.boosted else None
    if partial is None:  # the whole page: components, siblings, footer
        components = list(Component.objects.filter(stack=stack).order_by("kind", "name"))
        for component in components:
            component.config_json = (
                json.dumps(component.config, indent=2, sort_keys=True, default=str)
                if component.config
                else ""
            )
        context["components"] = components
        context["siblings"] = (
            Stack.objects.filter(application=stack.application)
            .select_related("region")
            .order_by("region__code")
        )
    response = render_page(request, "regions/stack.html", context, partial="live")
    if window_error:
        response.status_code = 400
    return response


@login_required
@permission_required("regions.view_stack", raise_exception=True)
@require_GET
def stack_now(request, app, region):
    """GET apps/<app>/<region>/now/: the stack page's `now` partial alone (the region's
    status, traffic, lag, drills and its application's status), which the drill page
    polls to show what every other page shows."""
    stack = _get_stack_for_user(request.user, app, region)
    picture, here = monitoring.load_region(stack.application_id, stack.region.code)
    return render_page(request, "regions/stack.html#now", {"picture": picture, "here": here})


@login_required
@permission_required("regions.view_stack", raise_exception=True)
@require_GET
def stack_series_json(request, app, region):
    """GET apps/<app>/<region>/series.json?window=1h: the stack page's chart data."""
    stack, window, window_error = _stack_and_window(request, app, region)
    if window_error:
        return JsonResponse({"error": window_error, "windows": list(charts.WINDOWS)}, status=400)
    response = JsonResponse(charts.stack_series(stack, window, timezone.now()))
    response["Cache-Control"] = "no-store"
    return response


@login_required
@permission_required("regions.run_discovery", raise_exception=True)
@require_POST
def discover(request):
    """Queue discovery. The view holds no transaction, so the task is published here and
    now: a broker that is down or silent makes it fail within the publish timeout
    (settings: ~2 x CONTROLPLANE_BROKER_TIMEOUT), and the page says so; nothing is
    queued or recorded then."""
    try:
        tasks.discover_inventory.delay_on_commit(actor=request.user.get_username())
    except PUBLISH_ERRORS as exc:
        log.warning("discovery not queued: the broker did not take the message (%s)", exc)
        messages.error(
            request,
            "Discovery was not started: the task broker is not answering. Try again when it "
            "is back (the banner at the top of the page says which background process is missing).",
        )
        return redirect("regions:overview")
    audit.record_request(request, "inventory.discovery_requested", object_type="inventory")
    messages.success(request, "Discovery queued; the inventory updates when the worker has run it.")
    return redirect("regions:overview")


@login_required
@permission_required(undo.PERMISSION, raise_exception=True)
@require_POST
def apply_drift_undo(request, app, region):
    """POST apps/<app>/<region>/drift/undo/ (component, undo: the finding's undo key):
    make the undo call of that current drift finding (regions/undo.py), audited; back
    to the stack page with what happened."""
    stack = _get_stack_for_user(request.user, app, region)
    try:
        finding = undo.apply_undo(
            request.user, stack, request.POST.get("component"), request.POST.get("undo", ""), request=request
        )
    except (undo.UndoRefused, undo.UndoFailed) as error:
        messages.error(request, str(error))
    else:
        messages.success(
            request, f"Undone: {finding.what} ({finding.undo.operation} in {finding.undo.region}; audited)."
        )
    return redirect("regions:stack", app, region)


@login_required
@permission_required("regions.import_inventory", raise_exception=True)
@require_GET
def export_inventory(request, fmt):
    if fmt not in ("yaml", "json"):
        raise Http404("Export as .yaml or .json.")
    text = inventory.dump(inventory.export_inventory(), fmt)
    content_type = "application/json" if fmt == "json" else "application/yaml"
    response = HttpResponse(text, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="inventory.{fmt}"'
    return response
