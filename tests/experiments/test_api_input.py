"""Hostile input to the five POST endpoints of the API: every answer is a JSON 4xx
naming the field (or non_field_errors for the body as a whole), valid against the
document, and nothing changes. The classes a fuzzer found 500s with: non-string window
dates, lone surrogates, deep nesting, dates that overflow when converted to UTC."""

import json

import pytest
from django.test import Client
from django.urls import reverse

from controlplane.api import issue_token
from controlplane.models import AuditEvent
from experiments.models import Approval, Drill, DrillState, HaltState
from tests.experiments.test_api import check
from tests.experiments.test_views import PLAN
from tests.processes import unique_queue

REQUEST = {"scenario": "fail-region-health-check", "application": "orders", "region": "us-east-1"}


@pytest.fixture(autouse=True)
def _no_worker_listens(settings):
    settings.DRILL_QUEUE = unique_queue("api-input")


@pytest.fixture
def post(plannable, make_user, make_drill):
    """POST a raw body to each endpoint as a user allowed to use it; the drill acted on
    is waiting for a decision."""
    drill = make_drill(scenario="fail-region-health-check", plan=PLAN, plan_hash="a" * 64)
    superuser = make_user("sam-all-roles", "operator", "approver", "admin")
    token = issue_token(superuser)[1]
    client = Client(raise_request_exception=False)
    urls = {
        "drills": reverse("api-drills"),
        "approve": reverse("api-drill-approve", args=[drill.pk]),
        "reject": reverse("api-drill-reject", args=[drill.pk]),
        "abort": reverse("api-drill-abort", args=[drill.pk]),
        "halt": reverse("api-halt"),
    }

    def call(endpoint, body, content_type="application/json"):
        if not isinstance(body, str | bytes):
            body = json.dumps(body)
        return client.post(urls[endpoint], body, content_type=content_type,
                           headers={"Authorization": f"Bearer {token}"})

    call.drill = drill
    return call


ENDPOINTS = ["drills", "approve", "reject", "abort", "halt"]
# what each endpoint's one text field is called
TEXT_FIELD = {"drills": "scenario", "approve": "comment", "reject": "comment", "abort": "reason",
              "halt": "reason"}


def nothing_changed(drill):
    drill.refresh_from_db()
    return (
        drill.state == DrillState.REQUESTED
        and Drill.objects.count() == 1
        and not Approval.objects.exists()
        and not HaltState.objects.filter(halted=True).exists()
        and not AuditEvent.objects.filter(action__regex=r"^(drill|halt)\.").exists()
    )


def bad_request(response):
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/json"
    return check(response.json(), "ValidationError")


BAD_BODIES = [
    ("[" * 100_000, "nested"),
    ('[{"a":' * 50_000, "nested"),
    ('{"a":' * 50_000 + "1" + "}" * 50_000, "nested"),
    ("{nope", "not valid JSON"),
    ('"just a string"', "JSON object"),
    ("[1]", "JSON object"),
    ("null", "JSON object"),
    (b'{"reason": "caf\xe9"}', "UTF-8"),
    ('{"reason": NaN}', "not valid JSON"),
    ('{"reason": -Infinity}', "not valid JSON"),
    ('{"reason": ' + "9" * 5000 + "}", "not valid JSON"),
    ('{"\\ud800": "x"}', "surrogate"),
]
OTHER_TYPES = [1, True, False, 0, {}, [], 1.5, ["x"], {"$gt": ""}, [[[[[]]]]]]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_body_that_is_not_a_json_object_is_a_400_naming_the_body(post, endpoint):
    for body, says in BAD_BODIES:
        errors = bad_request(post(endpoint, body))["fields"]["non_field_errors"]

        assert says in errors[0], (body[:20], errors)
    assert nothing_changed(post.drill)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_text_field_of_another_type_is_a_400_naming_the_field(post, endpoint):
    field = TEXT_FIELD[endpoint]
    for value in OTHER_TYPES:
        data = {**REQUEST, field: value} if endpoint == "drills" else {field: value}

        body = bad_request(post(endpoint, data))

        assert list(body["fields"]) == [field], value
        assert "must be a string" in body["fields"][field][0]
        assert field in body["error"]
    assert nothing_changed(post.drill)


@pytest.mark.parametrize("field", ["window_start", "window_end"])
def test_a_window_of_another_type_is_a_400_naming_it(post, field):
    for value in [*OTHER_TYPES, ["2030-01-01T00:00:00Z"]]:
        body = bad_request(post("drills", {**REQUEST, field: value}))

        assert list(body["fields"]) == [field], value
        assert "date-time" in body["fields"][field][0]
    assert nothing_changed(post.drill)


@pytest.mark.parametrize("field", ["window_start", "window_end"])
def test_a_window_out_of_range_in_utc_is_a_400_naming_it(post, field):
    for value in [
        "9999-12-31T23:59:59-05:00",
        "9999-12-31T23:59:59.999999-00:01",
        "9999-12-31T23:59:59-23:59",
        "0001-01-01T00:00:00+05:00",
        "0001-01-01T00:00:00+23:59",
    ]:
        body = bad_request(post("drills", {**REQUEST, field: value}))

        assert "out of range" in " ".join(body["fields"][field]), (value, body)
    assert nothing_changed(post.drill)


def test_a_window_that_is_not_an_rfc3339_date_time_is_a_400(post):
    for value in ["", "tomorrow", "2030-01-01", "2030-01-01T10:00", "2030-01-01T10:00:00",
                  "2030-13-01T10:00:00Z", "2030-01-01T10:00:00+25:00", "2030-01-01T10:00:00Z\n",
                  "\uff12\uff10\uff13\uff10-01-01T10:00:00Z"]:
        body = bad_request(post("drills", {**REQUEST, "window_start": value}))

        assert list(body["fields"]) == ["window_start"], value
    assert nothing_changed(post.drill)


def test_rfc3339_spellings_are_accepted(post):
    for start, end in [("2030-01-01t10:00:00z", "2030-01-01T12:00:00+01:30"),
                       ("2030-01-01T10:00:00.123456789Z", "2030-01-02T10:00:00-00:00")]:
        response = post("drills", {**REQUEST, "window_start": start, "window_end": end})

        assert response.status_code == 201, (start, end, response.content)


def test_the_last_representable_window_is_accepted(post):
    response = post("drills", {**REQUEST, "window_start": "9999-12-31T23:59:58Z",
                               "window_end": "9999-12-31T23:59:59.999999+00:00"})

    assert response.status_code == 201, response.content
    drill = Drill.objects.get(pk=response.json()["id"])
    assert (drill.window_start.year, drill.window_end.year) == (9999, 9999)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_lone_surrogate_or_nul_in_a_string_is_a_400_naming_the_field(post, endpoint):
    field = TEXT_FIELD[endpoint]
    for text in ["\ud800", "a\udfffb", "\x00", "nul\x00here"]:
        data = {**REQUEST, field: text} if endpoint == "drills" else {field: text}

        body = bad_request(post(endpoint, json.dumps(data)))  # escaped as \ud800, \u0000

        assert list(body["fields"]) == [field], repr(text)
    assert nothing_changed(post.drill)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_an_unknown_field_is_a_400_naming_it(post, endpoint):
    body = bad_request(post(endpoint, {"colour": "red"}))

    assert body["fields"] == {"colour": ["Unknown field."]}
    assert nothing_changed(post.drill)


def test_a_text_over_its_documented_length_is_a_400(post):
    for endpoint, field, limit in [("approve", "comment", 2000), ("abort", "reason", 500),
                                   ("halt", "reason", 500), ("approve", "plan_hash", 64),
                                   ("drills", "application", 63)]:
        data = {**REQUEST, field: "x" * (limit + 1)} if endpoint == "drills" else {field: "x" * (limit + 1)}

        body = bad_request(post(endpoint, data))

        assert body["fields"] == {field: [f"At most {limit} characters."]}
    assert nothing_changed(post.drill)


def test_a_body_over_the_upload_limit_is_a_json_400(post, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    for endpoint in ENDPOINTS:
        body = bad_request(post(endpoint, {"reason": "x" * 2000}))

        assert "larger than 1000 bytes" in body["fields"]["non_field_errors"][0]
    assert nothing_changed(post.drill)


def test_optional_fields_may_be_null(post):
    response = post("approve", {"comment": None, "plan_hash": None})

    assert response.status_code == 200, response.content
    assert check(response.json(), "Drill")["state"] == "queued"
