"""The embedded broker: localfs:// (controlplane/broker.py) beside kombu's stock
filesystem:// transport, one publisher then one consumer, side by side.

    .venv/bin/python bench/broker.py [--messages 2000] [--rounds 3]

For each round and each transport (interleaved), in a fresh process: publish N messages
into an empty folder, then consume them all with one consumer (the backlog case that made the stock
transport's per-message listing O(n^2)). Prints messages per second and the ratio
localfs / stock. Single process, no concurrency: the stock transport is only safe like
this (see tests/controlplane/test_broker.py for the concurrent case it fails).
"""

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import kombu

import controlplane.broker  # noqa: F401 - registers localfs://


def options(root):
    folders = {name: root / name for name in ("queue", "processed", "control", "claimed", "bad")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(folders["queue"]),
        "data_folder_out": str(folders["queue"]),
        "processed_folder": str(folders["processed"]),
        "control_folder": str(folders["control"]),
        "claimed_folder": str(folders["claimed"]),
        "bad_folder": str(folders["bad"]),
        "store_processed": False,
        "polling_interval": 0.01,
    }


def one_round(url, n):
    """(publish msg/s, consume msg/s) for `n` messages on a fresh folder."""
    with tempfile.TemporaryDirectory(prefix="bench-broker-") as tmp:
        opts = options(Path(tmp))
        with kombu.Connection(url, transport_options=opts) as conn:
            queue = conn.SimpleQueue("bench")
            started = time.perf_counter()
            for i in range(n):
                queue.put({"n": i})
            publish = n / (time.perf_counter() - started)
            queue.close()
        with kombu.Connection(url, transport_options=opts) as conn:
            queue = conn.SimpleQueue("bench")
            started = time.perf_counter()
            seen = 0
            while seen < n:
                message = queue.get(timeout=10)
                message.ack()
                seen += 1
            consume = n / (time.perf_counter() - started)
            queue.close()
    return publish, consume


def _isolated(url, n):
    """one_round in a fresh process: kombu's stock transport remembers its bindings once
    per process, so a second folder in the same process would drop every message."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(one_round, (url, n))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results = {"localfs://": ([], []), "filesystem://": ([], [])}
    for _ in range(args.rounds):
        for url, (pubs, cons) in results.items():
            publish, consume = _isolated(url, args.messages)
            pubs.append(publish)
            cons.append(consume)
            print(f"  {url:<14} publish {publish:8.0f} msg/s   consume {consume:8.0f} msg/s", flush=True)
    local, stock = results["localfs://"], results["filesystem://"]
    print(f"\n{args.messages} messages, {args.rounds} rounds, medians:")
    for label, index in (("publish", 0), ("consume a backlog", 1)):
        a, b = statistics.median(local[index]), statistics.median(stock[index])
        print(f"  {label:<18} localfs {a:8.0f} msg/s   stock {b:8.0f} msg/s   ratio {a / b:5.2f}x")


if __name__ == "__main__":
    main()
