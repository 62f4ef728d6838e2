"""The API's whole authentication story, through GET /api/v1/status: personal bearer
tokens made by `create_token`, stored hashed, revoked by `revoke_token`."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from controlplane.api import hash_token, issue_token
from controlplane.models import ApiToken, AuditEvent

STATUS = reverse("api-status")


def bearer(client, token):
    return client.get(STATUS, headers={"Authorization": f"Bearer {token}"})


def create_token(username):
    out = StringIO()
    call_command("create_token", username, "--name", "ci", stdout=out)
    return out.getvalue().strip()


def test_no_header_is_401_with_www_authenticate(client, db):
    response = client.get(STATUS)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "Bearer" in response.json()["error"]


@pytest.mark.parametrize(
    "header",
    ["Bearer cp_not-a-real-token", "Bearer ", "Basic dmVyYTpwdw==", "cp_no-scheme", "Token abc"],
)
def test_bad_token_or_scheme_is_401(client, viewer, header):
    issue_token(viewer)

    response = client.get(STATUS, headers={"Authorization": header})

    assert response.status_code == 401
    assert "WWW-Authenticate" in response


def test_viewer_token_reads_the_status(client, viewer):
    token = issue_token(viewer)[1]

    response = bearer(client, token)

    assert response.status_code == 200
    assert "applications" in response.json()


def test_token_of_a_user_without_a_role_is_403(client, outsider):
    token = issue_token(outsider)[1]

    response = bearer(client, token)

    assert response.status_code == 403
    assert response.json()["error"] == "Your role does not allow this action."


def test_token_of_a_deactivated_user_is_401(client, viewer):
    token = issue_token(viewer)[1]
    viewer.is_active = False
    viewer.save()

    assert bearer(client, token).status_code == 401


def test_token_is_stored_hashed(viewer):
    row, plaintext = issue_token(viewer, "laptop")

    assert plaintext.startswith("cp_")
    assert row.digest == hash_token(plaintext) != plaintext
    assert row.prefix == plaintext[:12]
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM controlplane_apitoken")
        stored = [str(value) for values in cursor.fetchall() for value in values]
    assert not any(plaintext in value for value in stored)


def test_create_token_prints_a_token_that_works(client, viewer):
    token = create_token(viewer.username)

    assert token.startswith("cp_")
    assert bearer(client, token).status_code == 200
    assert ApiToken.objects.get(user=viewer).name == "ci"
    assert AuditEvent.objects.filter(action="token.create").exists()


def test_create_token_refuses_an_unknown_user(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        create_token("nobody")


def test_revoke_token_makes_it_fail(client, viewer):
    token = create_token(viewer.username)
    assert bearer(client, token).status_code == 200

    call_command("revoke_token", token[:12], stdout=StringIO())

    assert bearer(client, token).status_code == 401
    assert ApiToken.objects.get(user=viewer).revoked_at is not None
    assert AuditEvent.objects.filter(action="token.revoke").exists()


def test_revoke_all_tokens_of_a_user(client, viewer):
    first, second = create_token(viewer.username), create_token(viewer.username)

    call_command("revoke_token", "--user", viewer.username, stdout=StringIO())

    assert bearer(client, first).status_code == 401
    assert bearer(client, second).status_code == 401


def test_last_used_at_is_recorded(client, viewer):
    row, token = issue_token(viewer)
    assert row.last_used_at is None

    bearer(client, token)

    row.refresh_from_db()
    assert row.last_used_at is not None
    assert timezone.now() - row.last_used_at < timedelta(seconds=30)


def test_last_used_at_is_written_at_most_once_a_minute(client, viewer):
    row, token = issue_token(viewer)
    bearer(client, token)
    row.refresh_from_db()
    first_use = row.last_used_at

    bearer(client, token)

    row.refresh_from_db()
    assert row.last_used_at == first_use
    ApiToken.objects.filter(pk=row.pk).update(last_used_at=first_use - timedelta(minutes=5))
    bearer(client, token)
    row.refresh_from_db()
    assert row.last_used_at > first_use - timedelta(minutes=5)


def test_a_token_does_not_open_the_console(client, viewer):
    token = issue_token(viewer)[1]

    response = client.get(reverse("regions:overview"), headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 302
