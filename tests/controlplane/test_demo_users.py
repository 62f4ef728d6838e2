import json

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from controlplane.roles import ROLES

pytestmark = pytest.mark.django_db


def test_demo_users_get_one_role_each_and_keep_their_passwords(settings, tmp_path, capsys):
    settings.VAR_DIR = tmp_path
    call_command("demo_users")
    saved = json.loads((tmp_path / "demo-users.json").read_text())
    out = capsys.readouterr().out
    for role in ROLES:
        user = User.objects.get(username=role)
        assert user.check_password(saved[role])
        assert list(user.groups.values_list("name", flat=True)) == [role]
        assert saved[role] in out
    call_command("demo_users")
    assert json.loads((tmp_path / "demo-users.json").read_text()) == saved
    assert User.objects.get(username="admin").is_staff
    assert not User.objects.get(username="operator").is_staff
