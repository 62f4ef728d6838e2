"""Signed-in users and their permissions read through the shared cache
(controlplane/authcache.py): cheaper requests, and never a stale role or session."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from controlplane.authcache import GENERATION_KEY
from controlplane.roles import APPROVER

APPROVALS = reverse("experiments:approvals")


def queries(client, url):
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    return response, [q["sql"] for q in captured.captured_queries]


def test_the_first_request_reads_the_user_and_its_permissions_later_ones_do_not(client, approver):
    client.force_login(approver)
    cache.delete(GENERATION_KEY)  # as after a restart of the cache

    first, cold = queries(client, APPROVALS)
    second, warm = queries(client, APPROVALS)

    assert first.status_code == second.status_code == 200
    # The user row, then its own and its groups' permissions; never the session.
    extra = [sql for sql in cold if '"auth_' in sql and sql not in warm]
    assert len(extra) == len(cold) - len(warm) == 3
    assert 'FROM "auth_user" WHERE' in extra[0]
    assert all('"auth_permission"' in sql for sql in extra[1:])
    assert not [sql for sql in cold + warm if '"django_session"' in sql]


def test_a_role_taken_away_holds_at_the_next_request(client, approver):
    client.force_login(approver)
    assert client.get(APPROVALS).status_code == 200

    approver.groups.remove(Group.objects.get(name=APPROVER))

    assert client.get(APPROVALS).status_code == 403


def test_a_permission_taken_from_the_role_holds_at_the_next_request(client, approver):
    client.force_login(approver)
    assert client.get(APPROVALS).status_code == 200

    group = Group.objects.get(name=APPROVER)
    group.permissions.remove(Permission.objects.get(codename="approve_drill"))

    assert client.get(APPROVALS).status_code == 403


def test_a_deactivated_user_is_signed_out_at_the_next_request(client, approver):
    client.force_login(approver)
    assert client.get(APPROVALS).status_code == 200

    approver.is_active = False
    approver.save()

    response = client.get(APPROVALS)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_a_changed_password_signs_out_the_other_sessions(client, approver):
    client.force_login(approver)
    assert client.get(APPROVALS).status_code == 200

    approver.set_password("a-new-and-long-passphrase")
    approver.save()

    assert client.get(APPROVALS).status_code == 302


def test_signing_out_ends_the_session_for_whoever_holds_its_cookie(client, approver):
    client.force_login(approver)
    cookie = client.cookies["sessionid"].value
    assert client.get(APPROVALS).status_code == 200

    client.post(reverse("logout"))
    client.cookies["sessionid"] = cookie  # the old cookie, replayed

    assert client.get(APPROVALS).status_code == 302


def test_a_sign_in_does_not_make_every_entry_stale(client, approver, viewer):
    client.force_login(approver)
    client.get(APPROVALS)
    generation = cache.get(GENERATION_KEY)

    client.force_login(viewer)  # saves viewer.last_login

    assert cache.get(GENERATION_KEY) == generation


def test_an_evicted_generation_never_brings_back_older_entries(client, approver):
    client.force_login(approver)
    assert client.get(APPROVALS).status_code == 200
    approver.groups.clear()
    cache.delete(GENERATION_KEY)  # evicted: a new one is made, not the one before

    assert client.get(APPROVALS).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_migrations_make_the_entries_stale():
    """Migrations change roles through historical models, which send no signal that
    names Group or Permission: post_migrate moves the generation on."""
    before = cache.get(GENERATION_KEY)

    call_command("migrate", verbosity=0)

    assert cache.get(GENERATION_KEY) not in (None, before)
