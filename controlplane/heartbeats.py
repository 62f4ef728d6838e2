"""Every worker and beat process writes its own ServiceHeartbeat row.

- A worker: `WorkerHeartbeat`, a consumer bootstep (registered in controlplane/celery.py)
  that writes the row (its node name, the queues it consumes, its pid) when the worker
  starts consuming and then every CONTROLPLANE_HEARTBEAT_SECONDS on the worker's timer.
  A consumer step rather than a worker step: Celery stops it when the broker connection
  is lost and starts it again on reconnection, so a fresh row means "consuming these
  queues now", which is what the console's problems are about (controlplane/background.py).
  The timer is the worker's main loop (Redis) or a thread (the embedded broker); with the
  prefork pool tasks run in child processes and never hold it up. (With `--pool solo` on
  Redis a long task would: such a worker shows as not running until the task ends.)
- Beat: `HeartbeatScheduler`, the persistent scheduler (CELERY_BEAT_SCHEDULER) whose
  tick() also writes beat's row, at most every CONTROLPLANE_HEARTBEAT_SECONDS.

A heartbeat never takes its process down: a database error is logged and the next beat
tries again.
"""

import logging
import os
import socket
import time

from celery import bootsteps
from celery.beat import PersistentScheduler
from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from controlplane.models import ServiceHeartbeat

log = logging.getLogger(__name__)


def record(kind, name, *, queues, started_at):
    """Write the calling process's heartbeat row -> True, or False after logging a
    database error (never raised)."""
    # As around a request: drop a connection that broke or outlived CONN_MAX_AGE. The
    # worker's timer may call this from its own thread, with its own connection.
    close_old_connections()
    try:
        ServiceHeartbeat.objects.update_or_create(
            kind=kind,
            hostname=name,
            defaults={
                "last_seen": timezone.now(),
                "queues": queues,
                "pid": os.getpid(),
                "started_at": started_at,
            },
        )
    except DatabaseError as error:
        log.warning("heartbeat of %s %s not written: %s", kind, name, error)
        return False
    finally:
        close_old_connections()
    return True


class WorkerHeartbeat(bootsteps.StartStopStep):
    """Consumer bootstep: the worker's own heartbeat row (see the module docstring)."""

    label = "Heartbeat row"
    # After the task consumer exists (its queues are the ones this worker consumes);
    # the event loop is always started last.
    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c, **kwargs):
        super().__init__(c, **kwargs)
        self.started_at = timezone.now()
        self.tref = None

    def start(self, c):
        self.beat(c)
        self.tref = c.timer.call_repeatedly(settings.CONTROLPLANE_HEARTBEAT_SECONDS, self.beat, (c,))

    def stop(self, c):
        if self.tref is not None:
            c.timer.cancel(self.tref)
            self.tref = None

    shutdown = stop

    def beat(self, c):
        consumer = c.task_consumer
        queues = sorted(queue.name for queue in consumer.queues) if consumer is not None else []
        record(ServiceHeartbeat.Kind.WORKER, c.hostname, queues=queues, started_at=self.started_at)


class HeartbeatScheduler(PersistentScheduler):
    """Beat's scheduler: the persistent one (schedule in CELERY_BEAT_SCHEDULE_FILENAME)
    that also writes beat's own heartbeat row, beat@<host>."""

    def __init__(self, *args, **kwargs):
        self.heartbeat_name = f"beat@{socket.gethostname()}"
        self.heartbeat_started_at = timezone.now()
        self.next_heartbeat = 0.0  # time.monotonic() of the next row update
        super().__init__(*args, **kwargs)

    def tick(self, *args, **kwargs):
        """Beat's loop calls this, then sleeps for the seconds it returns: the row is
        written when due, and the sleep never runs past the next heartbeat."""
        if time.monotonic() >= self.next_heartbeat:
            record(
                ServiceHeartbeat.Kind.BEAT,
                self.heartbeat_name,
                queues=[],
                started_at=self.heartbeat_started_at,
            )
            self.next_heartbeat = time.monotonic() + settings.CONTROLPLANE_HEARTBEAT_SECONDS
        interval = super().tick(*args, **kwargs)
        return min(interval, max(self.next_heartbeat - time.monotonic(), 0.0))
