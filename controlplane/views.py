import csv
import json
from datetime import datetime, time

from django import forms
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import EmptyPage, PageNotAnInteger, Paginator
from django.http import JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
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
    for event in page.object_list:
        event.before_json = _json_text(event.before)
        event.after_json = _json_text(event.after)
        event.changes = _changes(event.before, event.after)
    query = request.GET.copy()
    query.pop("page", None)
    context = {
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

