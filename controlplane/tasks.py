import socket

from celery import shared_task
from django.utils import timezone

from controlplane.models import ServiceHeartbeat


def _beat(kind, hostname):
    ServiceHeartbeat.objects.update_or_create(
        kind=kind, hostname=hostname, defaults={"last_seen": timezone.now()}
    )


@shared_task
def beat_heartbeat():
    """Scheduled by beat every few seconds; run by a worker. Its arrival proves that
    beat, the broker and a worker all work."""
    _beat(ServiceHeartbeat.Kind.BEAT, "beat")
    _beat(ServiceHeartbeat.Kind.WORKER, socket.gethostname())


@shared_task
def worker_ping(hostname_label):
    """Recorded by whichever worker takes it; used by tests and `celery` smoke checks."""
    _beat(ServiceHeartbeat.Kind.WORKER, hostname_label)
