"""Events become deliveries, and a delivery reaches its receiver exactly once."""

import pytest

from controlplane import events
from controlplane.events import EventKind
from controlplane.models import AuditEvent
from notifications import tasks
from notifications.models import Delivery, DeliveryState, Event

pytestmark = pytest.mark.django_db


def _publish(django_capture_on_commit_callbacks, kind=EventKind.DRILL_PASSED, summary="Drill #1 passed"):
    with django_capture_on_commit_callbacks(execute=True):
        events.publish(kind, summary, drill=1)
    return list(Delivery.objects.filter(event__kind=kind).order_by("pk"))


def test_a_webhook_gets_the_event_exactly_once_after_a_500_and_a_retry(
    receiver, webhook, django_capture_on_commit_callbacks
):
    hook = receiver([500, 200])
    channel = webhook(hook.url)
    [delivery] = _publish(django_capture_on_commit_callbacks)

    tasks.deliver.apply(args=[delivery.pk])  # eager: Celery's retry runs again at once
    tasks.deliver.apply(args=[delivery.pk])  # the same message delivered twice

    assert [status for status, _ in hook.requests] == [500, 200]
    [body] = hook.accepted()
    assert (body["kind"], body["summary"]) == ("drill_passed", "Drill #1 passed")
    assert body["payload"] == {"drill": 1}
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.result) == (DeliveryState.DELIVERED, 2, "HTTP 200")
    audited = AuditEvent.objects.get(action="notification.delivered")
    assert audited.object_id == str(channel.pk)
    assert audited.after["attempts"] == 2


def test_a_delivery_that_keeps_failing_ends_failed_and_audited(
    receiver, webhook, django_capture_on_commit_callbacks, settings
):
    hook = receiver([503])
    webhook(hook.url)
    [delivery] = _publish(django_capture_on_commit_callbacks)

    tasks.deliver.apply(args=[delivery.pk])

    assert len(hook.requests) == 1 + tasks.deliver.max_retries
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.FAILED
    assert "HTTP 503" in delivery.last_error
    failed = AuditEvent.objects.get(action="notification.failed")
    assert "HTTP 503" in failed.after["error"]
    assert "secret-token-123" not in failed.after["error"]


def test_a_4xx_is_not_retried(receiver, webhook, django_capture_on_commit_callbacks):
    hook = receiver([404])
    webhook(hook.url)
    [delivery] = _publish(django_capture_on_commit_callbacks)
    tasks.deliver.apply(args=[delivery.pk])
    assert len(hook.requests) == 1
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == (DeliveryState.FAILED, 1)


def test_only_channels_that_want_the_kind_get_a_delivery(webhook, django_capture_on_commit_callbacks):
    passed_only = webhook("https://hooks.example.com/a", events=["drill_passed"], name="passed")
    everything = webhook("https://hooks.example.com/b", name="all")
    halted = _publish(django_capture_on_commit_callbacks, EventKind.HALTED, "Drills halted")
    assert [d.channel_id for d in halted] == [everything.pk]
    passed = _publish(django_capture_on_commit_callbacks, EventKind.DRILL_PASSED)
    assert sorted(d.channel_id for d in passed) == sorted([passed_only.pk, everything.pk])


def test_a_paused_channel_gets_nothing_and_no_event_is_stored_for_nobody(
    admin, webhook, django_capture_on_commit_callbacks
):
    from notifications import services

    channel = webhook("https://hooks.example.com/a")
    services.set_enabled(admin, channel, False)
    assert _publish(django_capture_on_commit_callbacks) == []
    assert not Event.objects.exists()
    assert AuditEvent.objects.filter(action="notification.channel_updated").count() == 1


def test_an_event_of_a_rolled_back_transaction_is_not_sent(webhook, django_capture_on_commit_callbacks):
    from django.db import transaction

    webhook("https://hooks.example.com/a")
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        events.publish(EventKind.HALTED, "Drills halted")
        raise RuntimeError("the halt failed")
    assert not Delivery.objects.exists()


def test_the_slack_body_is_a_text_line(receiver, webhook, django_capture_on_commit_callbacks):
    hook = receiver([200])
    webhook(hook.url, slack=True)
    [delivery] = _publish(django_capture_on_commit_callbacks)
    tasks.deliver.apply(args=[delivery.pk])
    assert hook.accepted() == [{"text": "[Drill passed] Drill #1 passed"}]


def test_a_webhook_url_from_the_environment(receiver, webhook, django_capture_on_commit_callbacks,
                                            monkeypatch):
    hook = receiver([200])
    monkeypatch.setenv("TEAM_HOOK_URL", hook.url)
    channel = webhook("env:TEAM_HOOK_URL")
    assert (channel.target, channel.target_secret) == ("env:TEAM_HOOK_URL", "")
    [delivery] = _publish(django_capture_on_commit_callbacks)
    tasks.deliver.apply(args=[delivery.pk])
    assert len(hook.accepted()) == 1
