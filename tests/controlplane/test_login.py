from django.urls import reverse

from controlplane.models import AuditEvent
from tests.conftest import PASSWORD

LOGIN = reverse("login")
LOGOUT = reverse("logout")


def test_login_page_renders_the_form(client, db):
    response = client.get(LOGIN)

    html = response.content.decode()
    assert response.status_code == 200
    assert 'name="username"' in html
    assert 'name="password"' in html
    assert "csrfmiddlewaretoken" in html


def test_login_works_and_records_an_audit_event(client, viewer):
    response = client.post(LOGIN, {"username": viewer.username, "password": PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == reverse("regions:overview")
    event = AuditEvent.objects.get(action="auth.login")
    assert event.actor == viewer.username
    assert event.object_type == "auth.user"
    assert event.object_id == str(viewer.pk)
    assert event.request_id
    assert client.get(reverse("regions:overview")).status_code == 200


def test_login_follows_next(client, approver):
    response = client.post(
        LOGIN, {"username": approver.username, "password": PASSWORD, "next": reverse("audit")}
    )

    assert response["Location"] == reverse("audit")


def test_wrong_password_shows_an_error_and_records_nothing(client, viewer):
    response = client.post(LOGIN, {"username": viewer.username, "password": "nope"})

    assert response.status_code == 200
    assert "alert--error" in response.content.decode()
    assert not AuditEvent.objects.filter(action="auth.login").exists()


def test_logout_is_post_only(client_for, viewer):
    client = client_for(viewer)

    assert client.get(LOGOUT).status_code == 405
    assert client.get(reverse("regions:overview")).status_code == 200
    assert not AuditEvent.objects.filter(action="auth.logout").exists()


def test_logout_records_an_audit_event_and_signs_out(client_for, viewer):
    client = client_for(viewer)

    response = client.post(LOGOUT)

    assert response.status_code == 302
    assert response["Location"] == LOGIN
    event = AuditEvent.objects.get(action="auth.logout")
    assert event.actor == viewer.username
    assert client.get(reverse("regions:overview")).status_code == 302


def test_the_console_has_a_post_logout_form(client_for, viewer):
    html = client_for(viewer).get(reverse("regions:overview")).content.decode()

    assert f'<form class="logout" method="post" action="{LOGOUT}">' in html


def test_csp_header_is_present_and_forbids_inline_scripts(client, db):
    response = client.get(LOGIN)

    csp = response["Content-Security-Policy"]
    directives = dict(
        (part.strip().split(" ", 1) + [""])[:2] for part in csp.split(";") if part.strip()
    )
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp


def test_pages_have_no_inline_scripts_or_styles(client_for, admin):
    client = client_for(admin)
    for url in (LOGIN, reverse("regions:overview"), reverse("audit")):
        html = client.get(url).content.decode()
        assert "<script>" not in html
        assert "style=" not in html
        assert "<style" not in html
        assert " on" + "click=" not in html


def test_body_carries_the_csrf_token_for_htmx(client_for, viewer):
    html = client_for(viewer).get(reverse("regions:overview")).content.decode()

    assert '<body hx-headers=\'{"X-CSRFToken": "' in html
