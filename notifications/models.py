"""Channels (where events go), the events that happened, one delivery per event and
channel, and the users who want email."""

from django.conf import settings
from django.db import models
from django.urls import reverse

from controlplane.choices import ColouredChoices
from controlplane.events import EventKind


class ChannelKind(models.TextChoices):
    WEBHOOK = "webhook", "Webhook"
    SNS = "sns", "Amazon SNS"
    EMAIL = "email", "Email"


class DeliveryState(ColouredChoices):
    PENDING = "pending", "Pending", "blue"
    SENDING = "sending", "Sending", "yellow"
    DELIVERED = "delivered", "Delivered", "green"
    FAILED = "failed", "Failed", "red"


class Channel(models.Model):
    """One place events are sent. `target_secret` holds a webhook URL encrypted
    (notifications/secrets.py); `target` what may be shown: an SNS topic ARN, the name
    of the environment variable holding a webhook URL (`env:NAME`), or the masked URL."""

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    target = models.CharField(max_length=300, blank=True)
    target_secret = models.TextField(blank=True, help_text="Fernet token of the webhook URL")
    all_events = models.BooleanField(default=False)
    events = models.JSONField(default=list, blank=True, help_text="EventKind values, when not all_events")
    slack = models.BooleanField(default=False, help_text="Webhook body as a Slack incoming webhook's")
    enabled = models.BooleanField(default=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        permissions = [("manage_channels", "Manage notification channels")]

    def __str__(self):
        return f"{self.name} ({self.kind})"

    def get_absolute_url(self):
        return reverse("notifications:detail", args=[self.pk])

    def wants(self, kind):
        return self.enabled and (self.all_events or kind in self.events)

    def event_labels(self):
        if self.all_events:
            return ["all events"]
        return [EventKind(kind).label for kind in self.events if kind in EventKind.values]


# An admin's "Send test" (notifications.services.send_test): not an EventKind, no filter applies.
TEST_KIND = "test"
EVENT_CHOICES = [*EventKind.choices, (TEST_KIND, "Test message")]


class Event(models.Model):
    kind = models.CharField(max_length=32, choices=EVENT_CHOICES)
    summary = models.CharField(max_length=500)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"{self.kind}: {self.summary}"


class Delivery(models.Model):
    """One event to one channel. Its state moves by conditional UPDATE only
    (notifications/services.py `deliver`): that is what makes a task run twice send once."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="deliveries")
    state = models.CharField(max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    result = models.CharField(max_length=300, blank=True, help_text="What the receiver answered")
    claimed_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event", "channel"], name="delivery_event_channel"),
        ]
        indexes = [
            # the channel page's latest deliveries (channel_id = ? ORDER BY id DESC)
            models.Index(fields=["channel", "-id"], name="delivery_channel_recent"),
        ]

    def __str__(self):
        return f"{self.event.kind} -> {self.channel.name}: {self.state}"

    @property
    def state_colour(self):
        return DeliveryState.colour_of(self.state)


class EmailOptIn(models.Model):
    """A user who wants the email channels' events (sent to their address)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                related_name="notification_opt_in")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return str(self.user)
