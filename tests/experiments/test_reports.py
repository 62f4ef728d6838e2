"""The period report: its sections, who may read it, bad input, and its PDF."""

import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from pypdf import PdfReader

from experiments.models import DrillState
from regions.models import Application, Architecture, Region, Stack

URL = reverse("reports:period")


@pytest.fixture
def drills(db, make_drill):
    """orders in us-east-1 (drilled: one pass, one failure) and eu-central-1 (never)."""
    now = timezone.now()
    app = Application.objects.create(name="orders", architecture=Architecture.DNS)
    for code in ("us-east-1", "eu-central-1"):
        Stack.objects.create(application=app, region=Region.objects.get_or_create(code=code)[0])
    passed = make_drill(
        state=DrillState.PASSED, started_at=now - timedelta(days=3, minutes=5),
        finished_at=now - timedelta(days=3),
        requested_at=now - timedelta(days=3, minutes=10),
        figures={"time_to_failover": 12.5, "time_to_recover": 20.0},
    )
    failed = make_drill(
        scenario="fail-region-health-check", state=DrillState.FAILED, started_at=now - timedelta(days=1),
        finished_at=now - timedelta(days=1), requested_at=now - timedelta(days=1, minutes=5),
        figures={"time_to_failover": 95.0},
    )
    old = make_drill(state=DrillState.PASSED, requested_at=now - timedelta(days=200),
                     started_at=now - timedelta(days=200), finished_at=now - timedelta(days=200))
    return passed, failed, old


def test_the_report_has_every_section(client_for, approver, drills):
    passed, failed, old = drills
    response = client_for(approver).get(URL, {"application": "orders"})
    assert response.status_code == 200
    text = response.content.decode()
    for section in ("report-drills", "report-last-passed", "report-trend", "report-never", "report-drift"):
        assert f'id="{section}"' in text
    assert f'data-drill="{passed.pk}"' in text and f'data-drill="{failed.pk}"' in text
    assert f'data-drill="{old.pk}"' not in text  # outside the default 90 days
    assert 'data-outcome="passed">Passed: 1' in text and 'data-outcome="failed">Failed: 1' in text
    assert 'data-last-region="orders/us-east-1"' in text and f"#{passed.pk} " in text
    assert 'data-never="orders/eu-central-1"' in text and 'data-never="orders/us-east-1"' not in text
    assert "<svg" in text and "time to fail over" in text and "<td>12 s</td>" in text
    assert "No open drift." in text
    assert 'href="/reports/"' in text  # the navigation links it for approvers


def test_the_period_narrows_the_drills(client_for, admin, drills):
    passed, _, old = drills
    day = (timezone.now() - timedelta(days=200)).date().isoformat()
    text = client_for(admin).get(URL, {"from": day, "to": day}).content.decode()
    assert f'data-drill="{old.pk}"' in text and f'data-drill="{passed.pk}"' not in text
    assert "Not measured: no drill of the period measured either figure." in text


@pytest.mark.parametrize("query, message", [
    ({"from": "yesterday"}, "From: Enter a valid date."),
    ({"to": "2026-02-30"}, "To: Enter a valid date."),
    ({"from": "2026-05-02", "to": "2026-05-01"},
     "The period starts (2026-05-02) after it ends (2026-05-01)."),
    ({"application": "nope"}, "Unknown application &#x27;nope&#x27;."),
])
def test_bad_input_is_a_form_error(client_for, approver, drills, query, message):
    response = client_for(approver).get(URL, query)
    assert response.status_code == 400
    assert message in response.content.decode()


@pytest.mark.parametrize("role", ["viewer", "operator", "outsider"])
def test_only_approvers_and_admins_may_read_it(client_for, make_user, role, db):
    user = make_user(f"r-{role}", *([] if role == "outsider" else [role]))
    response = client_for(user).get(URL)
    assert response.status_code == 403
    assert "The period report is for approvers and admins" in response.content.decode()
    assert 'href="/reports/"' not in client_for(user).get(reverse("regions:overview")).content.decode()


def test_the_pdf_prints_the_report(client_for, approver, drills):
    response = client_for(approver).get(reverse("reports:period-pdf"), {"application": "orders"})
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    reader = PdfReader(io.BytesIO(response.content))
    text = " ".join(page.extract_text() for page in reader.pages)
    assert len(reader.pages) > 0 and "Regions never drilled" in text and "eu-central-1" in text


def test_without_a_pdf_engine_the_report_says_so(client_for, approver, drills, settings):
    settings.CONTROLPLANE_PDF_CHROMIUM = ""
    response = client_for(approver).get(reverse("reports:period-pdf"))
    assert response.status_code == 503
    assert "CONTROLPLANE_PDF_CHROMIUM is off" in response.content.decode()


def test_the_chart_dates_its_axis_at_the_scale_of_the_drills():
    """Drills a minute apart are two points on an axis of times with seconds; drills weeks
    apart, on an axis of dates (not "days since the period's start")."""
    from types import SimpleNamespace

    from experiments.reports import _trend_chart

    since = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=60)

    def drill(at):
        return SimpleNamespace(finished_at=at, requested_at=at,
                               figures={"time_to_failover": 4.2, "time_to_recover": 3.0})

    close, _ = _trend_chart([drill(since + timedelta(days=59, hours=22)),
                             drill(since + timedelta(days=59, hours=22, seconds=40))], since)
    assert "22:00:10" in close or "22:00:20" in close  # ticks within the minute
    assert close.count("<circle") == 4  # two points on each line
    apart, _ = _trend_chart([drill(since + timedelta(days=3)), drill(since + timedelta(days=40))], since)
    assert f"{since + timedelta(days=10):%Y-%m-%d}" in apart
