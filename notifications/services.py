"""Every change to channels and deliveries goes through this module: managing channels
(validated here, once: the console's form, the API and `add_channel` only parse), turning
a published event into one delivery per channel that wants it, and delivering.

Delivering is idempotent: a delivery is claimed by a conditional UPDATE (pending ->
sending) before anything is sent and marked delivered by another (sending -> delivered),
so a task message run twice sends once. A claim older than CLAIM_STALE (a worker killed
mid-send) may be taken again: then, and only then, the receiver may get it twice.
"""

import logging
import re
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from controlplane import audit
from controlplane.celery import PUBLISH_ERRORS
from controlplane.celery import app as celery_app
from controlplane.events import EventKind
from controlplane.models import AuditSource
from notifications import secrets, senders
from notifications.models import TEST_KIND, Channel, ChannelKind, Delivery, DeliveryState, EmailOptIn, Event

log = logging.getLogger(__name__)

DELIVER_TASK = "notifications.tasks.deliver"
MANAGE = "notifications.manage_channels"
# Longer than any send can take (the HTTP, SNS or SMTP timeouts), so a live claim is never taken.
CLAIM_STALE = timedelta(minutes=5)
SNS_TOPIC_ARN = re.compile(
    r"^arn:aws[a-z-]*:sns:[a-z]{2,4}(-[a-z]+)?-[a-z]+-\d{1,2}:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$"
)
ALL = "all"
# The most deliveries one beat pass sends again (the oldest first; the next pass goes on).
REDISPATCH_BATCH = 500


# --- channels ------------------------------------------------------------------------


# Who `manage.py add_channel` acts as: whoever runs manage.py holds the machine already.
COMMAND_ACTOR = "command"


def _check_manager(user):
    if user == COMMAND_ACTOR:
        return
    if not user.has_perm(MANAGE):
        raise PermissionDenied("Managing notification channels needs the admin role.")


def parse_events(events):
    """(all_events, [kinds]) from "all" or a list of EventKind values; raises
    ValidationError on the events field."""
    if events == ALL:
        return True, []
    if not isinstance(events, list | tuple) or not events:
        raise ValidationError({"events": f'Give "{ALL}" or a non-empty list of event kinds.'})
    unknown = [str(kind)[:50] for kind in events if kind not in EventKind.values]
    if unknown:
        raise ValidationError({"events": f"Unknown event kind(s): {', '.join(unknown)}. "
                                         f"Known: {', '.join(EventKind.values)}."})
    return False, sorted(set(events))


def _check_target(kind, target):
    """{target: message} or {}; the target as it may be stored."""
    if kind == ChannelKind.WEBHOOK:
        if target.startswith(secrets.ENV_PREFIX):
            if not secrets.ENV_NAME.fullmatch(target.removeprefix(secrets.ENV_PREFIX)):
                return {"target": "env:NAME needs an environment variable name (A-Z, 0-9, _)."}
            return {}
        if not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", target):
            return {"target": "A webhook target is an http(s):// URL, or env:NAME to read it "
                              "from a variable."}
    elif kind == ChannelKind.SNS:
        if not SNS_TOPIC_ARN.fullmatch(target):
            return {"target": "An SNS target is a topic ARN: arn:aws:sns:REGION:ACCOUNT:NAME."}
    elif kind == ChannelKind.EMAIL and target:
        return {"target": "An email channel sends to the users who opted in: leave target empty."}
    return {}


def create_channel(user, *, name, kind, target, events, slack=False, source=AuditSource.CONSOLE,
                   request_id=""):
    """Make a channel (audit `notification.channel_created`, the target masked). Raises
    PermissionDenied, or ValidationError with a message per field; nothing is written then."""
    _check_manager(user)
    errors = {}
    name = (name or "").strip()
    target = (target or "").strip()
    if not name:
        errors["name"] = "Name the channel."
    elif len(name) > 100:
        errors["name"] = "At most 100 characters."
    elif Channel.objects.filter(name=name).exists():
        errors["name"] = f"A channel named {name} exists."
    if kind not in ChannelKind.values:
        errors["kind"] = f"kind must be one of {', '.join(ChannelKind.values)}."
    else:
        errors |= _check_target(kind, target)
        if kind != ChannelKind.WEBHOOK and slack:
            errors["slack"] = "The Slack body is for webhooks only."
    if len(target) > 2000:
        errors["target"] = "At most 2000 characters."
    try:
        all_events, kinds = parse_events(events)
    except ValidationError as exc:
        errors |= {field: messages[0] for field, messages in exc.message_dict.items()}
    if errors:
        raise ValidationError(errors)
    shown, stored = target, ""
    if kind == ChannelKind.WEBHOOK and not target.startswith(secrets.ENV_PREFIX):
        shown, stored = secrets.mask(target), secrets.encrypt(target)
    with transaction.atomic():
        channel = Channel.objects.create(
            name=name, kind=kind, target=shown, target_secret=stored, all_events=all_events,
            events=kinds, slack=bool(slack), created_by=audit.actor_name(user),
        )
        audit.record(user, "notification.channel_created", source=source, obj=channel,
                     request_id=request_id, after=channel_json(channel))
    return channel


def set_enabled(user, channel, enabled, *, source=AuditSource.CONSOLE, request_id=""):
    """Pause or resume a channel (audit `notification.channel_updated`); True if it changed."""
    _check_manager(user)
    with transaction.atomic():
        changed = Channel.objects.filter(pk=channel.pk, enabled=not enabled).update(enabled=enabled)
        if changed:
            audit.record(user, "notification.channel_updated", source=source, obj=channel,
                         request_id=request_id, before={"enabled": not enabled}, after={"enabled": enabled})
    return bool(changed)


def delete_channel(user, channel, *, source=AuditSource.CONSOLE, request_id=""):
    """Delete a channel and its deliveries (audit `notification.channel_deleted`)."""
    _check_manager(user)
    with transaction.atomic():
        audit.record(user, "notification.channel_deleted", source=source, obj=channel,
                     request_id=request_id, before=channel_json(channel))
        channel.delete()


def channel_json(channel):
    """A channel as the API and the audit log show it: the target masked, never the URL."""
    return {
        "id": channel.pk,
        "name": channel.name,
        "kind": channel.kind,
        "target": channel.target,
        "events": ALL if channel.all_events else list(channel.events),
        "slack": channel.slack,
        "enabled": channel.enabled,
    }


# --- email opt-in --------------------------------------------------------------------


def set_email_opt_in(user, wanted, *, source=AuditSource.CONSOLE, request_id=""):
    """A user asks for (or stops) the email channels' events; audited. True if it changed."""
    with transaction.atomic():
        if wanted:
            _, changed = EmailOptIn.objects.get_or_create(user=user)
        else:
            changed = EmailOptIn.objects.filter(user=user).delete()[0] > 0
        if changed:
            audit.record(user, "notification.email_opted_in" if wanted else "notification.email_opted_out",
                         source=source, obj=user, object_type="auth.user", request_id=request_id,
                         after={"email": user.email})
    return changed


# --- events into deliveries ----------------------------------------------------------


def on_event(sender, kind, summary, payload, **kwargs):
    """The receiver of controlplane.events.event_happened (connected in apps.py): one
    Event row and one delivery per enabled channel that wants the kind, each dispatched
    once this transaction commits. Nothing is stored when no channel wants it."""
    channels = [c for c in Channel.objects.filter(enabled=True) if c.wants(kind)]
    if not channels:
        return []
    with transaction.atomic():
        event = Event.objects.create(kind=kind, summary=summary[:500], payload=payload)
        deliveries = Delivery.objects.bulk_create([Delivery(event=event, channel=c) for c in channels])
        ids = [d.pk for d in deliveries]
        transaction.on_commit(lambda: [dispatch(pk) for pk in ids])
    return ids


def send_test(user, channel, *, source=AuditSource.CONSOLE, request_id=""):
    """An admin's test message to one channel, whatever its filter (audit
    `notification.test_requested`); returns the delivery."""
    _check_manager(user)
    with transaction.atomic():
        event = Event.objects.create(
            kind=TEST_KIND, summary=f"Test message from {audit.actor_name(user)}",
            payload={"test": True},
        )
        delivery = Delivery.objects.create(event=event, channel=channel)
        audit.record(user, "notification.test_requested", source=source, obj=channel, request_id=request_id,
                     after={"delivery": delivery.pk})
        transaction.on_commit(lambda: dispatch(delivery.pk))
    return delivery


def dispatch(delivery_id):
    """Send the delivery's task message (by name). Never raises: with the broker down
    the delivery stays pending, shown so on its channel's page."""
    try:
        celery_app.send_task(DELIVER_TASK, args=[delivery_id], queue=settings.NOTIFY_QUEUE)
    except PUBLISH_ERRORS as exc:
        log.warning("delivery %s: the broker did not take it (%s)", delivery_id, exc)
        Delivery.objects.filter(pk=delivery_id, state=DeliveryState.PENDING).update(
            last_error=f"The task broker did not take the message ({type(exc).__name__})."
        )


def redispatch(now=None):
    """Beat: send again the task message of every delivery that no worker has tried
    NOTIFY_REDISPATCH_AFTER_SECONDS after it was made (the broker refused it, or lost
    it), so that no event is silently dropped. Harmless beside a message that is only
    late: the claim lets one run send. Returns how many were sent again."""
    now = now or timezone.now()
    stuck = list(
        Delivery.objects.filter(
            state=DeliveryState.PENDING, attempts=0,
            created_at__lt=now - timedelta(seconds=settings.NOTIFY_REDISPATCH_AFTER_SECONDS),
        ).order_by("pk").values_list("pk", flat=True)[:REDISPATCH_BATCH]
    )
    for delivery_id in stuck:
        dispatch(delivery_id)
    return len(stuck)


# --- delivering ----------------------------------------------------------------------


def _claim(delivery_id, now):
    stale = Q(state=DeliveryState.SENDING, claimed_at__lt=now - CLAIM_STALE)
    claimable = Q(state=DeliveryState.PENDING) | stale
    return Delivery.objects.filter(claimable, pk=delivery_id).update(
        state=DeliveryState.SENDING, claimed_at=now, attempts=F("attempts") + 1
    )


def _finish(delivery, state, actor, *, detail="", error=""):
    with transaction.atomic():
        done = Delivery.objects.filter(pk=delivery.pk, state=DeliveryState.SENDING).update(
            state=state, last_error=error[:2000], result=detail[:300],
            delivered_at=timezone.now() if state == DeliveryState.DELIVERED else None,
        )
        if done:
            action = "notification.delivered" if state == DeliveryState.DELIVERED else "notification.failed"
            audit.record(actor, action, source=AuditSource.SYSTEM, obj=delivery.channel,
                         after={"delivery": delivery.pk, "event": delivery.event.kind,
                                "summary": delivery.event.summary[:200], "attempts": delivery.attempts,
                                **({"result": detail} if detail else {"error": error[:500]})})
    return bool(done)


def deliver(delivery_id, *, final, actor="notifications"):
    """Send one delivery (the task `notifications.tasks.deliver` calls this). Returns
    quietly when it is gone or not ours to send (delivered, failed, claimed by a live
    run). A transient error is raised again for the task to retry, unless this was the
    `final` try: then, as on a permanent error, the delivery fails (audited)."""
    now = timezone.now()
    if not _claim(delivery_id, now):
        return None
    delivery = Delivery.objects.select_related("event", "channel").get(pk=delivery_id)
    try:
        detail = senders.send(delivery.event, delivery.channel)
    except senders.Transient as exc:
        if final:
            _finish(delivery, DeliveryState.FAILED, actor, error=f"{exc} (after {delivery.attempts} tries)")
            return DeliveryState.FAILED
        Delivery.objects.filter(pk=delivery_id, state=DeliveryState.SENDING).update(
            state=DeliveryState.PENDING, last_error=str(exc)[:2000], claimed_at=None
        )
        raise
    except senders.Permanent as exc:
        _finish(delivery, DeliveryState.FAILED, actor, error=str(exc))
        return DeliveryState.FAILED
    _finish(delivery, DeliveryState.DELIVERED, actor, detail=detail)
    return DeliveryState.DELIVERED
