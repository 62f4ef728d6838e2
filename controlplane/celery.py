import gc
import os

from celery import Celery
from celery.signals import worker_init, worker_process_init
from kombu.exceptions import OperationalError

# Registers the localfs:// transport (the embedded broker) before the app resolves its URL.
from controlplane import broker  # noqa: F401

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

app = Celery("controlplane")


# What publishing a task raises when the broker is down, refuses or does not answer
# within CONTROLPLANE_BROKER_TIMEOUT (kombu wraps the transport's errors in
# OperationalError once the app's publish retries are spent).
PUBLISH_ERRORS = (OperationalError, ConnectionError, OSError)


def probe_queue(vantage):
    """The queue a vantage's probe workers consume (`celery worker -Q probes.<vantage>`)."""
    return f"probes.{vantage}"


app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Each worker writes its own heartbeat row (controlplane/heartbeats.py). Named, as
# Celery names its own steps: the class is imported when the worker builds its
# consumer, after Django is set up (it needs the models).
app.steps["consumer"].add("controlplane.heartbeats:WorkerHeartbeat")

# Young objects allowed before the cyclic garbage collector runs (CPython's default:
# 2,000). A probe batch allocates ~20 objects per target (requests, responses, results,
# rows): at the default the collector runs every ~100 probes.
GC_THRESHOLD = 20_000


def tune_gc():
    """Garbage-collector settings for a worker process, called once it has started.

    Everything loaded so far (Django, the apps, aiohttp) is moved out of the collector's
    way with `gc.freeze()`, so the occasional full collection walks only what the tasks
    made (and forked children share those pages instead of copying them); and the
    collector runs after GC_THRESHOLD young objects instead of 2,000. Together ~10 %
    less CPU per probe (bench/probe_throughput.py); memory stays bounded: reference
    counting frees almost everything, the collector only finds cycles."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, gen1, gen2)


@worker_init.connect  # the worker's main process (every pool; forked children inherit it)
@worker_process_init.connect  # each prefork child, once it has started
def _tune_worker_gc(**kwargs):
    tune_gc()
