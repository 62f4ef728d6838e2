from django.core.management.base import BaseCommand

from controlplane.models import AuditSource
from regions import discovery


class Command(BaseCommand):
    help = (
        "Discover applications, stacks and components from AWS by their tags "
        "(docs/DISCOVERY.md) and update the inventory."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--region",
            action="append",
            dest="regions",
            metavar="R",
            help="scan this region (repeatable; default: every region in the inventory)",
        )
        parser.add_argument(
            "--application",
            action="append",
            dest="applications",
            metavar="NAME",
            help="only this application (repeatable)",
        )
        parser.add_argument("--actor", default="system", help="name recorded in the audit log")
        parser.add_argument(
            "--prune",
            action="store_true",
            help="delete components of discovered stacks that are no longer found "
            "(only when the scan finished without warnings)",
        )

    def handle(self, *args, **options):
        report = discovery.run_discovery(
            actor=options["actor"],
            regions=options["regions"],
            applications=options["applications"],
            source=AuditSource.COMMAND,
            prune=options["prune"],
        )
        for line in report.lines():
            self.stdout.write(line)
