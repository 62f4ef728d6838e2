"""The console's forms (request, approve, reject, abort, halt) given the values that
broke the API: far-future windows, type-looking strings, NUL, invalid UTF-8, deep
brackets, huge text. Every answer is a page or a redirect, never a 500."""

from urllib.parse import quote_from_bytes

import pytest
from django.test import Client
from django.urls import reverse

from experiments.models import Drill, DrillState, HaltState
from tests.experiments.test_views import PLAN
from tests.processes import unique_queue

REQUEST = {"scenario": "fail-region-health-check", "application": "orders", "region": "us-east-1"}
HOSTILE = [
    "1", "true", "{}", "[]", "1.5", "null", "NaN",
    "[" * 100_000,
    "x" * 100_000,
    "nul\x00here",
    "9999-12-31T23:59:59-05:00",
]


@pytest.fixture(autouse=True)
def _no_worker_listens(settings):
    settings.DRILL_QUEUE = unique_queue("console-input")


@pytest.fixture
def console(plannable, make_user, make_drill):
    user = make_user("sam-all-roles", "operator", "approver", "admin")
    client = Client(raise_request_exception=False)
    client.force_login(user)
    client.drill = make_drill(scenario="fail-region-health-check", plan=PLAN, plan_hash="a" * 64)
    return client


def raw_post(client, url, pairs):
    """A form-encoded POST built by hand: bytes that are not UTF-8 included."""
    body = "&".join(f"{quote_from_bytes(k)}={quote_from_bytes(v)}" for k, v in pairs)
    return client.post(url, body, content_type="application/x-www-form-urlencoded")


@pytest.mark.parametrize("field", ["window_start", "window_end"])
@pytest.mark.parametrize(
    "value", ["9999-12-31T23:59:59-05:00", "9999-12-31T23:59-05:00", "0001-01-01T00:00+05:00"]
)
def test_a_window_out_of_range_in_utc_is_a_message_on_the_field(console, field, value):
    response = console.post(reverse("experiments:create"), {**REQUEST, field: value})

    assert response.status_code == 400
    assert "out of range once converted to UTC" in response.context["form"].errors[field][0]
    assert Drill.objects.count() == 1


def test_the_last_minute_of_9999_is_a_valid_window(console):
    response = console.post(reverse("experiments:create"),
                            {**REQUEST, "window_start": "9999-12-31T23:58", "window_end": "9999-12-31T23:59"})

    assert response.status_code == 302, response.context["form"].errors
    assert Drill.objects.latest("pk").window_end.year == 9999


@pytest.mark.parametrize("field", ["scenario", "application", "region", "window_start", "window_end"])
def test_the_request_form_answers_hostile_values_with_a_400_page(console, field):
    for value in HOSTILE:
        response = console.post(reverse("experiments:create"), {**REQUEST, field: value})

        assert response.status_code == 400, (field, value[:20])
        assert response.context["form"].errors[field]
    assert Drill.objects.count() == 1


@pytest.mark.parametrize("field", ["scenario", "application", "region", "window_start"])
def test_the_request_form_and_its_preview_survive_invalid_utf8(console, field):
    pairs = [(k.encode(), v.encode()) for k, v in REQUEST.items() if k != field] + [
        (field.encode(), b"\xed\xa0\x80"),  # a UTF-8-encoded surrogate: not UTF-8
    ]

    assert raw_post(console, reverse("experiments:create"), pairs).status_code == 400
    query = "&".join(f"{quote_from_bytes(k)}={quote_from_bytes(v)}" for k, v in pairs)
    assert console.get(f"{reverse('experiments:new')}?preview=1&{query}").status_code == 200
    assert console.get(f"{reverse('experiments:new')}?application=a%00b").status_code == 200


@pytest.mark.parametrize("action", ["approve", "reject"])
def test_the_decision_forms_survive_hostile_values(console, action):
    url = reverse(f"experiments:{action}", args=[console.drill.pk])
    for value in HOSTILE:
        # a valid comment with another plan's hash is a 409, so nothing is ever decided
        for data in ({"comment": value, "plan_hash": "b" * 64}, {"comment": "ok", "plan_hash": value}):
            assert console.post(url, data).status_code in (400, 409), (data, value[:20])
    assert raw_post(console, url, [(b"comment", b"\xed\xa0\x80\xff"), (b"plan_hash", b"\xff" * 64)]
                    ).status_code in (400, 409)
    console.drill.refresh_from_db()
    assert console.drill.state == DrillState.REQUESTED


def test_the_abort_and_halt_forms_survive_hostile_values(console):
    abort = reverse("experiments:abort", args=[console.drill.pk])
    halt = reverse("experiments:halt")
    for value in HOSTILE:
        # an invalid reason is ignored by abort (it uses the default) and refused by halt
        assert console.post(halt, {"reason": value}).status_code == 302, value[:20]
    assert raw_post(console, halt, [(b"reason", b"\xed\xa0\x80")]).status_code == 302
    assert raw_post(console, abort, [(b"reason", b"\xed\xa0\x80" + b"\x00" * 10)]).status_code == 302
    assert Drill.objects.get(pk=console.drill.pk).state == DrillState.ABORTED
    assert HaltState.objects.filter(halted=True).exists()  # "1" was a reason good enough
