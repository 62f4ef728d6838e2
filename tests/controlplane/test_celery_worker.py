"""A real worker process on the configured broker (localfs:// by default, Redis in
CI) takes a task dispatched from this process and writes to the test database."""

import pytest
from django.db import close_old_connections

from controlplane.models import ServiceHeartbeat
from controlplane.tasks import worker_ping
from tests.processes import start_worker, unique_queue, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_real_worker_process_runs_a_dispatched_task(tmp_path):
    queue = unique_queue()
    worker = start_worker(queue, tmp_path, pool="solo")
    try:
        worker_ping.apply_async(args=["ping-from-test"], queue=queue)

        def seen():
            close_old_connections()
            return ServiceHeartbeat.objects.filter(hostname="ping-from-test").first()

        beat = wait_for(seen, timeout=60, message=f"the worker to run the task:\n{worker.log()}")
        assert beat.kind == ServiceHeartbeat.Kind.WORKER
    finally:
        worker.stop()
    assert worker.proc.returncode is not None


def test_tasks_are_not_run_eagerly_outside_unit_tests(settings):
    assert not getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False)
    assert settings.CELERY_TASK_IGNORE_RESULT is True


def test_worker_processes_freeze_the_startup_objects_and_collect_less_often():
    import subprocess
    import sys

    from controlplane.celery import GC_THRESHOLD

    # In a fresh interpreter: the signal a worker sends when it starts, then its GC state.
    script = (
        "import django, gc; django.setup(); import controlplane\n"
        "from celery.signals import worker_init\n"
        "before = gc.get_freeze_count()\n"
        "worker_init.send(sender=None)\n"
        "print(before, gc.get_freeze_count(), gc.get_threshold()[0])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    before, frozen, threshold = map(int, out.stdout.split())
    assert before == 0
    assert frozen > 10_000  # Django, the apps and their imports
    assert threshold == GC_THRESHOLD
