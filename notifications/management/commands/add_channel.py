"""manage.py add_channel KIND [TARGET] [--events KIND ...] [--name NAME] [--slack]:
make a notification channel from the command line (audited as the command)."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from controlplane.models import AuditSource
from notifications import services
from notifications.models import Channel


class Command(BaseCommand):
    help = "Make a notification channel: webhook URL|env:NAME, sns TOPIC_ARN, or email."

    def add_arguments(self, parser):
        parser.add_argument("kind", help="webhook, sns or email")
        parser.add_argument("target", nargs="?", default="",
                            help="URL, env:NAME or topic ARN (none for email)")
        parser.add_argument("--events", nargs="+", default=[services.ALL],
                            help='event kinds, or "all" (the default)')
        parser.add_argument("--name", default="", help="the channel's name (default: KIND N)")
        parser.add_argument("--slack", action="store_true",
                            help="webhook: send a Slack incoming webhook's body")

    def handle(self, *args, kind, target, events, name, slack, **options):
        try:
            channel = services.create_channel(
                services.COMMAND_ACTOR, name=name or f"{kind} {Channel.objects.count() + 1}", kind=kind,
                target=target,
                events=services.ALL if events == [services.ALL] else events, slack=slack,
                source=AuditSource.COMMAND,
            )
        except ValidationError as exc:
            problems = [f"{field}: {' '.join(m)}" for field, m in exc.message_dict.items()]
            raise CommandError("; ".join(problems)) from exc
        shown = services.channel_json(channel)
        self.stdout.write(f"Channel {channel.pk} {channel.name}: {channel.kind} {shown['target']}, "
                          f"events {shown['events']}")
