"""manage.py sandbox_reset: revert every fault in the running sandbox through the AWS
APIs (sandbox/faults.py) and wait until its stacks are healthy again."""

import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from controlplane import aws
from sandbox import faults
from sandbox.remote import RemoteSandbox
from sandbox.world import SANDBOX_CREDENTIALS


class Command(BaseCommand):
    help = (
        "Put the running sandbox back as seeded (faults made by hand with the AWS CLI, or left "
        "by an interrupted drill) and wait until every stack is healthy again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--state-file", default=str(settings.SANDBOX_STATE_FILE))
        parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for health")

    def handle(self, *args, **options):
        try:
            sb = RemoteSandbox(options["state_file"])
        except (OSError, ValueError, KeyError) as exc:
            raise CommandError(
                f"No running sandbox: cannot read {options['state_file']} ({exc}). Start it with ./run.sh."
            ) from exc
        for key, value in SANDBOX_CREDENTIALS.items():
            os.environ.setdefault(key, value)  # boto3 signs with the sandbox's fake keys
        try:
            touched = faults.reset_faults(sb)
            faults.wait_until_healthy(sb, options["timeout"], touched)
        except (aws.ClientError, aws.BotoCoreError) as exc:
            raise CommandError(f"The sandbox at {sb.aws_endpoint} did not answer: {exc}") from exc
        except TimeoutError as exc:
            raise CommandError(str(exc)) from exc
        if touched:
            names = ", ".join(f"{app}/{region}" for app, region in sorted(touched))
            self.stdout.write(f"Reverted faults in {names}; every stack is healthy again.")
        else:
            self.stdout.write("No fault was on; every stack is healthy.")

