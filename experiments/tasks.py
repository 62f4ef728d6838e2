from celery import shared_task
from celery.signals import worker_ready


@shared_task(acks_late=True, ignore_result=True)
def run_drill(drill_id):
    """Run one drill. Idempotent (the runner claims queued -> running), so acks_late is
    safe; the reaper, not redelivery, guarantees the revert if this worker dies."""
    from experiments import runner

    runner.run(drill_id)


@shared_task(ignore_result=True)
def reap_drills():
    from experiments import reaper

    return reaper.reap()


@shared_task(ignore_result=True)
def expire_drills():
    from experiments import lifecycle

    return lifecycle.expire_requests()


@worker_ready.connect
def _reap_on_start(sender=None, **kwargs):
    """A worker that (re)starts after a crash reverts what its predecessor left."""
    from django.conf import settings

    reap_drills.apply_async(queue=settings.DRILL_QUEUE)


@shared_task(ignore_result=True)
def observe_drill(drill_id, vantage, url, period, until):
    """On vantage `vantage`'s probe worker (queue probes.<vantage>): observe the global
    endpoint for a drill in a thread of this process until the drill ends (or the unix
    time `until`); the task itself returns at once. experiments/observer.py."""
    from experiments import observer

    observer.observe_remotely(drill_id, vantage, url, period=period, until=until)
