"""controlplane.background.assess: which processes are alive and what will not happen,
from heartbeat rows and a frozen `now`."""

from datetime import UTC, datetime, timedelta

import pytest

from controlplane.background import (
    BEAT_CONSEQUENCE,
    DEFAULT_QUEUE_CONSEQUENCE,
    DRILL_CONSEQUENCE,
    assess,
    probe_consequence,
)
from controlplane.models import ServiceHeartbeat

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
TIMEOUT = timedelta(seconds=30)
WORKER, BEAT = ServiceHeartbeat.Kind.WORKER, ServiceHeartbeat.Kind.BEAT


def row(kind, name, seconds_ago, *queues):
    """An unsaved heartbeat row, last seen `seconds_ago` before NOW."""
    return ServiceHeartbeat(
        kind=kind,
        hostname=name,
        queues=list(queues),
        pid=4242,
        started_at=NOW - timedelta(hours=1),
        last_seen=NOW - timedelta(seconds=seconds_ago),
    )


def beat(seconds_ago):
    return row(BEAT, "beat@h", seconds_ago)


def worker(seconds_ago, name="worker@h", queues=("celery",)):
    return row(WORKER, name, seconds_ago, *queues)


def probes(seconds_ago, vantage="local", name="probes@h"):
    return row(WORKER, name, seconds_ago, f"probes.{vantage}")


def run(rows, *, drill_queue="celery", default_queue="celery", vantages=("local",)):
    return assess(
        rows,
        now=NOW,
        timeout=TIMEOUT,
        drill_queue=drill_queue,
        default_queue=default_queue,
        probe_queues={v: f"probes.{v}" for v in vantages},
    )


DRILL_AND_DEFAULT = (DRILL_CONSEQUENCE, DEFAULT_QUEUE_CONSEQUENCE)
NO_BEAT = ("No live beat", (BEAT_CONSEQUENCE,), None)


@pytest.mark.parametrize(
    ("rows", "kwargs", "alive", "problems"),
    [
        pytest.param(
            [beat(1), worker(2), probes(3)], {},
            {"beat@h": True, "worker@h": True, "probes@h": True}, [],
            id="all fresh: no problem",
        ),
        pytest.param(
            [], {}, {},
            [
                NO_BEAT,
                ("No live worker consumes “celery”", DRILL_AND_DEFAULT, None),
                ("No live worker consumes “probes.local”", (probe_consequence("local"),), None),
            ],
            id="nothing ever reported: every need is a problem",
        ),
        pytest.param(
            [beat(1), worker(31), probes(3)], {},
            {"beat@h": True, "worker@h": False, "probes@h": True},
            [("No live worker consumes “celery”", DRILL_AND_DEFAULT, "worker@h")],
            id="worker past the timeout: drills will not start",
        ),
        pytest.param(
            [beat(1), worker(30), probes(3)], {},
            {"beat@h": True, "worker@h": True, "probes@h": True}, [],
            id="seen exactly the timeout ago: still alive",
        ),
        pytest.param(
            [beat(45), worker(2), probes(3)], {},
            {"beat@h": False, "worker@h": True, "probes@h": True},
            [("No live beat", (BEAT_CONSEQUENCE,), "beat@h")],
            id="beat dead: the workers still look alive",
        ),
        pytest.param(
            [beat(1), probes(400)], {},
            {"beat@h": True, "probes@h": False},
            [
                ("No live worker consumes “celery”", DRILL_AND_DEFAULT, None),
                ("No live worker consumes “probes.local”", (probe_consequence("local"),), "probes@h"),
            ],
            id="probes worker dead, no worker row at all",
        ),
        pytest.param(
            [beat(1), worker(300, "old@h"), worker(2, "new@h"), probes(3)], {},
            {"beat@h": True, "new@h": True, "old@h": False, "probes@h": True}, [],
            id="a dead worker is listed, but another consumes its queue",
        ),
        pytest.param(
            [beat(1), worker(300, "older@h"), worker(100, "newer@h"), probes(3)], {},
            {"beat@h": True, "newer@h": False, "older@h": False, "probes@h": True},
            [("No live worker consumes “celery”", DRILL_AND_DEFAULT, "newer@h")],
            id="the problem names the consumer seen last",
        ),
        pytest.param(
            [beat(1), worker(25 * 3600), probes(3)], {},
            {"beat@h": True, "probes@h": True},
            [("No live worker consumes “celery”", DRILL_AND_DEFAULT, None)],
            id="a worker gone for over a day is not listed; its queue is still a problem",
        ),
        pytest.param(
            [beat(1), worker(2), probes(3, "local"), probes(3, "eu", name="probes@eu")],
            {"vantages": ("local", "eu", "ap")},
            {"beat@h": True, "worker@h": True, "probes@h": True, "probes@eu": True},
            [("No live worker consumes “probes.ap”", (probe_consequence("ap"),), None)],
            id="a vantage without a probes worker",
        ),
        pytest.param(
            [beat(1), worker(2, queues=("drills",)), probes(3)],
            {"drill_queue": "drills"},
            {"beat@h": True, "worker@h": True, "probes@h": True},
            [("No live worker consumes “celery”", (DEFAULT_QUEUE_CONSEQUENCE,), None)],
            id="drills on their own queue: the default queue is needed too",
        ),
        pytest.param(
            [beat(1), worker(2, queues=("celery", "probes.local"))], {},
            {"beat@h": True, "worker@h": True}, [],
            id="one worker consuming every queue",
        ),
        pytest.param(
            [beat(-3), worker(-1), probes(0)], {},
            {"beat@h": True, "worker@h": True, "probes@h": True}, [],
            id="another host's clock ahead: alive, seen 0 s ago",
        ),
        pytest.param(
            [row(BEAT, "beat@h", 1, "celery", "probes.local")], {},
            {"beat@h": True},
            [
                ("No live worker consumes “celery”", DRILL_AND_DEFAULT, None),
                ("No live worker consumes “probes.local”", (probe_consequence("local"),), None),
            ],
            id="only workers consume queues",
        ),
    ],
)
def test_assess(rows, kwargs, alive, problems):
    status = run(rows, **kwargs)

    assert {p.name: p.alive for p in status.processes} == alive
    assert [
        (p.missing, p.consequences, p.last.name if p.last else None) for p in status.problems
    ] == problems


def test_beat_comes_first_then_the_workers_by_name():
    status = run([worker(1, "zeta@h"), probes(1), beat(1), worker(1, "alpha@h")])

    assert [p.name for p in status.processes] == ["beat@h", "alpha@h", "probes@h", "zeta@h"]


@pytest.mark.parametrize(
    ("seconds_ago", "text"), [(-2, "0 s"), (4.6, "4 s"), (59, "59 s"), (125, "2 min 5 s"), (7200, "2 h")]
)
def test_seen_ago_in_whole_seconds_then_minutes(seconds_ago, text):
    (process,) = run([beat(seconds_ago)]).processes

    assert process.seen_ago == text


def test_a_process_keeps_what_its_row_says():
    (process,) = run([worker(2, queues=("celery", "drills"))]).processes

    assert process.label == "Worker"
    assert process.queues == ("celery", "drills")
    assert process.pid == 4242
    assert process.last_seen == NOW - timedelta(seconds=2)
    assert process.age == timedelta(seconds=2)


def test_the_banner_key_changes_only_with_the_banner_text():
    dead = [beat(1), worker(40), probes(3)]
    later = assess(
        dead, now=NOW + timedelta(seconds=20), timeout=TIMEOUT, drill_queue="celery",
        default_queue="celery", probe_queues={"local": "probes.local"},
    )

    assert run(dead).banner_key == later.banner_key  # older, same problem
    assert run(dead).banner_key != run([beat(1), worker(1), probes(3)]).banner_key  # back
    assert run(dead).banner_key != run([beat(1), worker(60), probes(3)]).banner_key  # other since
    assert run([]).banner_key != run([beat(1)]).banner_key
