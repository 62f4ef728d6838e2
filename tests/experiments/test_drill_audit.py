"""Audit by drill: a drill's page links to its audit events (for those who may read the
log), the link shows that drill's events and no other's, each row links back to the
drill, and the CSV export of that filter has the same rows."""

import csv
import io

import pytest
from django.urls import reverse

from controlplane.models import AuditEvent
from experiments import services
from tests.experiments.test_views import PLAN
from tests.processes import unique_queue

AUDIT = reverse("audit")


@pytest.fixture(autouse=True)
def _no_worker_listens(settings):
    settings.DRILL_QUEUE = unique_queue("drill-audit")


@pytest.fixture
def two_drills(make_drill, admin):
    """Drill `ours` approved (requested is written by the fixture's row, so it has
    approved and queued events), and another drill rejected."""
    ours = make_drill(plan=PLAN, plan_hash="a" * 64)
    other = make_drill(plan=PLAN, plan_hash="b" * 64)
    services.approve(ours, admin, comment="go")
    services.reject(other, admin, comment="no")
    services.halt_all(admin, "end of day")  # aborts ours (queued): one more event of ours
    return ours, other


def audit_link(html):
    return html.split("data-drill-audit")[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")


@pytest.mark.parametrize("role", ["approver", "admin"])
def test_the_drill_page_links_to_its_audit_events(request, role, two_drills, client_for):
    ours, _ = two_drills
    client = client_for(request.getfixturevalue(role))
    html = client.get(reverse("experiments:detail", args=[ours.pk])).content.decode()

    assert audit_link(html) == f"{AUDIT}?object_type=experiments.drill&object_id={ours.pk}"


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_who_may_not_read_the_audit_log_gets_no_link(request, role, two_drills, client_for):
    ours, _ = two_drills
    client = client_for(request.getfixturevalue(role))
    html = client.get(reverse("experiments:detail", args=[ours.pk])).content.decode()

    assert "data-drill-audit" not in html and AUDIT not in html


def test_the_link_shows_this_drills_events_each_linking_back(approver, two_drills, client_for):
    ours, other = two_drills
    client = client_for(approver)
    link = audit_link(client.get(reverse("experiments:detail", args=[ours.pk])).content.decode())

    response = client.get(link)

    events = list(response.context["page"].object_list)
    assert [e.action for e in events] == ["drill.aborted", "drill.queued", "drill.approved"]
    assert {e.object_id for e in events} == {str(ours.pk)}
    html = response.content.decode()
    assert f'data-audit-object="experiments.drill:{ours.pk}"' in html
    drill_page = reverse("experiments:detail", args=[ours.pk])
    assert html.count(f'<a href="{drill_page}" data-object-link>') == 3
    assert reverse("experiments:detail", args=[other.pk]) not in html
    assert "data-object-events" not in html  # already filtered on the object


def test_the_csv_export_of_the_drills_events_has_the_same_rows(approver, two_drills, client_for):
    ours, _ = two_drills
    client = client_for(approver)
    page = client.get(AUDIT, {"object_type": "experiments.drill", "object_id": ours.pk}).content.decode()
    csv_url = page.split(" download>")[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")

    response = client.get(csv_url)

    lines = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    header, rows = lines[0], [dict(zip(lines[0], line, strict=True)) for line in lines[1:]]
    assert header[:7] == ["seq", "created_at", "actor", "source", "action", "object_type", "object_id"]
    assert [(r["action"], r["object_id"]) for r in rows] == [
        ("drill.approved", str(ours.pk)), ("drill.queued", str(ours.pk)), ("drill.aborted", str(ours.pk)),
    ]
    ours_events = AuditEvent.objects.filter(object_type="experiments.drill", object_id=str(ours.pk))
    assert len(rows) == ours_events.count()
