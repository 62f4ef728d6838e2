from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from controlplane import audit
from controlplane.models import ApiToken, AuditSource


class Command(BaseCommand):
    help = "Revoke API tokens by prefix (the first 12 characters) or all tokens of --user."

    def add_arguments(self, parser):
        parser.add_argument("prefix", nargs="?")
        parser.add_argument("--user")

    def handle(self, *args, prefix, user, **options):
        if not prefix and not user:
            raise CommandError("Give a token prefix or --user USERNAME.")
        tokens = ApiToken.objects.filter(revoked_at__isnull=True)
        tokens = tokens.filter(prefix=prefix) if prefix else tokens.filter(user__username=user)
        with transaction.atomic():
            revoked = list(tokens.select_for_update())
            if not revoked:
                raise CommandError("No active token matches.")
            now = timezone.now()
            for token in revoked:
                ApiToken.objects.filter(pk=token.pk).update(revoked_at=now)
                audit.record("system", "token.revoke", source=AuditSource.COMMAND, obj=token,
                             before={"revoked_at": None}, after={"revoked_at": now})
        self.stdout.write(f"Revoked {len(revoked)} token(s).")
