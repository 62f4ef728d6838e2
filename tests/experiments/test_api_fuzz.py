"""Property-based fuzzing of the whole JSON API from its own OpenAPI document.

schemathesis reads the document the server serves (GET /api/v1/openapi.json), and for
every operation and every role (anonymous, no role, viewer, operator, approver, admin)
sends requests made from it through the real WSGI stack: documented examples, boundary
and invalid values (coverage phase), then random valid and invalid ones (fuzzing).
It fails on any 5xx, any status code the document does not list for the operation,
any body or header that does not match the documented schema, a documented-invalid
request that is accepted, or a 405 without `Allow`.

Deterministic (derandomize: the same cases on every run) and bounded: MAX_EXAMPLES
per operation and role, about a minute in all on two busy cores. The drills it acts on
are rows made here; an approval dispatches to a queue nobody listens to (and the test's
transaction never commits, so nothing is even sent)."""

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from controlplane.api import issue_token
from experiments.api import DECISION, DRILL_REQUEST, REJECTION
from experiments.models import Drill, DrillState
from tests.processes import unique_queue

MAX_EXAMPLES = 50
ROLES = ["anonymous", "outsider", "viewer", "operator", "approver", "admin"]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
    unsupported_method,
]

schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", WSGIHandler())

# The drills of the current test, in the order the hook below picks them.
DRILL_IDS = []
VALID_NAMES = {"scenario": "fail-region-health-check", "application": "orders", "region": "us-east-1"}
PLAN_HASH = "a" * 64


@schema.hook
def map_path_parameters(context, path_parameters):
    """Two drawn drill ids in three are one of the test's drills (a random id is
    almost always a 404); the third is left as drawn."""
    pk = (path_parameters or {}).get("pk")
    if DRILL_IDS and isinstance(pk, int) and not isinstance(pk, bool) and pk % 3:
        path_parameters["pk"] = DRILL_IDS[pk % len(DRILL_IDS)]
    return path_parameters


@schema.hook
def map_body(context, body):
    """Most drill requests name what exists, and most decisions name the plan the
    drills have, so the windows, the approvals and the database are reached (a random
    slug is always a 400, a random hash a 409). A value is replaced only when the drawn
    one was a valid string too, so a request the document calls invalid stays invalid."""
    if context.operation is None or not isinstance(body, dict):
        return body
    if context.operation.label == "POST /drills":
        declared, replacements = DRILL_REQUEST, VALID_NAMES
    elif context.operation.label == "POST /drills/{pk}/approve":
        declared, replacements = DECISION, {"plan_hash": PLAN_HASH}
    elif context.operation.label == "POST /drills/{pk}/reject":
        declared, replacements = REJECTION, {"plan_hash": PLAN_HASH}
    else:
        return body
    for name, value in replacements.items():
        drawn = body.get(name)
        # three in four (by length, so the choice is as deterministic as the draw)
        if isinstance(drawn, str) and declared.fields[name].check(drawn) is None and len(drawn) % 4:
            body[name] = value
    return body


@pytest.fixture
def world(plannable, make_drill, make_user, settings):
    """orders/us-east-1, the built-in scenarios, and drills in the states the POST
    endpoints care about (one requested by the approver, who may not decide on it)."""
    settings.DRILL_QUEUE = unique_queue("fuzz")
    plan = {"calls": []}
    drills = [make_drill(scenario="fail-region-health-check", plan=plan, plan_hash=PLAN_HASH)
              for _ in range(3)]
    drills.append(make_drill(scenario="fail-region-health-check", plan=plan, plan_hash=PLAN_HASH,
                             requested_by=make_user("fuzz-anna-own", "operator", "approver")))
    drills.append(make_drill(state=DrillState.RUNNING))
    drills.append(make_drill(state=DrillState.PASSED))
    DRILL_IDS[:] = [d.pk for d in drills]
    # The WSGI handler runs in this thread on the test's connection, inside its
    # transaction: keep Django from closing that connection after each request, as
    # django.test.Client does.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)
    DRILL_IDS.clear()


@pytest.fixture(params=ROLES)
def credentials(request, world, make_user):
    role = request.param
    if role == "anonymous":
        return {}
    user = make_user(f"fuzz-{role}", *([] if role == "outsider" else [role]))
    return {"Authorization": f"Bearer {issue_token(user)[1]}"}


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    # The fixtures are the world every example of one role shares, on purpose.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.filter_too_much],
)
def test_every_answer_is_documented_and_none_is_a_server_error(case, credentials):
    case.call_and_validate(headers=credentials, checks=CHECKS)
    assert Drill.objects.filter(state=DrillState.RUNNING).count() <= 1  # nothing was started
