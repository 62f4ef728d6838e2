"""Sign-in throttling (django-axes, controlplane/login.py): per username and per address."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from controlplane import login
from controlplane.models import AuditEvent, AuditSource
from controlplane.roles import VIEWER
from tests.conftest import PASSWORD

LOGIN = reverse("login")
ADMIN_LOGIN = reverse("admin:login")
OVERVIEW = reverse("regions:overview")


def _sign_in(client, username, password, *, address="10.0.0.1", url=LOGIN):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=address)


def _signed_in(client):
    return client.get(OVERVIEW).status_code == 200


def test_thirty_wrong_passwords_then_the_right_one_is_refused_with_the_reason(client, viewer, settings):
    assert settings.AXES_FAILURE_LIMIT == 10  # the default
    for _ in range(30):
        _sign_in(client, viewer.username, "wrong-guess")

    response = _sign_in(client, viewer.username, PASSWORD)

    html = response.content.decode()
    assert response.status_code == 429
    assert "Too many failed sign-ins for this username or from this address" in html
    assert "locked for 15 minutes" in html
    assert "manage.py unlock_login" in html
    assert 'name="password"' in html  # the login page, not a bare error
    assert response["Retry-After"] == "900"
    assert not _signed_in(client)
    assert not AuditEvent.objects.filter(action="auth.login").exists()


def test_the_attempt_that_reaches_the_limit_already_gets_the_lockout_page(client, viewer, settings):
    settings.AXES_FAILURE_LIMIT = 3
    responses = [_sign_in(client, viewer.username, "wrong") for _ in range(3)]

    assert [r.status_code for r in responses] == [200, 200, 429]
    assert "Please enter a correct username and password" in responses[0].content.decode()


def test_fewer_failures_than_the_limit_still_let_the_right_password_in(client, viewer, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(2):
        _sign_in(client, viewer.username, "wrong")

    response = _sign_in(client, viewer.username, PASSWORD)

    assert response.status_code == 302
    assert _signed_in(client)


def test_a_lockout_is_audited_once_with_username_address_and_counts(client, viewer, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(6):
        _sign_in(client, viewer.username, "wrong")
    _sign_in(client, viewer.username, PASSWORD)

    event = AuditEvent.objects.get(action="auth.lockout")
    assert event.source == AuditSource.CONSOLE
    assert event.actor == "anonymous"
    assert event.object_type == "auth.user"
    assert event.object_id == str(viewer.pk)
    assert event.request_id
    assert event.after == {
        "username": viewer.username,
        "ip_address": "10.0.0.1",
        "locked": ["username", "ip_address"],
        "failures_for_username": 3,
        "failures_from_address": 3,
        "failure_limit": 3,
        "cool_off_minutes": 15,
    }


def test_one_address_is_locked_across_usernames(client, make_user, settings):
    settings.AXES_FAILURE_LIMIT = 3
    user = make_user("vic-viewer", VIEWER)
    for name in ("alice", "bob", "carol"):
        _sign_in(client, name, "guess", address="10.0.0.7")

    refused = _sign_in(client, user.username, PASSWORD, address="10.0.0.7")
    assert refused.status_code == 429
    assert not _signed_in(client)

    event = AuditEvent.objects.get(action="auth.lockout")
    assert event.after["locked"] == ["ip_address"]
    assert event.after["username"] == "carol"
    assert event.object_id == ""  # no such user

    # The same account from another address is not locked.
    assert _sign_in(client, user.username, PASSWORD, address="10.0.0.8").status_code == 302
    assert _signed_in(client)


def test_one_username_is_locked_across_addresses(client, viewer, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for i in range(3):
        _sign_in(client, viewer.username, "guess", address=f"10.0.1.{i}")

    response = _sign_in(client, viewer.username, PASSWORD, address="10.0.2.1")

    assert response.status_code == 429
    assert AuditEvent.objects.get(action="auth.lockout").after["locked"] == ["username"]


def test_the_admin_login_is_throttled_and_audited_as_admin(client, admin, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(3):
        _sign_in(client, admin.username, "wrong", url=ADMIN_LOGIN)

    response = _sign_in(client, admin.username, PASSWORD, url=ADMIN_LOGIN)

    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.content.decode()
    assert AuditEvent.objects.get(action="auth.lockout").source == AuditSource.ADMIN
    assert client.get(reverse("admin:index")).status_code == 302


def test_the_lockout_lifts_after_the_cool_off(client, viewer, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(3):
        _sign_in(client, viewer.username, "wrong")
    assert _sign_in(client, viewer.username, PASSWORD).status_code == 429

    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))

    assert _sign_in(client, viewer.username, PASSWORD).status_code == 302


def test_unlock_login_lifts_a_lockout_and_is_audited(client, viewer, settings, capsys):
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(3):
        _sign_in(client, viewer.username, "wrong")

    call_command("unlock_login", "--list")
    assert f"username='{viewer.username}'  address=10.0.0.1" in capsys.readouterr().out
    call_command("unlock_login", "--username", viewer.username, "--actor", "ada-admin")
    call_command("unlock_login", "--ip", "10.0.0.1")

    assert "Unlocked" in capsys.readouterr().out
    assert _sign_in(client, viewer.username, PASSWORD).status_code == 302
    events = AuditEvent.objects.filter(action="auth.unlock").order_by("seq")
    assert [(e.actor, e.source, e.after) for e in events] == [
        ("ada-admin", AuditSource.COMMAND, {"username": viewer.username, "attempts_removed": 1}),
        ("system", AuditSource.COMMAND, {"ip_address": "10.0.0.1", "attempts_removed": 0}),
    ]


def test_unlock_login_without_a_target_says_what_to_give(db):
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="--username NAME, --ip ADDRESS or --all"):
        call_command("unlock_login")


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, "203.0.113.9", "10.0.0.1"),  # no proxy: X-Forwarded-For is the client's to forge
        (1, "198.51.100.1, 203.0.113.9", "203.0.113.9"),  # the entry our proxy appended
        (2, "198.51.100.1, 203.0.113.9, 10.1.1.1", "203.0.113.9"),
        (1, "", "10.0.0.1"),  # a proxy that did not append: REMOTE_ADDR
        (1, "not-an-address", "10.0.0.1"),
    ],
)
def test_the_client_address_trusts_only_the_configured_proxies(proxies, forwarded, expected, settings):
    settings.CONTROLPLANE_TRUSTED_PROXY_COUNT = proxies
    request = RequestFactory().post(LOGIN, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=forwarded)

    assert login.client_ip(request) == expected


def test_the_rest_of_the_suite_signs_in_with_force_login_or_the_form(client_for, viewer):
    # force_login bypasses authenticate(); it must keep working under axes.
    assert _signed_in(client_for(viewer))


NEW_PASSWORD = "a-new-long-passphrase"


def _change_own_password(client, old):
    return client.post(
        reverse("admin:password_change"),
        {"old_password": old, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        REMOTE_ADDR="10.0.0.1",
    )


def test_wrong_old_passwords_on_the_admin_password_page_count_toward_the_lockout(client_for, admin, settings):
    settings.AXES_FAILURE_LIMIT = 3
    client = client_for(admin)
    responses = [_change_own_password(client, "guess") for _ in range(3)]

    assert [r.status_code for r in responses] == [200, 200, 429]
    assert "Too many failed sign-ins" in responses[-1].content.decode()
    locked = _change_own_password(client, PASSWORD)  # the right one is refused too
    assert locked.status_code == 429
    assert not admin.__class__.objects.get(pk=admin.pk).check_password(NEW_PASSWORD)
    event = AuditEvent.objects.get(action="auth.lockout")
    assert (event.source, event.after["username"]) == (AuditSource.ADMIN, admin.username)
    assert _sign_in(client.__class__(), admin.username, PASSWORD).status_code == 429


def test_the_admin_password_page_still_changes_the_password(client_for, admin):
    response = _change_own_password(client_for(admin), PASSWORD)

    assert response.status_code == 302
    assert admin.__class__.objects.get(pk=admin.pk).check_password(NEW_PASSWORD)
