import csv
import json
from collections import defaultdict
from contextlib import suppress
from datetime import datetime, time

from django import forms
from django.apps import apps
from django.contrib import admin, messages
from django.contrib.auth import logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.core.paginator import EmptyPage, PageNotAnInteger, Paginator
from django.http import JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from controlplane import audit, background
from controlplane.models import AuditEvent, AuditSource
from controlplane.rendering import render_page

AUDIT_PAGE_SIZE = 50


@require_GET
def healthz(request):
    """Liveness for load balancers: unauthenticated, reveals nothing."""
    return JsonResponse({"ok": True})


@login_required
@permission_required("controlplane.view_serviceheartbeat", raise_exception=True)
@require_GET
def background_status(request):
    """What every page polls: base.html's background banner, and its footer list out of
    band. A banner whose text has not changed since the page showed it (`shown`, its
    key) is left in place: re-inserting an alert would make screen readers announce it
    again every few seconds."""
    status = background.load()
    response = render(request, "base.html#background", {"background": status, "background_oob": True})
    if request.GET.get("shown") == status.banner_key:
        response["HX-Reswap"] = "none"  # the footer, out of band, is still swapped
    response["Cache-Control"] = "no-store"
    return response


class LoginView(auth_views.LoginView):
    def form_valid(self, form):
        response = super().form_valid(form)
        audit.record_request(self.request, "auth.login", obj=form.get_user())
        return response


@require_POST
def logout_view(request):
    if request.user.is_authenticated:
        audit.record_request(request, "auth.logout", obj=request.user)
    logout(request)
    messages.info(request, "Signed out.")
    return redirect("login")


class AuditFilterForm(forms.Form):
    actor = forms.CharField(required=False, max_length=150)
    action = forms.CharField(required=False, max_length=64)
    object_type = forms.CharField(required=False, max_length=64)
    object_id = forms.CharField(required=False, max_length=64)
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError("'Since' must be on or before 'until'.")
        return data


def _filtered_events(form):
    events = AuditEvent.objects.all()
    if not form.is_valid():
        return events.none()
    data = form.cleaned_data
    if data["actor"]:
        events = events.filter(actor=data["actor"])
    if data["action"]:
        events = events.filter(audit.action_starts_with(data["action"]))
    if data["object_type"]:
        events = events.filter(object_type=data["object_type"])
    if data["object_id"]:
        events = events.filter(object_id=data["object_id"])
    tz = timezone.get_current_timezone()
    if data["since"]:
        events = events.filter(created_at__gte=datetime.combine(data["since"], time.min, tz))
    if data["until"]:
        events = events.filter(created_at__lte=datetime.combine(data["until"], time.max, tz))
    return events


def _get_page(paginator, number):
    """The requested page, or the nearest sensible one and a message saying why."""
    if number in (None, ""):
        return paginator.page(1), ""
    try:
        return paginator.page(number), ""
    except PageNotAnInteger:
        return paginator.page(1), f"“{number}” is not a page number; showing page 1."
    except EmptyPage:
        page = paginator.page(paginator.num_pages)
        return page, f"There is no page {number}; showing page {page.number}."


def _json_text(value):
    return "" if value is None else json.dumps(value, indent=2, sort_keys=True)


def _changes(before, after):
    """Short "field: old → new" lines when both sides are objects; else nothing."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        return []
    lines = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        if old != new:
            lines.append(
                {"field": key, "before": json.dumps(old), "after": json.dumps(new)}
            )
    return lines


def _admin_page(model, request):
    """How to reach an object's admin page, when `request`'s user may open it there."""
    model_admin = admin.site.get_model_admin(model) if admin.site.is_registered(model) else None
    if model_admin is None or not model_admin.has_view_or_change_permission(request):
        return None
    opts = model._meta
    return lambda pk: reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[pk])


def _required_relations(model, prefix="", depth=3):
    """The paths of `model`'s non-null foreign keys, followed `depth` deep: the rows a
    page's URL may name (a component's stack, its application and region)."""
    paths = []
    for field in model._meta.concrete_fields:
        if field.many_to_one and not field.null and depth:
            path = f"{prefix}{field.name}"
            paths += [path, *_required_relations(field.related_model, f"{path}__", depth - 1)]
    return paths


def object_pages(objects, request):
    """{(object_type, object_id): URL} for the (object_type, object_id) pairs whose object
    still exists and has a page the user may open: the console's (the model's
    get_absolute_url), else, for staff, its admin page. One query per type of object
    that has a page, whatever the number of pairs; none for types with no model (the
    inventory as a whole, audit keys)."""
    wanted = defaultdict(set)
    for object_type, object_id in objects:
        if object_type and object_id:
            wanted[object_type].add(object_id)
    pages = {}
    for object_type, ids in wanted.items():
        try:
            model = apps.get_model(object_type)
        except (LookupError, ValueError):
            continue
        pks = set()
        for object_id in ids:
            with suppress(ValidationError):  # not an id of this model: no object, no page
                pks.add(model._meta.pk.to_python(object_id))
        found = model._default_manager.filter(pk__in=pks)
        if hasattr(model, "get_absolute_url"):
            if related := _required_relations(model):
                found = found.select_related(*related)
            urls = {obj.pk: obj.get_absolute_url() for obj in found}
        elif (admin_url := _admin_page(model, request)) is not None:
            urls = {pk: admin_url(pk) for pk in found.values_list("pk", flat=True)}
        else:
            continue
        pages.update({(object_type, str(pk)): url for pk, url in urls.items()})
    return pages


def _events_asked_for(request):
    """The filter form of the query string and the events it selects (all without one)."""
    form = AuditFilterForm(request.GET or None)
    return form, (_filtered_events(form) if request.GET else AuditEvent.objects.all())


@login_required
@permission_required("controlplane.view_auditevent", raise_exception=True)
@require_GET
def audit_list(request):
    form, events = _events_asked_for(request)
    page, page_error = _get_page(Paginator(events, AUDIT_PAGE_SIZE), request.GET.get("page"))
    page.object_list = list(page.object_list)
    chosen = form.cleaned_data if request.GET and form.is_valid() else {}
    of_object = (chosen.get("object_type", ""), chosen.get("object_id", ""))
    pages = object_pages([(e.object_type, e.object_id) for e in page.object_list] + [of_object], request)
    for event in page.object_list:
        event.before_json = _json_text(event.before)
        event.after_json = _json_text(event.after)
        event.changes = _changes(event.before, event.after)
        event.object_url = pages.get((event.object_type, event.object_id))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        # the one object the page is filtered on, with its page
        "of_object": {"type": of_object[0], "id": of_object[1], "url": pages.get(of_object)}
        if all(of_object) else None,
        "form": form if request.GET else AuditFilterForm(),
        "page": page,
        "page_error": page_error,
        "query": query.urlencode(),
        "object_types": AuditEvent.objects.exclude(object_type="")
        .order_by("object_type")
        .values_list("object_type", flat=True)
        .distinct(),
        "sources": AuditSource,
    }
    return render_page(request, "controlplane/audit.html", context, partial="events")


class _Echo:
    def write(self, value):
        return value


# A spreadsheet reads a cell that starts with one of these as a formula (or, after tab
# and CR, may drop them and then read one). OWASP "CSV Injection": prefix a single quote.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """`value` as a CSV cell a spreadsheet shows as text: cells that start like a formula
    get a leading single quote. (The export is for reading; verify_audit checks the
    database, not the CSV.)"""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


@login_required
@permission_required("controlplane.export_auditevent", raise_exception=True)
@require_GET
def audit_csv(request):
    _form, events = _events_asked_for(request)
    writer = csv.writer(_Echo())
    header = [
        "seq", "created_at", "actor", "source", "action", "object_type", "object_id",
        "object_repr", "before", "after", "request_id", "prev_hash", "hash", "kid", "mac",
    ]

    def rows():
        yield writer.writerow(header)
        for e in events.order_by("seq").iterator(chunk_size=1000):
            yield writer.writerow(
                [
                    csv_cell(value)
                    for value in (
                        e.seq, e.created_at.isoformat(), e.actor, e.source, e.action,
                        e.object_type, e.object_id, e.object_repr,
                        None if e.before is None else json.dumps(e.before, sort_keys=True),
                        None if e.after is None else json.dumps(e.after, sort_keys=True),
                        e.request_id, e.prev_hash, e.hash, e.kid, e.mac,
                    )
                ]
            )

    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response = StreamingHttpResponse(rows(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
    return response

