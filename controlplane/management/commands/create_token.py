from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from controlplane import audit
from controlplane.api import issue_token
from controlplane.models import AuditSource


class Command(BaseCommand):
    help = "Create a personal API token for USERNAME and print it (it is stored hashed)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="What the token is for.")

    def handle(self, *args, username, name, **options):
        user = User.objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"No active user {username!r}.")
        with transaction.atomic():
            token, plaintext = issue_token(user, name)
            audit.record("system", "token.create", source=AuditSource.COMMAND, obj=token,
                         after={"user": username, "name": name, "prefix": token.prefix})
        self.stdout.write(plaintext)
