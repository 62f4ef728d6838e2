"""The notifications' Celery tasks: a delivery (sent by name, notifications.services.DELIVER_TASK)
and beat's pass that sends again what the broker refused or lost."""

from celery import shared_task
from django.conf import settings

from notifications import senders, services


@shared_task(
    name=services.DELIVER_TASK,
    bind=True,
    ignore_result=True,
    acks_late=True,  # idempotent: services.deliver claims the delivery before it sends
    autoretry_for=(senders.Transient,),
    retry_backoff=settings.NOTIFY_RETRY_BACKOFF,
    retry_backoff_max=600,
    max_retries=settings.NOTIFY_MAX_RETRIES,
)
def deliver(self, delivery_id):
    services.deliver(delivery_id, final=self.request.retries >= self.max_retries)


@shared_task(ignore_result=True)
def redispatch():
    """Beat: the deliveries whose task message the broker refused or lost, sent again."""
    return services.redispatch()
