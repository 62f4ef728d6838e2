from axes.models import AccessAttempt
from axes.utils import reset
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from controlplane import audit
from controlplane.models import AuditSource


class Command(BaseCommand):
    help = (
        "Lift sign-in lockouts (django-axes) before their cool-off ends: forget the failed "
        "attempts of a username, from an address, or all of them. Audited (auth.unlock). "
        "--list shows the failed attempts counted now."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", dest="usernames", action="append", default=[], help="repeatable")
        parser.add_argument(
            "--ip", dest="addresses", action="append", default=[], metavar="ADDRESS", help="repeatable"
        )
        parser.add_argument("--all", dest="everything", action="store_true", help="every one")
        parser.add_argument("--list", dest="show", action="store_true", help="list; change nothing")
        parser.add_argument("--actor", default="system", help="name recorded in the audit log")

    def handle(self, *args, usernames, addresses, everything, show, actor, **options):
        if show:
            for attempt in AccessAttempt.objects.order_by("-attempt_time"):
                self.stdout.write(
                    f"{attempt.attempt_time:%Y-%m-%d %H:%M:%S}  {attempt.failures_since_start:>4} "
                    f"failure(s)  username={attempt.username!r}  address={attempt.ip_address}"
                )
            return
        if not (usernames or addresses or everything):
            raise CommandError("Give --username NAME, --ip ADDRESS or --all (or --list).")
        if everything:
            targets = [("all", "all")]
        else:
            targets = [("username", u) for u in usernames] + [("ip_address", a) for a in addresses]
        total = 0
        with transaction.atomic():
            for kind, value in targets:
                if kind == "all":
                    removed = AccessAttempt.objects.all().delete()[0]
                elif kind == "username":
                    removed = reset(username=value)
                else:
                    removed = reset(ip=value)
                total += removed
                audit.record(
                    actor,
                    "auth.unlock",
                    source=AuditSource.COMMAND,
                    object_type="auth.user" if kind == "username" else "axes.accessattempt",
                    object_repr=value,
                    after={kind: value, "attempts_removed": removed},
                )
        self.stdout.write(f"Unlocked: {total} failed-attempt record(s) removed.")
