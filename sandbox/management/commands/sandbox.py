"""manage.py sandbox: run the local multi-region world in the foreground."""

import signal
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from sandbox import world


class Command(BaseCommand):
    help = (
        "Run the sandbox (AWS APIs, regional app servers, health checkers, global "
        "endpoints, replication) until Ctrl-C or SIGTERM; writes settings.SANDBOX_STATE_FILE."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--aws-port", type=int, default=4566, help="port of the AWS endpoint (0: any free port)"
        )
        parser.add_argument(
            "--base-port",
            type=int,
            default=4600,
            help="first port for the regional app servers, then the global "
            "endpoints, one each (0: free ports)",
        )
        parser.add_argument(
            "--time-scale",
            type=float,
            default=1.0,
            help="multiplies health-check intervals (0.1: 10 s becomes 1 s)",
        )
        parser.add_argument("--topology", default=None, help="topology YAML (default: sandbox/topology.yaml)")
        parser.add_argument("--state-file", default=str(settings.SANDBOX_STATE_FILE))

    def handle(self, *args, **options):
        if options["time_scale"] <= 0:
            raise CommandError("--time-scale must be positive")
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        started = time.monotonic()
        try:
            sandbox = world.start(
                options["topology"],
                options["time_scale"],
                aws_port=options["aws_port"],
                base_port=options["base_port"],
                state_file=options["state_file"],
            )
        except OSError as exc:
            raise CommandError(f"cannot start the sandbox: {exc}") from exc
        self.stdout.write(
            f"sandbox up in {time.monotonic() - started:.1f}s (time scale {sandbox.time_scale})"
        )
        self.stdout.write(f"  AWS endpoint  {sandbox.aws_endpoint}")
        for name, app in sandbox.state["applications"].items():
            self.stdout.write(
                f"  {name:<10} global {app['global_endpoint']}  (architecture {app['architecture']})"
            )
            for region, url in app["regions"].items():
                self.stdout.write(f"  {'':<10} {region:<14} {url}")
        self.stdout.write(f"  state file    {options['state_file']}")
        self.stdout.flush()
        try:
            stop.wait()
        finally:
            self.stdout.write("stopping the sandbox")
            sandbox.stop()
