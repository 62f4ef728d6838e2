"""A real Celery worker process delivers a published event: one 500, a retry with
back-off, then exactly one accepted request."""

import pytest
from django.db import close_old_connections

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
