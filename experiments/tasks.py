"""The drills' Celery tasks. Each receives ids only and calls the runner, the reaper,
the drills service, game days or the observer; none holds logic of its own. The run and observe
messages are sent by name (`services.RUN_DRILL_TASK`, `observer.OBSERVE_DRILL_TASK`), so
nothing below this module imports it."""

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings

from experiments import gamedays, observer, reaper, runner, schedules, services


@shared_task(name=services.RUN_DRILL_TASK, acks_late=True, ignore_result=True)
def run_drill(drill_id):
    """Run one drill. Idempotent (the runner claims queued -> running), so acks_late is
    safe; the reaper, not redelivery, guarantees the revert if this worker dies."""
    runner.run(drill_id)


@shared_task(ignore_result=True)
def reap_drills():
    return reaper.reap()


@shared_task(ignore_result=True)
def expire_drills():
    return services.expire_requests()


@shared_task(ignore_result=True)
def run_schedules():
    return schedules.run_due()


@shared_task(ignore_result=True)
def advance_gamedays():
    """Beat: move every running game day one step on (experiments.gamedays)."""
    return gamedays.advance_all()


@worker_ready.connect
def _reap_on_start(sender=None, **kwargs):
    """A worker that (re)starts after a crash reverts what its predecessor left."""
    reap_drills.apply_async(queue=settings.DRILL_QUEUE)


@shared_task(name=observer.OBSERVE_DRILL_TASK, ignore_result=True)
def observe_drill(drill_id, vantage, url, period, until):
    """On vantage `vantage`'s probe worker (queue probes.<vantage>): observe the global
    endpoint for a drill in a thread of this process until the drill ends (or the unix
    time `until`); the task itself returns at once. experiments/observer.py."""
    observer.observe_remotely(drill_id, vantage, url, period=period, until=until)
