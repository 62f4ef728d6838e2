from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from regions import inventory


class Command(BaseCommand):
    help = "Export the inventory in the import format (docs/INVENTORY.md)."

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=("yaml", "json"), default=None)
        parser.add_argument(
            "-o", "--output", help="write to this file (default: standard output)"
        )

    def handle(self, *args, **options):
        fmt = options["format"]
        output = options["output"]
        if fmt is None:
            fmt = "json" if output and output.lower().endswith(".json") else "yaml"
        text = inventory.dump(inventory.export_inventory(), fmt)
        if not output:
            self.stdout.write(text, ending="")
            return
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"{output}: cannot write: {exc.strerror or exc}") from None
        self.stderr.write(f"Inventory written to {output}")
