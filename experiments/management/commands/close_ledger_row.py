from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError

from controlplane.models import AuditSource
from experiments import ledger
from experiments.models import Compensation


class Command(BaseCommand):
    help = (
        "Close a stuck ledger row without reverting it (no AWS call), with a reason; audited as "
        "drill.ledger_row_closed by --user, who must hold the admin role. The reaper then ends its drill."
    )

    def add_arguments(self, parser):
        parser.add_argument("row", type=int, help="the ledger row's id (shown on the drill page)")
        parser.add_argument("--reason", required=True)
        parser.add_argument("--user", required=True, help="the admin closing it (named in the audit log)")

    def handle(self, *args, row, reason, user, **options):
        actor = get_user_model().objects.filter(username=user, is_active=True).first()
        if actor is None:
            raise CommandError(f"No active user {user!r}.")
        if not Compensation.objects.filter(pk=row).exists():
            raise CommandError(f"No ledger row {row}.")
        try:
            closed = ledger.close_ledger_row(row, actor, reason, source=AuditSource.COMMAND)
        except (PermissionDenied, ValidationError) as exc:
            raise CommandError(" ".join(getattr(exc, "messages", [str(exc)]))) from exc
        if not closed:
            raise CommandError(f"Ledger row {row} is not open; nothing done.")
        self.stdout.write(f"Ledger row {row} closed without a revert.")
