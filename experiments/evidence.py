"""The evidence pack of one drill: a self-contained HTML page (inline CSS, SVG charts
drawn here, no external asset: it opens offline) and its PDF, for an auditor.

It holds what proves the drill: application, region, scenario and hypothesis; the
approved plan with its hash, calls and inverses; who requested and who decided, when,
with what comment; the timeline; the figures overall and per vantage with their
definitions (experiments.figures, as the drill page shows them); the success-rate and
lag charts; the compensation ledger; the drill's audit rows with their chain hashes and
the result of verifying the whole chain (controlplane.audit.verify_chain); the version.

Every pack served is recorded as an `evidence.produced` audit event on the drill,
carrying the SHA-256 of the exact bytes served, so a pack handed over can be checked
against the log (`manage.py verify_evidence FILE`). The HTML is deterministic: the same
drill state (and the same verdict on the chain) gives the same bytes and digest; it
states no time of its own production (the audit event holds when and who), and leaves
out the `evidence.produced` events themselves. A PDF is printed from the HTML plus a
line naming that HTML's digest; Chromium stamps a creation time into it, so a PDF has
a digest of its own (one per print: controlplane.pdf keeps a process's last prints), and
that digest is audited too (with the HTML's).
"""

import hashlib
import json
import re
from dataclasses import dataclass

import django
from django.conf import settings
from django.http import HttpResponse
from django.template.loader import render_to_string
from django.utils.dateparse import parse_datetime

from controlplane import audit, pdf
from controlplane.auditkeys import AuditKeyError
from controlplane.models import AuditEvent
from controlplane.svg import line_chart
from experiments import plans
from experiments.figures import FIGURE_DEFINITIONS, figure_rows, vantage_rows
from experiments.models import (
    Approval,
    Compensation,
    CompensationState,
    Drill,
    DrillState,
    DrillStep,
    StepKind,
)
from regions.models import LagSample

ACTION = "evidence.produced"
DRILL_OBJECT_TYPE = "experiments.drill"
# The pack names its drill in a meta tag, so verify_evidence can say which drill a
# changed file claims to be (the digest, not this, is what proves anything).
DRILL_META = re.compile(rb'<meta name="controlplane-evidence-drill" content="(\d+)">')
TEMPLATE = "experiments/evidence.html"


@dataclass
class Pack:
    content: bytes
    content_type: str
    filename: str
    sha256: str
    event: AuditEvent

    def response(self):
        """The pack as a download (console and API alike), its digest in a header too."""
        response = HttpResponse(self.content, content_type=self.content_type)
        response["Content-Disposition"] = f'attachment; filename="{self.filename}"'
        response["X-Evidence-SHA256"] = self.sha256
        response["Cache-Control"] = "no-store"
        return response


def sha256(content):
    return hashlib.sha256(content).hexdigest()


def drill_audit_rows(drill):
    """The drill's audit events in chain order, without the evidence packs' own."""
    return list(
        AuditEvent.objects.filter(object_type=DRILL_OBJECT_TYPE, object_id=str(drill.pk))
        .exclude(action=ACTION)
        .order_by("seq")
    )


def chain_verdict():
    """(intact, text): the whole audit chain verified now (every row's hash chain, key
    and MAC, and the head), which covers the drill's rows."""
    try:
        report = audit.verify_chain()
    except AuditKeyError as exc:
        return False, f"could not be verified: {exc}"
    if report.problem is not None:
        return False, f"BROKEN: {report.problem}"
    return True, "intact: every row's hash chain, key and MAC, and the chain head, verified"


def _second_zero(drill):
    """When second 0 of the charts is: the first fault call (figures.injected_at), else
    the start of the run."""
    from_figures = (drill.figures or {}).get("injected_at")
    if from_figures:
        return parse_datetime(from_figures)
    return drill.started_at


def _lag_chart(drill):
    """(svg, note): replication drills' own canary series; otherwise monitoring's lag
    samples into the drilled region while the drill ran (seconds from injection)."""
    figures = drill.figures or {}
    title = f"Replication lag into {drill.region.code}"
    if figures.get("lag_series"):
        series = [("lag (canary writes)", [(s, ms) for s, ms in figures["lag_series"]])]
        return line_chart(series, x_label="seconds since injection", y_label="ms", title=title, y_min=0), (
            "Measured by the drill's canary writes every 0.25 s."
        )
    zero = _second_zero(drill)
    if zero is None or drill.finished_at is None:
        return line_chart([], x_label="", y_label="", title=title), "Not measured: the drill did not run."
    by_source = {}
    rows = LagSample.objects.filter(
        application_id=drill.application_id, receiving_region=drill.region.code,
        at__gte=drill.started_at or zero, at__lte=drill.finished_at, lag_ms__isnull=False,
    ).order_by("at", "pk").values_list("source_region", "at", "lag_ms")
    for source, at, lag_ms in rows:
        by_source.setdefault(source, []).append((round((at - zero).total_seconds(), 1), lag_ms))
    series = [(f"from {source}", points) for source, points in sorted(by_source.items())]
    note = ("Monitoring's lag samples into the region while the drill ran." if series
            else "Not measured: monitoring recorded no lag sample into the region while the drill ran.")
    return line_chart(series, x_label="seconds since injection", y_label="ms", title=title, y_min=0), note


def pack_context(drill):
    """Everything the pack shows, read now. Queries: steps, approvals, ledger, lag
    samples, the drill's audit rows, and the chain's walk."""
    figures = figure_rows(drill.figures)
    steps = list(DrillStep.objects.filter(drill_id=drill.pk).order_by("at", "pk"))
    for step in steps:
        step.badge = StepKind(step.kind).badge
    ledger = list(Compensation.objects.filter(drill_id=drill.pk).order_by("created_at", "pk"))
    for row in ledger:
        row.badge = CompensationState(row.state).badge
    success = (drill.figures or {}).get("success_series") or []
    intact, verdict = chain_verdict()
    lag_svg, lag_note = _lag_chart(drill)
    return {
        "drill": drill,
        "state": DrillState(drill.state),
        "hypothesis_json": json.dumps((drill.plan or {}).get("hypothesis", {}), indent=2, sort_keys=True),
        "stop_conditions_json": json.dumps((drill.plan or {}).get("stop_conditions", []), indent=2,
                                           sort_keys=True),
        "calls": plans.plan_calls(drill.plan),
        "targets": plans.plan_targets(drill.plan),
        "approvals": list(Approval.objects.filter(drill_id=drill.pk).select_related("approver").order_by(
            "created_at", "pk")),
        "steps": steps,
        "figures": figures,
        "figure_definitions": [(label, FIGURE_DEFINITIONS[label]) for label, _ in figures],
        "vantages": vantage_rows(drill.figures),
        "success_chart": line_chart(
            [("success %", [(s, pct) for s, pct in success])], x_label="seconds since injection",
            y_label="% of requests", title="Global endpoint success rate", y_min=0, y_max=100,
        ),
        "success_measured": bool(success),
        "lag_chart": lag_svg,
        "lag_note": lag_note,
        "ledger": ledger,
        "audit_rows": drill_audit_rows(drill),
        "chain_intact": intact,
        "chain_verdict": verdict,
        "version": settings.CONTROLPLANE_VERSION,
        "django_version": django.get_version(),
    }


def render_html(drill, context=None, printed_from=""):
    """The pack's HTML bytes; `printed_from`: the digest of the HTML a PDF prints."""
    context = dict(context or pack_context(drill), printed_from=printed_from)
    return render_to_string(TEMPLATE, context).encode()


def _get(drill):
    return Drill.objects.select_related("scenario", "application", "region", "requested_by").get(pk=drill.pk)


def produce(drill, user, fmt, *, source, request_id=""):
    """The pack of `drill` as "html" or "pdf", recorded (who, which drill, the digest of
    the bytes served) as an evidence.produced audit event. Raises pdf.PdfUnavailable
    (nothing recorded) when a PDF cannot be printed here."""
    drill = _get(drill)
    context = pack_context(drill)
    html = render_html(drill, context)
    html_digest = sha256(html)
    after = {"format": fmt, "sha256": html_digest, "bytes": len(html),
             "version": settings.CONTROLPLANE_VERSION}
    content, content_type = html, "text/html; charset=utf-8"
    if fmt == "pdf":
        content = pdf.html_to_pdf(render_html(drill, context, printed_from=html_digest))
        content_type = "application/pdf"
        after.update({"sha256": sha256(content), "bytes": len(content), "html_sha256": html_digest})
    event = audit.record(
        user, ACTION, source=source, obj=drill, request_id=request_id,
        object_repr=f"evidence pack of drill #{drill.pk} ({fmt})", after=after,
    )
    return Pack(content, content_type, f"drill-{drill.pk}-evidence.{fmt}", after["sha256"], event)


def events_for(digest):
    """The evidence.produced events that recorded `digest` (oldest first)."""
    return list(
        AuditEvent.objects.filter(object_type=DRILL_OBJECT_TYPE, action=ACTION, after__sha256=digest)
        .order_by("seq")
    )


def claimed_drill(content):
    """The drill id an HTML pack names in its meta tag, or None."""
    found = DRILL_META.search(content[:4096])
    return int(found.group(1)) if found else None


def events_of_drill(drill_id):
    return list(
        AuditEvent.objects.filter(object_type=DRILL_OBJECT_TYPE, object_id=str(drill_id), action=ACTION)
        .order_by("seq")
    )
