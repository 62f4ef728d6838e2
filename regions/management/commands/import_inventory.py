from django.core.management.base import BaseCommand, CommandError

from controlplane.models import AuditSource
from regions import inventory


class Command(BaseCommand):
    help = (
        "Import applications, regions, stacks and components from a YAML or JSON file "
        "(format: docs/INVENTORY.md). All or nothing; running it twice changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="inventory file (.yaml, .yml or .json)")
        parser.add_argument(
            "--prune",
            action="store_true",
            help="remove stacks and components of the file's applications that it does not list",
        )
        parser.add_argument(
            "--actor", default="system", help="name recorded in the audit log (default: system)"
        )

    def handle(self, *args, **options):
        path = options["file"]
        try:
            data = inventory.load_file(path)
            summary = inventory.import_inventory(
                data,
                actor=options["actor"],
                source_name=path,
                prune=options["prune"],
                source=AuditSource.COMMAND,
            )
        except inventory.InventoryError as exc:
            count = len(exc.errors)
            raise CommandError(
                f"{path}: not imported, nothing changed "
                f"({count} error{'s' if count != 1 else ''}):\n{exc}"
            ) from None
        verb = "imported" if summary.changed else "imported; nothing to change"
        self.stdout.write(f"{path}: {verb}")
        for line in summary.lines():
            self.stdout.write(f"  {line}")
