"""A real Celery worker process delivers a published event: one 500, a retry with
back-off, then exactly one accepted request; and one whose message was lost, once beat
sends it again."""

from datetime import timedelta

import pytest
from django.db import close_old_connections
from django.utils import timezone

from controlplane import events
from controlplane.events import EventKind
from notifications import services
from notifications.models import Delivery, DeliveryState
from tests.processes import start_worker, unique_queue, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_real_worker_retries_after_a_500_and_delivers_once(tmp_path, settings, admin, receiver):
    hook = receiver([500, 200])
    settings.NOTIFY_QUEUE = queue = unique_queue("notify")
    services.create_channel(admin, name="hook", kind="webhook", target=hook.url, events=["halted"])
    worker = start_worker(queue, tmp_path, pool="solo", CONTROLPLANE_NOTIFY_RETRY_BACKOFF="1")
    try:
        events.publish(EventKind.HALTED, "Drills halted by ada-admin: game day over", reason="game day over")

        def delivered():
            close_old_connections()
            return Delivery.objects.filter(state=DeliveryState.DELIVERED).first()

        delivery = wait_for(delivered, timeout=90, message=f"the delivery:\n{worker.log()}")
    finally:
        worker.stop()
    assert [status for status, _ in hook.requests] == [500, 200]
    [body] = hook.accepted()
    assert body["event_id"] == delivery.event_id
    assert body["payload"] == {"reason": "game day over"}
    assert delivery.attempts == 2


def test_a_delivery_whose_message_was_lost_is_sent_again_by_beat_and_delivered_once(
    tmp_path, settings, admin, receiver
):
    hook = receiver([200])
    services.create_channel(admin, name="hook", kind="webhook", target=hook.url, events=["halted"])
    settings.NOTIFY_QUEUE = unique_queue("nobody")  # no worker will ever read it: the message is lost
    events.publish(EventKind.HALTED, "Drills halted by ada-admin: freeze", reason="freeze")
    delivery = Delivery.objects.get()
    assert services.redispatch() == 0  # too young: its message may only be late
    Delivery.objects.filter(pk=delivery.pk).update(created_at=timezone.now() - timedelta(minutes=2))

    settings.NOTIFY_QUEUE = queue = unique_queue("notify")
    worker = start_worker(queue, tmp_path, pool="solo")
    try:
        assert services.redispatch() == 1

        def delivered():
            close_old_connections()
            return Delivery.objects.filter(state=DeliveryState.DELIVERED).first()

        wait_for(delivered, timeout=90, message=f"the delivery:\n{worker.log()}")
        assert services.redispatch() == 0  # delivered: nothing more to send
    finally:
        worker.stop()
    [body] = hook.accepted()
    assert body["payload"] == {"reason": "freeze"}
