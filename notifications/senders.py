"""Sending one event to one channel: a webhook (JSON, or a Slack incoming webhook's
body), Amazon SNS (through the boto3 factory, so the sandbox's moto receives it in the
demo) or email (Django's mail backends, to the users who opted in).

Each sender returns a short line saying what happened, or raises Transient (worth
another try later: a 5xx or 429, a timeout, a refused connection, a throttled AWS call)
or Permanent (another try would fail alike: a 4xx, an unreadable secret, a missing
topic)."""

import json
import smtplib
import urllib.error
import urllib.request

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mass_mail

from controlplane import aws
from notifications import secrets
from notifications.models import ChannelKind


class Transient(Exception):
    pass


class Permanent(Exception):
    pass


def body_of(event, channel):
    """What the receiver gets: the event as JSON, or Slack's `{"text": ...}`."""
    if channel.slack:
        return {"text": f"[{event.get_kind_display()}] {event.summary}"}
    return {
        "event_id": event.pk,
        "kind": event.kind,
        "summary": event.summary,
        "at": event.created_at.isoformat(),
        "payload": event.payload,
    }


def webhook_url(channel):
    if channel.target.startswith(secrets.ENV_PREFIX):
        return secrets.from_environment(channel.target)
    return secrets.decrypt(channel.target_secret)


def _webhook(event, channel):
    try:
        url = webhook_url(channel)
    except secrets.SecretUnavailable as exc:
        raise Permanent(str(exc)) from exc
    data = json.dumps(body_of(event, channel)).encode()
    request = urllib.request.Request(  # noqa: S310 - the URL's scheme was checked when the channel was made
        url, data=data, method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "controlplane-notifications/1"},
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.NOTIFY_TIMEOUT) as response:  # noqa: S310
            return f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        message = f"HTTP {exc.code} from {secrets.mask(url)}"
        if exc.code >= 500 or exc.code in (408, 429):
            raise Transient(message) from exc
        raise Permanent(message) from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Transient(f"{secrets.mask(url)} unreachable: {reason}") from exc


def topic_region(arn):
    """The region of an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)."""
    return arn.split(":")[3]


def _sns(event, channel):
    sns = aws.client("sns", topic_region(channel.target))
    try:
        answer = sns.publish(
            TopicArn=channel.target,
            Subject=f"[{event.get_kind_display()}] {event.summary}"[:100].replace("\n", " "),
            Message=json.dumps(body_of(event, channel)),
        )
    except aws.ClientError as exc:
        if aws.is_transient(exc):
            raise Transient(str(exc)) from exc
        raise Permanent(str(exc)) from exc
    except aws.BotoCoreError as exc:  # connection and timeout errors, after botocore's own retries
        raise Transient(str(exc)) from exc
    return f"MessageId {answer['MessageId']}"


def opted_in_addresses():
    users = get_user_model().objects.filter(
        notification_opt_in__isnull=False, is_active=True
    ).exclude(email="")
    return sorted(users.values_list("email", flat=True))


def _email(event, channel):
    recipients = opted_in_addresses()
    if not recipients:
        return "nobody has opted in to email"
    body = f"{event.summary}\n\n{json.dumps(event.payload, indent=2, sort_keys=True)}\n"
    subject = f"[{event.get_kind_display()}] {event.summary}"[:200].replace("\n", " ")
    # One message per address: no user sees who else receives them.
    messages = [(subject, body, settings.DEFAULT_FROM_EMAIL, [address]) for address in recipients]
    try:
        send_mass_mail(messages)
    except (smtplib.SMTPException, OSError) as exc:
        raise Transient(f"email not sent: {exc}") from exc
    return f"email to {len(recipients)} user(s)"


SENDERS = {ChannelKind.WEBHOOK: _webhook, ChannelKind.SNS: _sns, ChannelKind.EMAIL: _email}


def send(event, channel):
    return SENDERS[channel.kind](event, channel)
