import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.db.models import Count, Prefetch
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from controlplane import audit
from controlplane.views import heartbeat_summary
from regions import inventory, tasks
from regions.models import Application, Component, Region, Stack


def _render(request, template, context, partial=None):
    """Render the page, or only its partial for a non-boosted htmx request."""
    if partial and request.htmx and not request.htmx.boosted:
        template = f"{template}#{partial}"
    response = render(request, template, context)
    response["Vary"] = "HX-Request"
    return response


def _overview_context():
    """Applications x regions. Four queries whatever the size of the inventory:
    regions, applications, their stacks (with region), heartbeats."""
    regions = list(Region.objects.filter(stacks__isnull=False).distinct().order_by("code"))
    applications = list(
        Application.objects.prefetch_related(
            Prefetch("stacks", queryset=Stack.objects.select_related("region"))
        ).order_by("name")
    )
    rows = []
    stack_count = 0
    for app in applications:
        by_region = {s.region.code: s for s in app.stacks.all()}
        stack_count += len(by_region)
        rows.append({"application": app, "cells": [by_region.get(r.code) for r in regions]})
    return {
        "regions": regions,
        "rows": rows,
        "stack_count": stack_count,
        "heartbeats": heartbeat_summary(),
    }


@login_required
@permission_required("regions.view_stack", raise_exception=True)
@require_GET
def overview(request):
    return _render(request, "regions/overview.html", _overview_context(), partial="grid")


def _get_application_for_user(user, name):
    if not user.has_perm("regions.view_application"):
        raise Http404
    return get_object_or_404(Application, name=name)


@login_required
@permission_required("regions.view_application", raise_exception=True)
@require_GET
def application_detail(request, app):
    application = _get_application_for_user(request.user, app)
    # Counted in SQL, so the page costs the same whatever the number of components.
    stacks = (
        application.stacks.select_related("region")
        .annotate(component_count=Count("components"))
        .order_by("region__code")
    )
    return _render(
        request,
        "regions/application.html",
        {"application": application, "stacks": stacks, "heartbeats": heartbeat_summary()},
    )


def _get_stack_for_user(user, app, region):
    if not user.has_perm("regions.view_stack"):
        raise Http404
    return get_object_or_404(
        Stack.objects.select_related("application", "region"),
        application__name=app,
        region__code=region,
    )


@login_required
@permission_required("regions.view_stack", raise_exception=True)
@require_GET
def stack_detail(request, app, region):
    stack = _get_stack_for_user(request.user, app, region)
    components = list(Component.objects.filter(stack=stack).order_by("kind", "name"))
    for component in components:
        component.config_json = (
            json.dumps(component.config, indent=2, sort_keys=True, default=str)
            if component.config
            else ""
        )
    siblings = (
        Stack.objects.filter(application=stack.application)
        .select_related("region")
        .order_by("region__code")
    )
    return _render(
        request,
        "regions/stack.html",
        {
            "stack": stack,
            "components": components,
            "siblings": siblings,
            "heartbeats": heartbeat_summary(),
        },
    )


@login_required
@permission_required("regions.run_discovery", raise_exception=True)
@require_POST
def discover(request):
    audit.record_request(request, "inventory.discovery_requested", object_type="inventory")
    tasks.discover_inventory.delay_on_commit(actor=request.user.get_username())
    messages.success(request, "Discovery queued; the inventory updates when the worker has run it.")
    return redirect("regions:overview")


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
