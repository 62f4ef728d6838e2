from django.core.management.base import BaseCommand, CommandError

from controlplane.audit import verify_chain


class Command(BaseCommand):
    help = (
        "Verify the audit log's hash chain. Exits non-zero and names the first broken "
        "row when any row was altered or removed."
    )

    def handle(self, *args, **options):
        checked, problem = verify_chain()
        if problem is not None:
            raise CommandError(f"Audit chain broken at {problem} ({checked} rows verified before it).")
        self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {checked} rows verified."))
