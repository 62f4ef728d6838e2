"""The evidence pack of a drill: a real drill run in the sandbox, its pack from the
console and the API, its PDF printed by Chromium and read back with pypdf, and
`verify_evidence` accepting the pack and refusing it once one byte of it changed."""

import io
import re

import pytest
from django.core.management import CommandError, call_command
from django.db import close_old_connections
from django.urls import reverse
from pypdf import PdfReader

from controlplane.api import issue_token
from controlplane.models import AuditEvent
from experiments import evidence, runner, services
from experiments.models import Drill, DrillState, Scenario
from regions.models import Application, Region

SECTIONS = ["drill", "plan", "decisions", "timeline", "figures", "charts", "ledger", "audit"]


def _verify(path):
    out = io.StringIO()
    call_command("verify_evidence", str(path), stdout=out)
    return out.getvalue()


def _ran_drill(operator, approver):
    row = services.request(
        user=operator, scenario=Scenario.objects.get(slug="fail-region-health-check"),
        application=Application.objects.get(name="orders"), region=Region.objects.get(code="us-east-1"),
    )
    services.approve(row, approver, comment="go ahead for the evidence test")
    runner.run(row.pk)
    close_old_connections()
    return Drill.objects.get(pk=row.pk)


@pytest.mark.sandbox
@pytest.mark.django_db(transaction=True)
def test_the_pack_of_a_real_drill_holds_every_section_prints_and_verifies(
    world, settings, operator, approver, viewer, client_for, tmp_path
):
    settings.DRILL_STEADY_STATE_SECONDS = 1.0
    settings.DRILL_HOLD_SECONDS = 2.0
    drill = _ran_drill(operator, approver)
    assert drill.is_final and drill.figures.get("success_series"), (drill.state, drill.outcome_reason)

    response = client_for(viewer).get(reverse("experiments:evidence", args=[drill.pk]))
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="drill-{drill.pk}-evidence.html"'
    html = response.content
    text = html.decode()
    for section in SECTIONS:
        assert f'<section id="{section}">' in text, section
    # self-contained: no script, no external asset
    assert "<script" not in text and not re.search(r'(src|href)="(https?:)?//', text)
    assert "<svg" in text and "Global endpoint success rate" in text
    assert "Replication lag into us-east-1" in text
    assert drill.plan_hash in text and "UpdateHealthCheck" in text  # the plan: hash, call and inverse
    assert text.count("UpdateHealthCheck") >= 2
    assert "go ahead for the evidence test" in text and approver.get_username() in text
    assert "Time to fail over" in text and "Injection to the first successful request" in text
    for vantage in drill.figures["vantages"]:
        assert f'data-vantage="{vantage}"' in text
    rows = AuditEvent.objects.filter(object_type="experiments.drill", object_id=str(drill.pk))
    for event in rows.exclude(action=evidence.ACTION):
        assert event.hash in text and event.action in text
    assert 'data-chain-intact="true"' in text
    assert settings.CONTROLPLANE_VERSION in text

    # the download is audited with its digest, and the same state gives the same bytes
    event = rows.filter(action=evidence.ACTION).latest("seq")
    assert event.actor == viewer.get_username()
    assert event.after["sha256"] == evidence.sha256(html) == response["X-Evidence-SHA256"]
    again = client_for(viewer).get(reverse("experiments:evidence", args=[drill.pk])).content
    assert again == html

    pack = tmp_path / "pack.html"
    pack.write_bytes(html)
    assert f"matches audit event seq {event.seq}" in _verify(pack)

    # one byte of the figures changed: refused, naming the drill
    start = text.index('<section id="figures">')
    digit = re.compile(r"\d").search(text, start).start()
    changed = bytearray(html)
    changed[digit] = ord("7") if text[digit] != "7" else ord("3")
    tampered = tmp_path / "tampered.html"
    tampered.write_bytes(bytes(changed))
    with pytest.raises(CommandError, match=f"names drill #{drill.pk}.*changed after it was produced"):
        _verify(tampered)

    # the PDF, through the API: pages, text, its own digest audited with the HTML's
    token = issue_token(viewer)[1]
    response = client_for(viewer).get(
        f"/api/v1/drills/{drill.pk}/evidence.pdf", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    reader = PdfReader(io.BytesIO(response.content))
    assert len(reader.pages) > 0
    printed = " ".join(page.extract_text() for page in reader.pages)
    assert f"Evidence: drill #{drill.pk}" in printed and "Compensation ledger" in printed
    assert evidence.sha256(html) in printed.replace("\n", "")  # the PDF names the HTML it prints
    pdf_event = AuditEvent.objects.filter(action=evidence.ACTION).latest("seq")
    assert pdf_event.source == "api" and pdf_event.after["format"] == "pdf"
    assert pdf_event.after["sha256"] == evidence.sha256(response.content)
    assert pdf_event.after["html_sha256"] == evidence.sha256(html)
    pdf = tmp_path / "pack.pdf"
    pdf.write_bytes(response.content)
    assert f"matches audit event seq {pdf_event.seq}" in _verify(pdf)
    pdf.write_bytes(response.content[:-200] + b"x" + response.content[-199:])
    with pytest.raises(CommandError, match="PDF was changed after it was served"):
        _verify(pdf)


def test_every_role_that_sees_drills_may_download_and_the_outsider_may_not(
    db, client_for, viewer, operator, approver, admin, outsider, make_drill
):
    drill = make_drill(state=DrillState.PASSED)
    url = reverse("experiments:evidence", args=[drill.pk])
    for user in (viewer, operator, approver, admin):
        assert client_for(user).get(url).status_code == 200
    assert client_for(outsider).get(url).status_code == 403
    actors = AuditEvent.objects.filter(action=evidence.ACTION).values_list("actor", flat=True)
    assert sorted(actors) == sorted(u.get_username() for u in (viewer, operator, approver, admin))


def test_the_api_needs_a_token_and_names_an_unknown_drill(db, client, viewer, make_drill):
    drill = make_drill()
    assert client.get(f"/api/v1/drills/{drill.pk}/evidence").status_code == 401
    auth = {"HTTP_AUTHORIZATION": f"Bearer {issue_token(viewer)[1]}"}
    response = client.get(f"/api/v1/drills/{drill.pk}/evidence", **auth)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    missing = client.get(f"/api/v1/drills/{drill.pk + 1000}/evidence", **auth)
    assert missing.status_code == 404 and "error" in missing.json()


def test_without_a_pdf_engine_the_pdf_is_a_503_that_says_so_and_the_html_works(
    db, settings, client, client_for, viewer, make_drill
):
    settings.CONTROLPLANE_PDF_CHROMIUM = "/nonexistent/chromium"
    drill = make_drill()
    page = client_for(viewer).get(reverse("experiments:evidence-pdf", args=[drill.pk]))
    assert page.status_code == 503
    assert "No PDF engine on this server" in page.content.decode()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {issue_token(viewer)[1]}"}
    api = client.get(f"/api/v1/drills/{drill.pk}/evidence.pdf", **auth)
    assert api.status_code == 503 and "/nonexistent/chromium" in api.json()["error"]
    assert not AuditEvent.objects.filter(action=evidence.ACTION).exists()  # nothing was served
    assert client_for(viewer).get(reverse("experiments:evidence", args=[drill.pk])).status_code == 200


def test_the_drill_page_links_both_downloads(db, client_for, viewer, make_drill):
    drill = make_drill()
    text = client_for(viewer).get(reverse("experiments:detail", args=[drill.pk])).content.decode()
    assert f'href="/drills/{drill.pk}/evidence/"' in text
    assert f'href="/drills/{drill.pk}/evidence.pdf"' in text


def test_verify_evidence_refuses_a_file_no_event_records(db, tmp_path):
    stranger = tmp_path / "page.html"
    stranger.write_bytes(b"<html>hello</html>")
    with pytest.raises(CommandError, match="does not look like an evidence pack"):
        _verify(stranger)
    with pytest.raises(CommandError, match="Cannot read"):
        _verify(tmp_path / "missing.html")
