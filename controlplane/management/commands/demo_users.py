import json
import secrets

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand
from django.db import transaction

from controlplane import audit
from controlplane.models import AuditSource
from controlplane.roles import ADMIN, ROLES


class Command(BaseCommand):
    help = (
        "Create one demo user per role (for the embedded demo only), with passwords "
        "generated once and kept in var/demo-users.json, and print them."
    )

    def handle(self, *args, **options):
        path = settings.VAR_DIR / "demo-users.json"
        saved = json.loads(path.read_text()) if path.exists() else {}
        with transaction.atomic():
            for role in ROLES:
                username = role
                password = saved.get(username) or secrets.token_urlsafe(9)
                user, created = User.objects.get_or_create(username=username)
                if created or username not in saved:
                    user.set_password(password)
                    user.is_staff = role == ADMIN
                    user.save()
                    user.groups.set([Group.objects.get(name=role)])
                    audit.record("setup", "user.create", source=AuditSource.COMMAND, obj=user,
                                 after={"roles": [role], "is_staff": user.is_staff, "demo": True})
                saved[username] = password
        path.write_text(json.dumps(saved, indent=2))
        path.chmod(0o600)
        self.stdout.write("Demo users (role = username):")
        for role in ROLES:
            self.stdout.write(f"  {role:<9} password: {saved[role]}")
