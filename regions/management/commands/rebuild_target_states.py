from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from regions import monitoring


class Command(BaseCommand):
    help = (
        "Fold the raw health samples of the last --minutes into each target's hysteresis state "
        "(TargetState), through the probe workers' write path: after samples reached the table "
        "another way (a bulk load, a restore). Samples already folded are skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument("--minutes", type=float, default=10.0, help="how far back to read (default 10)")

    def handle(self, *args, minutes, **options):
        if not 0 < minutes <= 7 * 24 * 60:
            raise CommandError("--minutes must be more than 0 and at most a week (10080).")
        read, until = monitoring.fold_stored_samples(timezone.now() - timedelta(minutes=minutes))
        self.stdout.write(f"Folded {read} sample(s) up to {until:%Y-%m-%d %H:%M:%S} UTC.")
