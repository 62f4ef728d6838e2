"""A real worker process on the configured broker (localfs:// by default, Redis in
CI) takes a task dispatched from this process by name and writes to the test database."""

from datetime import timedelta

import pytest
from django.db import close_old_connections
from django.utils import timezone

from controlplane.celery import app as celery_app
from regions.models import Application, Architecture, HealthSample, ProbeTargetKind
from tests.processes import start_worker, unique_queue, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_real_worker_process_runs_a_dispatched_task(tmp_path):
    app = Application.objects.create(name="orders", architecture=Architecture.DNS)
    now = timezone.now()
    for age in (timedelta(days=30), timedelta(minutes=1)):  # past the raw retention, and fresh
        HealthSample.objects.create(
            application=app, target=ProbeTargetKind.GLOBAL_ENDPOINT, vantage="us-east-1",
            at=now - age, ok=True,
        )
    queue = unique_queue()
    worker = start_worker(queue, tmp_path, pool="solo")
    try:
        celery_app.send_task("regions.tasks.prune_samples", queue=queue)

        def pruned():
            close_old_connections()
            return HealthSample.objects.count() == 1

        wait_for(pruned, timeout=60, message=f"the worker to run the task:\n{worker.log()}")
        assert HealthSample.objects.get().at > now - timedelta(hours=1)
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
