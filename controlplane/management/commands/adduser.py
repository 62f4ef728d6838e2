import getpass
import os

from django.contrib.auth.models import Group, User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from controlplane import audit
from controlplane.models import AuditSource
from controlplane.roles import ADMIN, ROLES


class Command(BaseCommand):
    help = (
        "Create a user with a role (viewer, operator, approver, admin). The password comes "
        "from the CONTROLPLANE_PASSWORD environment variable, or a prompt."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=ROLES, action="append",
                            help="Repeat to give several roles.")
        parser.add_argument("--email", default="")
        parser.add_argument("--update", action="store_true",
                            help="If the user exists, set its roles and password instead of failing.")

    def handle(self, *args, username, role, email, update, **options):
        existing = User.objects.filter(username=username).first()
        if existing and not update:
            raise CommandError(f"User {username!r} already exists (use --update to change it).")
        password = os.environ.get("CONTROLPLANE_PASSWORD") or self._prompt()
        user = existing or User(username=username, email=email)
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise CommandError("Password rejected: " + " ".join(exc.messages)) from None

        with transaction.atomic():
            before = None
            if existing:
                before = {"roles": sorted(g.name for g in existing.groups.all()),
                          "is_staff": existing.is_staff}
            user.set_password(password)
            user.is_staff = ADMIN in role
            if email:
                user.email = email
            user.save()
            user.groups.set(Group.objects.filter(name__in=role))
            audit.record(
                "system",
                "user.update" if existing else "user.create",
                source=AuditSource.COMMAND,
                obj=user,
                before=before,
                after={"roles": sorted(role), "is_staff": user.is_staff},
            )
        verb = "Updated" if existing else "Created"
        self.stdout.write(f"{verb} user {username} with role(s): {', '.join(sorted(role))}")

    def _prompt(self):
        if not os.isatty(0):
            raise CommandError("Set CONTROLPLANE_PASSWORD or run in a terminal to be prompted.")
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Password (again): "):
            raise CommandError("The passwords do not match.")
        return first
