"""CSRF on the API: a request authenticated by the console's session cookie is checked
as the console's forms are (Django's CsrfViewMiddleware: Origin, then the token);
bearer-token requests are not (a page on another origin cannot add the header)."""

import pytest
from django.test import Client
from django.urls import reverse

from controlplane.api import issue_token
from controlplane.models import AuditEvent
from experiments.models import HaltState

HALT = reverse("api-halt")


@pytest.fixture
def session(operator):
    """A logged-in console user's session, with Django's CSRF checks on."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    return client


def halted():
    return HaltState.objects.filter(halted=True).exists() or AuditEvent.objects.filter(
        action__startswith="halt."
    ).exists()


def csrf_token(client):
    """The token the console's pages carry (from the csrftoken cookie a page sets)."""
    client.get(reverse("experiments:list"))
    return client.cookies["csrftoken"].value


def test_a_cross_site_post_with_the_session_cookie_is_refused(session):
    # curl -b sessionid=... -H 'Origin: http://evil.example' -H 'Content-Type: text/plain'
    response = session.post(HALT, '{"reason": "x"}', content_type="text/plain",
                            headers={"Origin": "http://evil.example"})

    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    assert "CSRF" in response.json()["error"] and "evil.example" in response.json()["error"]
    assert not halted()


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_the_session_cookie_without_a_token_is_refused(session, admin, method):
    session.force_login(admin)

    response = session.generic(method, HALT, '{"reason": "x"}', content_type="application/json")

    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]
    assert not halted()


def test_the_session_cookie_with_a_wrong_token_is_refused(session):
    csrf_token(session)

    response = session.post(HALT, {"reason": "x"}, content_type="application/json",
                            headers={"X-CSRFToken": "x" * 32})

    assert response.status_code == 403
    assert not halted()


def test_the_session_cookie_with_the_pages_token_works(session):
    response = session.post(HALT, {"reason": "from the console"}, content_type="application/json",
                            headers={"X-CSRFToken": csrf_token(session)})

    assert response.status_code == 200, response.content
    assert HaltState.objects.get(pk=1).halted


def test_the_pages_token_does_not_help_another_origin(session):
    response = session.post(HALT, {"reason": "x"}, content_type="application/json",
                            headers={"X-CSRFToken": csrf_token(session), "Origin": "http://evil.example"})

    assert response.status_code == 403
    assert not halted()


def test_reading_with_the_session_cookie_needs_no_token(session):
    assert session.get(reverse("api-status")).status_code == 200


def test_a_bearer_token_needs_no_csrf_token(operator):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)  # a session cookie too: the token is what authenticates
    token = issue_token(operator)[1]

    response = client.post(HALT, {"reason": "scripted"}, content_type="application/json",
                           headers={"Authorization": f"Bearer {token}", "Origin": "http://evil.example"})

    assert response.status_code == 200, response.content
    assert HaltState.objects.get(pk=1).halted


def test_an_invalid_bearer_token_falls_back_to_the_checked_session(session):
    response = session.post(HALT, {"reason": "x"}, content_type="application/json",
                            headers={"Authorization": "Bearer cp_not-a-token"})

    assert response.status_code == 403
    assert not halted()
