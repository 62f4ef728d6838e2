"""Each worker and beat writes its own heartbeat row (controlplane/heartbeats.py)."""

import logging
import os
import socket
import time
import uuid
from datetime import timedelta

import pytest
from celery.beat import PersistentScheduler
from django.db import OperationalError, close_old_connections

from controlplane import background, heartbeats
from controlplane.celery import app as celery_app
from controlplane.models import ServiceHeartbeat
from tests.processes import start_worker, unique_queue, wait_for

# record() drops broken or old connections as around a request (close_old_connections),
# which would also close a test's own transaction: these tests commit.
in_transaction = pytest.mark.django_db(transaction=True)


def _break_the_database(monkeypatch):
    def locked(*args, **kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr(ServiceHeartbeat.objects, "update_or_create", locked)


@in_transaction
def test_record_writes_the_calling_process_row():
    assert heartbeats.record(ServiceHeartbeat.Kind.WORKER, "w@h", queues=["celery"], started_at=None)

    row = ServiceHeartbeat.objects.get()
    assert (row.kind, row.hostname, row.queues, row.pid) == ("worker", "w@h", ["celery"], os.getpid())


@in_transaction
def test_a_database_error_is_logged_and_never_raised(monkeypatch, caplog):
    _break_the_database(monkeypatch)

    with caplog.at_level(logging.WARNING, logger="controlplane.heartbeats"):
        assert heartbeats.record(ServiceHeartbeat.Kind.WORKER, "w@h", queues=[], started_at=None) is False

    assert "heartbeat of worker w@h not written: database is locked" in caplog.text


@pytest.fixture
def scheduler(tmp_path, monkeypatch, settings):
    """Beat's scheduler without beat's schedule: the parent tick sends nothing."""
    settings.CONTROLPLANE_HEARTBEAT_SECONDS = 5.0
    monkeypatch.setattr(PersistentScheduler, "tick", lambda self, *a, **kw: 300.0)
    return heartbeats.HeartbeatScheduler(
        app=celery_app, schedule_filename=str(tmp_path / "schedule"), lazy=True
    )


@in_transaction
def test_beat_writes_its_row_at_most_every_heartbeat_and_wakes_up_for_the_next(scheduler):
    assert celery_app.conf.beat_scheduler == "controlplane.heartbeats:HeartbeatScheduler"

    assert scheduler.tick() <= 5.0  # not the parent's 300 s: it wakes up to beat
    row = ServiceHeartbeat.objects.get()
    assert (row.kind, row.hostname, row.pid) == ("beat", f"beat@{socket.gethostname()}", os.getpid())
    assert row.started_at is not None

    scheduler.tick()
    assert ServiceHeartbeat.objects.get().last_seen == row.last_seen  # not due yet

    scheduler.next_heartbeat = time.monotonic()  # 5 s later
    scheduler.tick()
    assert ServiceHeartbeat.objects.get().last_seen > row.last_seen


@in_transaction
def test_beat_keeps_ticking_when_the_database_fails(scheduler, monkeypatch, caplog):
    _break_the_database(monkeypatch)

    with caplog.at_level(logging.WARNING, logger="controlplane.heartbeats"):
        assert 0 < scheduler.tick() <= 5.0

    assert "heartbeat of beat beat@" in caplog.text


def test_the_worker_step_is_registered():
    assert "controlplane.heartbeats:WorkerHeartbeat" in celery_app.steps["consumer"]


# --- a real worker ---------------------------------------------------------------------


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_writes_its_own_heartbeat_and_is_stale_once_killed(tmp_path, settings):
    queue = unique_queue("heartbeat")
    node = f"hb-{uuid.uuid4().hex[:6]}"
    worker = start_worker(queue, tmp_path, name=f"{node}@%h", CONTROLPLANE_HEARTBEAT_SECONDS="0.2")
    settings.DRILL_QUEUE = queue
    settings.CONTROLPLANE_PROBE_VANTAGES = []
    settings.CONTROLPLANE_HEARTBEAT_TIMEOUT_SECONDS = 2.0

    def row():
        close_old_connections()
        workers = ServiceHeartbeat.objects.filter(kind=ServiceHeartbeat.Kind.WORKER)
        return workers.filter(hostname__startswith=f"{node}@").first()

    try:
        first = wait_for(row, timeout=60, message=f"the worker's heartbeat row:\n{worker.log()}")
        # Its node name, its queues, its pid; no beat is running, nor needed for this.
        assert first.hostname == f"{node}@{socket.gethostname()}"
        assert first.queues == [queue]
        assert first.pid == worker.pid
        assert not ServiceHeartbeat.objects.filter(kind=ServiceHeartbeat.Kind.BEAT).exists()
        # It keeps beating by itself.
        later = wait_for(
            lambda: (r := row()) and r.last_seen > first.last_seen and r,
            timeout=30, message=f"a second heartbeat:\n{worker.log()}",
        )
        status = background.load(now=later.last_seen + timedelta(seconds=1))
        assert [(p.name, p.alive) for p in status.processes] == [(later.hostname, True)]
        assert not [p for p in status.problems if queue in p.missing]

        worker.kill()  # SIGKILL: no chance to say goodbye
        last = row()
        time.sleep(1.0)  # five heartbeat periods
        assert row().last_seen == last.last_seen

        status = background.load(now=last.last_seen + timedelta(seconds=2.5))
        assert [(p.name, p.alive) for p in status.processes] == [(last.hostname, False)]
        (problem,) = [p for p in status.problems if queue in p.missing]
        assert problem.last.name == last.hostname
        assert problem.consequences[0] == background.DRILL_CONSEQUENCE
    finally:
        worker.stop()
