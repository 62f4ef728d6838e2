import json
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from controlplane.models import AuditSource
from experiments.interop import chaostoolkit


class Command(BaseCommand):
    help = (
        "Create a scenario from a Chaos Toolkit experiment (JSON) whose actions the fault library "
        "knows; audited as scenario.created by --user, who must be allowed to add scenarios. Every "
        "action that cannot be mapped is named and nothing is created (docs/DRILLS.md)."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="the experiment, a JSON file")
        parser.add_argument("--user", required=True, help="the operator importing it (audited)")
        parser.add_argument("--slug", default="", help="the new scenario's slug (default: the experiment's)")

    def handle(self, *args, file, user, slug, **options):
        actor = get_user_model().objects.filter(username=user, is_active=True).first()
        if actor is None:
            raise CommandError(f"No active user {user!r}.")
        try:
            experiment = json.loads(Path(file).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise CommandError(f"Cannot read {file} as JSON: {exc}") from exc
        try:
            scenario = chaostoolkit.import_experiment(
                experiment, actor, source=AuditSource.COMMAND, slug=slug
            )
        except PermissionDenied as exc:
            raise CommandError(str(exc)) from exc
        except chaostoolkit.ImportRefused as exc:
            lines = [f"{field}: {message}" for field, messages in exc.errors.items() for message in messages]
            raise CommandError("Nothing imported.\n" + "\n".join(lines)) from exc
        self.stdout.write(f"Scenario {scenario.slug} created ({scenario.get_fault_kind_display()}).")
