"""The embedded broker (controlplane/broker.py, localfs://) under the load that crashed
kombu's stock filesystem transport: several publisher and consumer processes on one
folder while busy processes take every core. kombu is driven directly, except in the
last tests: the settings' default URL selects this transport for Celery."""

import contextlib
import logging
import multiprocessing
import os
import queue as stdlib_queue
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import kombu
import pytest

from controlplane import broker

BASE_DIR = Path(broker.__file__).resolve().parent.parent
SPAWN = multiprocessing.get_context("spawn")
STRESS_QUEUE = "stress"
PROCESS_START_TIMEOUT = 60  # spawned children import kombu (and Celery, through controlplane)


def _options(folder):
    """Transport options for a broker in `folder` (the layout settings.py gives var/broker)."""
    return {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
        "control_folder": str(folder / "control"),
        "claimed_folder": str(folder / "claimed"),
        "bad_folder": str(folder / "bad"),
        "polling_interval": 0.01,
    }


def _stress_queue():
    return kombu.Queue(STRESS_QUEUE, kombu.Exchange(STRESS_QUEUE), routing_key=STRESS_QUEUE)


# --- children (module level, so the spawn context can start them) -----------------------


def _publish(options, go, first, count):
    assert go.wait(PROCESS_START_TIMEOUT), "never told to start"
    queue = _stress_queue()
    with kombu.Connection("localfs://", transport_options=options) as conn:
        producer = conn.Producer(serializer="json")
        for number in range(first, first + count):
            producer.publish(
                {"id": number}, exchange=queue.exchange, routing_key=STRESS_QUEUE, declare=[queue]
            )


def _consume(options, number, received, stop):
    def on_message(body, message):
        received.put(body["id"])
        message.ack()

    try:
        with (
            kombu.Connection("localfs://", transport_options=options) as conn,
            conn.Consumer([_stress_queue()], callbacks=[on_message], accept=["json"]),
        ):
            while not stop.is_set():
                with contextlib.suppress(socket.timeout):
                    conn.drain_events(timeout=0.2)
    except Exception as exc:
        received.put(("crashed", number, repr(exc)))
        raise
    received.put(("done", number, None))


def _busy(stop):
    while not stop.is_set():
        for _ in range(100_000):
            pass


@dataclass
class LoadResult:
    deliveries: Counter = field(default_factory=Counter)  # message id -> times delivered
    crashes: dict = field(default_factory=dict)  # consumer number -> exception
    exit_codes: dict = field(default_factory=dict)  # process name -> exit code
    seconds: float = 0.0

    def duplicates(self):
        return sorted(i for i, n in self.deliveries.items() if n > 1)

    def missing(self, total):
        return sorted(set(range(total)) - set(self.deliveries))


def _run_load(options, *, total, publishers=4, consumers=3, busy=2, timeout=90):
    """Publish `total` messages from `publishers` processes while `consumers` processes
    consume them and `busy` processes spin; return what was delivered and how every
    process ended. Consumers are stopped once every message arrived, once a consumer
    has crashed or a publisher failed, or after `timeout` seconds."""
    received, stop, go, stop_busy = SPAWN.Queue(), SPAWN.Event(), SPAWN.Event(), SPAWN.Event()
    spinners = [SPAWN.Process(target=_busy, args=(stop_busy,), name=f"busy-{n}") for n in range(busy)]
    consuming = [
        SPAWN.Process(target=_consume, args=(options, n, received, stop), name=f"consumer-{n}")
        for n in range(consumers)
    ]
    share = total // publishers
    publishing = [
        SPAWN.Process(
            target=_publish, args=(options, go, n * share, share), name=f"publisher-{n}"
        )
        for n in range(publishers)
    ]
    assert share * publishers == total
    everyone = spinners + consuming + publishing
    result = LoadResult()
    try:
        for process in everyone:
            process.start()
        started = time.monotonic()
        go.set()
        deadline = started + timeout
        finished = set()

        def take(wait):
            item = received.get(timeout=wait)
            if isinstance(item, tuple):
                state, number, error = item
                finished.add(number)
                if state == "crashed":
                    result.crashes[number] = error
            else:
                result.deliveries[item] += 1

        while len(result.deliveries) < total and not result.crashes:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or any(p.exitcode for p in publishing):  # a publisher failed
                break
            with contextlib.suppress(stdlib_queue.Empty):
                take(min(remaining, 1.0))
        result.seconds = time.monotonic() - started
        stop.set()
        stop_busy.set()
        # Whatever is still on its way (a late duplicate), then every consumer's last word.
        drain_deadline = time.monotonic() + 30
        while len(finished) < consumers and time.monotonic() < drain_deadline:
            with contextlib.suppress(stdlib_queue.Empty):
                take(1.0)
        for process in everyone:
            process.join(timeout=30)
            result.exit_codes[process.name] = process.exitcode
    finally:
        for process in everyone:
            if process.is_alive():
                process.kill()
                process.join(timeout=10)
    return result


def _messages_left(folder):
    return {
        name: sorted(f for f in os.listdir(folder / name) if not f.startswith("."))
        for name in ("queue", "claimed", "bad")
    }


# --- the load that crashed the probes worker ----------------------------------------------


def test_every_message_is_delivered_exactly_once_by_busy_concurrent_processes(tmp_path):
    total = 10_000
    result = _run_load(_options(tmp_path), total=total)

    assert result.crashes == {}
    assert result.exit_codes == dict.fromkeys(result.exit_codes, 0), result.exit_codes
    assert result.duplicates() == []
    assert result.missing(total) == []
    assert _messages_left(tmp_path) == {"queue": [], "claimed": [], "bad": []}
    print(f"localfs: {total} messages through 4 publishers and 3 consumers on 2 busy cores "
          f"in {result.seconds:.1f} s ({total / result.seconds:.0f} messages/s)")


# --- files that are not messages ----------------------------------------------------------


def test_a_message_file_that_cannot_be_decoded_is_moved_to_bad_and_the_next_message_delivered(
    tmp_path, caplog
):
    options = _options(tmp_path)
    queue_folder, bad_folder = tmp_path / "queue", tmp_path / "bad"
    with kombu.Connection("localfs://", transport_options=options) as conn:
        probes = conn.SimpleQueue("probes")
        probes.put({"id": "to-truncate"})
        (published,) = os.listdir(queue_folder)
        whole = (queue_folder / published).read_bytes()
        (queue_folder / published).unlink()
        # Older than any real message (the name starts with its time stamp): read first.
        undecodable = {
            "00000000000000001_empty.probes.msg": b"",
            "00000000000000002_truncated.probes.msg": whole[: len(whole) // 2],
            "00000000000000003_garbage.probes.msg": b"\x00\xff not json",
            "00000000000000004_not-a-message.probes.msg": b'{"hello": "world"}',
        }
        for name, content in undecodable.items():
            (queue_folder / name).write_bytes(content)
        probes.put({"id": "good"})

        with caplog.at_level(logging.ERROR, logger="controlplane.broker"):
            message = probes.get(timeout=5)
        message.ack()
        probes.close()

    assert message.payload == {"id": "good"}
    assert sorted(os.listdir(bad_folder)) == sorted(undecodable)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    for name in undecodable:
        assert any(str(queue_folder / name) in e and str(bad_folder / name) in e for e in errors), (
            name, errors
        )
    assert os.listdir(queue_folder) == []


# --- a consumer killed between claim and read --------------------------------------------


def _claim_and_hang(options, claimed, never):
    """A consumer that dies (is killed) after claiming a message, before reading it."""

    def hang(self, path, name):
        claimed.set()
        never.wait(PROCESS_START_TIMEOUT)

    broker.Channel._read_claimed = hang
    with kombu.Connection("localfs://", transport_options=options) as conn:
        conn.SimpleQueue("drills").get(timeout=PROCESS_START_TIMEOUT)


def test_a_message_claimed_by_a_consumer_that_died_is_put_back_and_delivered(tmp_path, caplog):
    options = _options(tmp_path)
    with kombu.Connection("localfs://", transport_options=options) as conn:
        conn.SimpleQueue("drills").put({"id": "run-drill-7"})
    claimed, never = SPAWN.Event(), SPAWN.Event()
    consumer = SPAWN.Process(target=_claim_and_hang, args=(options, claimed, never))
    consumer.start()
    try:
        assert claimed.wait(PROCESS_START_TIMEOUT), "the consumer never claimed the message"
        (claim,) = [f for f in os.listdir(tmp_path / "claimed") if not f.startswith(".")]
        assert claim.startswith(f"{consumer.pid}-")

        # While it lives, its claim is its own.
        with kombu.Connection("localfs://", transport_options=options) as conn:
            drills = conn.SimpleQueue("drills")
            with pytest.raises(drills.Empty):
                drills.get(timeout=0.2)
            drills.close()

        consumer.kill()
        consumer.join(timeout=10)
        assert os.listdir(tmp_path / "queue") == []

        # The next channel to start puts the message back.
        with (
            caplog.at_level(logging.WARNING, logger="controlplane.broker"),
            kombu.Connection("localfs://", transport_options=options) as conn,
        ):
            drills = conn.SimpleQueue("drills")
            message = drills.get(timeout=5)
            message.ack()
            drills.close()
    finally:
        if consumer.is_alive():
            consumer.kill()
            consumer.join(timeout=10)

    assert message.payload == {"id": "run-drill-7"}
    assert any("Put back" in r.getMessage() and str(consumer.pid) in r.getMessage() for r in caplog.records)
    assert [f for f in os.listdir(tmp_path / "claimed") if not f.startswith(".")] == []


# --- exchange tables --------------------------------------------------------------------------


def _bind(options, names, go):
    assert go.wait(PROCESS_START_TIMEOUT), "never told to start"
    exchange = kombu.Exchange("broadcast", type="fanout")
    with kombu.Connection("localfs://", transport_options=options) as conn:
        for name in names:
            kombu.Queue(name, exchange)(conn.default_channel).declare()


def test_concurrent_binds_lose_no_binding_and_readers_never_see_a_partial_table(tmp_path):
    options = _options(tmp_path)
    go = SPAWN.Event()
    names = [[f"pidbox-{p}-{n}" for n in range(50)] for p in range(4)]
    binders = [SPAWN.Process(target=_bind, args=(options, group, go)) for group in names]
    reads, seen = 0, set()
    with kombu.Connection("localfs://", transport_options=options) as conn:
        channel = conn.default_channel
        try:
            for binder in binders:
                binder.start()
            go.set()
            deadline = time.monotonic() + PROCESS_START_TIMEOUT
            while any(b.is_alive() for b in binders):
                assert time.monotonic() < deadline, "the binders did not finish"
                queues = {row.queue for row in channel.get_table("broadcast")}
                assert seen <= queues, f"bindings disappeared: {sorted(seen - queues)}"
                seen, reads = queues, reads + 1
            final = {row.queue for row in channel.get_table("broadcast")}
        finally:
            for binder in binders:
                binder.join(timeout=10)
                if binder.is_alive():
                    binder.kill()

    assert [b.exitcode for b in binders] == [0, 0, 0, 0]
    assert final == {name for group in names for name in group}
    assert reads > 10  # the reader did run while they were binding
    assert [f for f in os.listdir(tmp_path / "control") if f.endswith(".tmp")] == []


# --- Celery ---------------------------------------------------------------------------------


def _python(code, tmp_path, **environment):
    """Run `code` in a fresh interpreter whose settings see only `environment`."""
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=BASE_DIR,
        env={
            "PATH": "/usr/bin:/bin",
            "CONTROLPLANE_VAR_DIR": str(tmp_path),
            "DJANGO_SETTINGS_MODULE": "controlplane.settings",
            **environment,
        },
        capture_output=True, text=True, timeout=120,
    )


def test_the_default_broker_url_gives_celery_the_localfs_transport(tmp_path):
    result = _python(
        "from controlplane.celery import app; transport = app.connection().transport; "
        "print(app.conf.broker_url, type(transport).__module__, type(transport).__name__)",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["localfs://", "controlplane.broker", "Transport"]
    assert sorted(os.listdir(tmp_path / "broker")) == ["bad", "claimed", "control", "processed", "queue"]


def test_the_stock_filesystem_broker_url_is_refused_with_the_one_to_use(tmp_path):
    result = _python("pass", tmp_path, CONTROLPLANE_BROKER_URL="filesystem://")
    assert result.returncode != 0
    assert "ImproperlyConfigured: CONTROLPLANE_BROKER_URL=filesystem://" in result.stderr
    assert "Use localfs://" in result.stderr


def test_a_second_set_of_folders_in_the_same_process_gets_its_bindings_and_delivers(tmp_path):
    # kombu's filesystem transport remembers bindings once per process: on a second set
    # of folders it wrote no exchange table, and every message published was dropped.
    for number in (1, 2):
        options = _options(tmp_path / f"broker-{number}")
        with kombu.Connection("localfs://", transport_options=options) as conn:
            queue = conn.SimpleQueue("again")
            queue.put({"n": number})
            assert queue.get(timeout=5).payload == {"n": number}
            queue.close()
