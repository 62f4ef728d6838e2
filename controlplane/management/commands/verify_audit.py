from django.core.management.base import BaseCommand, CommandError

from controlplane import anchors
from controlplane.audit import verify_chain
from controlplane.auditkeys import AuditKeyError


class Command(BaseCommand):
    help = (
        "Verify the audit log: its hash chain, each row's MAC with the audit keys, the chain "
        "head, and (with --anchor) that the chain still holds every anchor in the given files. "
        "Exits non-zero and names the first problem when any row was altered, removed, "
        "forged or signed with an unknown key, or the chain ends before an anchor."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--anchor", action="append", default=[], metavar="FILE",
            help="An anchor file (JSON Lines, from audit_anchor or beat); repeat for several.",
        )

    def handle(self, *args, anchor, **options):
        try:
            taken = [a for path in anchor for a in anchors.read(path)]
            report = verify_chain(taken)
        except (AuditKeyError, anchors.AnchorError) as exc:
            raise CommandError(str(exc)) from None
        if report.problem is not None:
            raise CommandError(
                f"Audit chain broken at {report.problem} ({report.checked} rows verified before it)."
            )
        signed = ", ".join(f"{count} with key {kid}" for kid, count in sorted(report.kids.items()))
        line = f"Audit chain intact: {report.checked} rows verified"
        line += f" ({signed})." if signed else "."
        if taken:
            line += f" It holds all {report.anchors} anchors given."
        self.stdout.write(self.style.SUCCESS(line))
        if report.unsigned:
            self.stdout.write(self.style.WARNING(
                f"Rows 1..{report.unsigned} carry no MAC: they were written before the keyed chain. "
                f"Their hashes are covered by the MAC of row {report.unsigned + 1} (the seal), so they "
                "cannot be changed unnoticed now; but who wrote them was not checked with a key."
            ))
        if not taken:
            self.stdout.write(
                "No anchor given: rows removed from the end together with the chain head would not "
                "be noticed. Pass --anchor FILE (e.g. the beat's anchors) to check that too."
            )
