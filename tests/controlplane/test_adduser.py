import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from controlplane.models import AuditEvent

pytestmark = pytest.mark.django_db
GOOD = "a-long-and-unusual-passphrase"


def test_adduser_creates_a_user_with_the_role_and_password_from_the_environment(monkeypatch):
    monkeypatch.setenv("CONTROLPLANE_PASSWORD", GOOD)
    call_command("adduser", "olga", "--role", "operator")
    user = User.objects.get(username="olga")
    assert user.check_password(GOOD)
    assert list(user.groups.values_list("name", flat=True)) == ["operator"]
    assert user.has_perm("regions.run_discovery")
    assert not user.has_perm("controlplane.view_auditevent")
    assert not user.is_staff
    event = AuditEvent.objects.get(action="user.create")
    assert event.object_id == str(user.pk)
    assert event.after == {"roles": ["operator"], "is_staff": False}


def test_admin_role_gets_staff_access_to_the_django_admin(monkeypatch):
    monkeypatch.setenv("CONTROLPLANE_PASSWORD", GOOD)
    call_command("adduser", "ada", "--role", "admin")
    assert User.objects.get(username="ada").is_staff


def test_adduser_rejects_an_unknown_role(monkeypatch):
    monkeypatch.setenv("CONTROLPLANE_PASSWORD", GOOD)
    with pytest.raises(CommandError):
        call_command("adduser", "x", "--role", "root")
    assert not User.objects.exists()


def test_adduser_rejects_a_weak_password_and_creates_nothing(monkeypatch):
    monkeypatch.setenv("CONTROLPLANE_PASSWORD", "123")
    with pytest.raises(CommandError, match="Password rejected"):
        call_command("adduser", "weak", "--role", "viewer")
    assert not User.objects.exists()
    assert not AuditEvent.objects.exists()


def test_adduser_refuses_an_existing_user_unless_asked_to_update(monkeypatch):
    monkeypatch.setenv("CONTROLPLANE_PASSWORD", GOOD)
    call_command("adduser", "vic", "--role", "viewer")
    with pytest.raises(CommandError, match="already exists"):
        call_command("adduser", "vic", "--role", "admin")
    call_command("adduser", "vic", "--role", "approver", "--update")
    assert list(User.objects.get(username="vic").groups.values_list("name", flat=True)) == ["approver"]
    update = AuditEvent.objects.get(action="user.update")
    assert update.before["roles"] == ["viewer"]


def test_adduser_without_password_or_terminal_fails_clearly(monkeypatch):
    monkeypatch.delenv("CONTROLPLANE_PASSWORD", raising=False)
    monkeypatch.setattr("os.isatty", lambda fd: False)
    with pytest.raises(CommandError, match="CONTROLPLANE_PASSWORD"):
        call_command("adduser", "nopw", "--role", "viewer")
