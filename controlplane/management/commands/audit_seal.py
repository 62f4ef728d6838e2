from django.core.management.base import BaseCommand, CommandError

from controlplane.audit import ChainBroken, seal_unsigned
from controlplane.auditkeys import AuditKeyError


class Command(BaseCommand):
    help = (
        "Once, after upgrading to the keyed audit chain: check the hash chain of the rows "
        "written before it (they carry no MAC) and append an audit.sealed event, signed with "
        "the current audit key, that covers them. Migration controlplane 0005 does this; run "
        "it yourself only if rows without a MAC end the chain (e.g. restored from an old backup)."
    )

    def handle(self, *args, **options):
        try:
            event = seal_unsigned()
        except ChainBroken as exc:
            raise CommandError(f"Not sealed: {exc}") from None
        except AuditKeyError as exc:
            raise CommandError(str(exc)) from None
        if event is None:
            self.stdout.write("Nothing to seal: the chain is empty or ends in a signed row.")
            return
        first, last = event.after["unsigned_rows"]
        self.stdout.write(self.style.SUCCESS(
            f"Sealed rows {first}..{last} with event seq {event.seq}, signed with key {event.kid}."
        ))
