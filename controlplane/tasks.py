from celery import shared_task
from django.utils import timezone

from controlplane.models import ServiceHeartbeat


@shared_task
def worker_ping(hostname_label):
    """Recorded by whichever worker takes it; used by tests and `celery` smoke checks.
    (Each worker writes its own heartbeat row: controlplane/heartbeats.py.)"""
    ServiceHeartbeat.objects.update_or_create(
        kind=ServiceHeartbeat.Kind.WORKER, hostname=hostname_label, defaults={"last_seen": timezone.now()}
    )
