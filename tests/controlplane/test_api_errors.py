"""Error answers under /api/ are JSON whatever raised them (controlplane.api's
handler400/403/404/500); the console keeps its HTML pages."""

import pytest
from django.test import Client
from django.urls import reverse

from controlplane.api import issue_token
from regions import api as regions_api


@pytest.fixture
def client(db):
    return Client(raise_request_exception=False)


@pytest.fixture
def bearer(viewer):
    return {"Authorization": f"Bearer {issue_token(viewer)[1]}"}


def test_an_unknown_api_url_is_a_json_404(client, bearer):
    response = client.get("/api/v1/no-such-thing", headers=bearer)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert "/api/v1/no-such-thing" in response.json()["error"]


@pytest.mark.parametrize("pk", ["424242", "9" * 30])
def test_an_unknown_drill_is_a_json_404_naming_it(client, bearer, pk):
    response = client.get(f"/api/v1/drills/{pk}", headers=bearer)

    assert response.status_code == 404
    assert response.json() == {"error": f"No drill {pk}."}


def test_an_unexpected_exception_under_the_api_is_a_json_500_with_the_request_id(
    client, bearer, monkeypatch
):
    def broken(now):
        raise RuntimeError("a bug")

    monkeypatch.setattr(regions_api.monitoring, "load_picture", broken)

    response = client.get(reverse("api-status"), headers={**bearer, "X-Request-ID": "req-42"})

    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "error": "Internal error; quote request id req-42 when reporting it.", "request_id": "req-42"
    }
    assert "a bug" not in response.content.decode()


def test_the_document_answers_other_methods_with_a_json_405(client):
    response = client.post(reverse("api-openapi"))

    assert response.status_code == 405
    assert response["Allow"] == "GET"
    assert response.json() == {"error": "Method POST not allowed."}


def test_the_console_keeps_its_html_error_pages(client, client_for, viewer):
    assert client.get("/no-such-page/")["Content-Type"].startswith("text/html")
    assert client_for(viewer).get("/drills/424242/")["Content-Type"].startswith("text/html")
