"""The OpenAPI document: valid 3.1, complete, and true to the real responses."""

import re

from django.urls import URLResolver, get_resolver, reverse
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from controlplane.api import issue_token
from controlplane.openapi import DOCUMENT
from experiments.models import Drill, DrillState, Scenario
from experiments.scenarios import ensure_builtin_scenarios
from experiments.services import transition
from regions.models import Application, Architecture, Region
from tests.regions.test_status_api import populate

OPENAPI = reverse("api-openapi")
DOC_URI = "urn:controlplane:openapi"


def validator_for(schema_name):
    registry = Registry().with_resource(DOC_URI, Resource(contents=DOCUMENT, specification=DRAFT202012))
    return Draft202012Validator(
        {"$ref": f"{DOC_URI}#/components/schemas/{schema_name}"}, registry=registry
    )


def api_routes():
    """Every URL pattern under /api/v1/, as the document's paths spell them."""
    (api,) = [
        p for p in get_resolver().url_patterns
        if isinstance(p, URLResolver) and str(p.pattern) == "api/v1/"
    ]
    return {
        "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(p.pattern)) for p in api.url_patterns
    }


def test_the_document_is_valid_openapi_3_1():
    assert DOCUMENT["openapi"] == "3.1.0"
    validate(DOCUMENT)


def test_every_api_url_is_documented():
    routes = api_routes()

    assert {"/status", "/inventory", "/openapi.json"} <= routes
    assert routes == set(DOCUMENT["paths"])


def test_bearer_security_applies_to_every_path_but_the_document_itself():
    scheme = DOCUMENT["components"]["securitySchemes"]["bearerToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert DOCUMENT["security"] == [{"bearerToken": []}]
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue  # path-level parameters
            if path == "/openapi.json":
                assert operation["security"] == []
            else:
                assert "security" not in operation, (method, path)
                assert {"401", "403"} <= set(operation["responses"]), (method, path)
                assert any(code.startswith("2") for code in operation["responses"]), (method, path)


def test_every_error_an_operation_can_answer_is_documented_as_json():
    """What api_view, parse_body and the JSON error handlers answer, per operation
    (tests/experiments/test_api_fuzz.py checks the same against real responses)."""
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            expected = {"405"} if path == "/openapi.json" else {"401", "403", "405"}
            if "requestBody" in operation:
                expected.add("400")
            if "{pk}" in path:
                expected.add("404")
            responses = operation["responses"]
            assert expected <= set(responses), (method, path)
            for code, response in responses.items():
                if code[0] in "45":
                    schema = response["content"]["application/json"]["schema"]
                    wanted = "ValidationError" if code == "400" else "Error"
                    assert schema == {"$ref": f"#/components/schemas/{wanted}"}, (method, path, code)


def test_the_document_is_served_without_authentication(client, db):
    response = client.get(OPENAPI)

    assert response.status_code == 200
    assert response.json() == DOCUMENT


def test_real_status_responses_match_the_documented_schema(client, viewer):
    populate(2, ("us-east-1", "us-west-2", "eu-central-1"))
    token = issue_token(viewer)[1]

    data = client.get(reverse("api-status"), headers={"Authorization": f"Bearer {token}"}).json()

    assert data["applications"][0]["lag"] and data["applications"][0]["regions"]
    validator_for("Status").validate(data)


def test_the_schema_rejects_a_malformed_status():
    bad = {"generated_at": "now", "applications": [{"name": "orders", "status": "fine"}]}

    assert not validator_for("Status").is_valid(bad)


def test_real_inventory_responses_match_the_documented_schema(client, viewer):
    populate(1)
    token = issue_token(viewer)[1]

    data = client.get(reverse("api-inventory"), headers={"Authorization": f"Bearer {token}"}).json()

    validator_for("Inventory").validate(data)


def test_error_responses_match_the_documented_schema(client, outsider):
    anonymous = client.get(reverse("api-status"))
    forbidden = client.get(
        reverse("api-status"), headers={"Authorization": f"Bearer {issue_token(outsider)[1]}"}
    )

    for response in (anonymous, forbidden):
        validator_for("Error").validate(response.json())


def test_status_with_routing_and_drift_matches_the_documented_schema(client, viewer):
    from tests.regions.test_status_api import add_routing_components

    (app,) = populate(1)
    add_routing_components(app)
    token = issue_token(viewer)[1]

    data = client.get(reverse("api-status"), headers={"Authorization": f"Bearer {token}"}).json()

    assert data["applications"][0]["drift"]
    validator_for("Status").validate(data)


def test_status_with_lag_figures_and_live_drills_matches_the_documented_schema(client, viewer, operator):
    from tests.regions.test_overview import add_drill

    orders, other = populate(2)
    add_drill(orders, "us-east-1", DrillState.RUNNING, operator)
    add_drill(other, "us-west-2", DrillState.QUEUED, operator)
    token = issue_token(viewer)[1]

    data = client.get(reverse("api-status"), headers={"Authorization": f"Bearer {token}"}).json()

    assert [len(app["drills"]) for app in data["applications"]] == [1, 1]
    assert data["applications"][0]["regions"][0]["replication"]["lag_seconds"] == 1.2
    validator_for("Status").validate(data)


def test_the_schema_rejects_a_drill_that_is_not_live_and_a_lag_without_its_figure():
    drill = {"id": 3, "state": "running", "region": "us-east-1", "url": "/drills/3/"}
    assert validator_for("ActiveDrill").is_valid(drill)
    assert not validator_for("ActiveDrill").is_valid({**drill, "state": "passed"})
    replication = {"status": "unknown", "reason": "no lag samples", "lag_seconds": None,
                   "source_region": None, "method": None, "at": None}
    assert validator_for("ReplicationVerdict").is_valid(replication)
    del replication["lag_seconds"]
    assert not validator_for("ReplicationVerdict").is_valid(replication)


def test_the_schema_rejects_a_drift_finding_without_its_undo_as_data():
    finding = {"region": "us-east-1", "component_kind": "route53_health_check", "identifier": "x",
               "what": "health check x is inverted",
               "undo_text": "UpdateHealthCheck HealthCheckId=x Inverted=false (route53 in us-east-1)",
               "applicable": True}
    undo = {"service": "route53", "region": "us-east-1", "operation": "UpdateHealthCheck",
            "parameters": {"HealthCheckId": "x", "Inverted": False}}

    assert not validator_for("DriftFinding").is_valid(finding)
    assert not validator_for("DriftFinding").is_valid({**finding, "undo": "UpdateHealthCheck Inverted=false"})
    assert validator_for("DriftFinding").is_valid({**finding, "undo": undo})


def test_an_inconclusive_drill_matches_the_documented_schema(client, viewer, operator):
    ensure_builtin_scenarios()
    drill = Drill.objects.create(
        scenario=Scenario.objects.get(slug="fail-region-health-check"),
        application=Application.objects.create(name="orders", architecture=Architecture.DNS),
        region=Region.objects.create(code="us-east-1"),
        requested_by=operator, plan={"calls": []}, plan_hash="0" * 64, state=DrillState.RUNNING,
        figures={"time_to_detect": 1.5},
    )
    transition(drill.pk, [DrillState.RUNNING], DrillState.INCONCLUSIVE,
               outcome_reason="the target never served any observer before the fault")
    token = issue_token(viewer)[1]

    data = client.get(reverse("api-drill", args=[drill.pk]),
                      headers={"Authorization": f"Bearer {token}"}).json()

    assert data["state"] == "inconclusive"
    validator_for("Drill").validate(data)
    assert not validator_for("DrillState").is_valid("inconclusive-ish")
