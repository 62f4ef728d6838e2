"""scripts/supervise.py: the run command's supervisor, on small Procfiles of real processes."""

import os
import signal
import sys
import time

import pytest

from scripts.supervise import CRASH_LOOP_EXITS, STARTRETRIES, CrashWatch, read_procfile, render_config
from tests.processes import RunCommand


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def procfile(tmp_path):
    def write(**processes):
        path = tmp_path / "Procfile"
        path.write_text("".join(f"{name}: {command}\n" for name, command in processes.items()))
        return path

    return write


SLEEPER = f"exec {sys.executable} -c 'import time; time.sleep(600)'"


def test_a_killed_process_is_restarted_with_its_exit_status_logged_and_a_failing_one_is_given_up(
    procfile, tmp_path
):
    run = RunCommand(
        tmp_path,
        dict(os.environ),
        procfile(sleeper=SLEEPER, crasher=f"exec {sys.executable} -c 'import sys; sys.exit(3)'"),
    )
    try:
        run.wait_for_line(r"success: sleeper entered RUNNING", 30)
        first = run.pid("sleeper")
        assert first and _alive(first)
        os.kill(first, signal.SIGKILL)
        index, _ = run.wait_for_line(r"exited: sleeper \(terminated by SIGKILL; not expected\)", 15)
        _, spawned = run.wait_for_line(r"spawned: 'sleeper' with pid (\d+)", 15, after=index)
        second = int(spawned.group(1))
        assert second != first and _alive(second)

        # Dies at once every time: each exit is logged with its status, supervisor backs
        # off between tries (1 s, 2 s, ...), then gives up and the listener says so plainly.
        run.wait_for_line(r"exited: crasher \(exit status 3; not expected\)", 15)
        run.wait_for_line(r"gave up: crasher entered FATAL state", 10 + STARTRETRIES * (STARTRETRIES + 1) / 2)
        _, said = run.wait_for_line(r"!! crasher keeps failing right after it starts.*NOT running", 10)
        assert "supervisorctl -c" in said.string and "start controlplane:crasher" in said.string
        output = run.output()
        assert output.count("exited: crasher (exit status 3; not expected)") == STARTRETRIES + 1
        assert run.pid("sleeper") == second  # the others stay up
    finally:
        run.stop()
    assert not _alive(second)


def test_ctrl_c_stops_every_process_at_once(procfile, tmp_path):
    run = RunCommand(tmp_path, dict(os.environ), procfile(one=SLEEPER, two=SLEEPER, three=SLEEPER))
    try:
        for name in ("one", "two", "three"):
            run.wait_for_line(rf"success: {name} entered RUNNING", 30)
        pids = [run.pid(name) for name in ("one", "two", "three")]
        pressed = time.monotonic()
        assert run.interrupt(timeout=30) == 0
        took = time.monotonic() - pressed
    finally:
        run.stop()
    assert not any(_alive(pid) for pid in pids)
    # Together, not one after the other: well under three stop timeouts.
    assert took < 10, run.output()
    assert "waiting for one, two, three to die" in run.output() or "stopped: three" in run.output()


def test_the_procfile_is_the_single_list_of_processes(tmp_path):
    processes = read_procfile("Procfile.dev")
    assert [name for name, _ in processes] == ["sandbox", "discover", "web", "worker", "probes", "beat"]
    config = render_config(processes, run_dir=tmp_path, log_dir=tmp_path, password="pw")
    assert "programs=sandbox,discover,web,worker,probes,beat" in config
    # Celery's %h reaches the shell intact (supervisor would read %h as interpolation).
    assert "-n worker@%%h" in config
    assert config.count("autorestart=true") == len(processes) + 1  # and the listener


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("web exec gunicorn\n", "expected 'name: command'"),
        ("web:\n", "expected 'name: command'"),
        ("web: a\nweb: b\n", "listed twice"),
        ("# nothing\n", "no processes"),
    ],
)
def test_a_malformed_procfile_is_refused_with_the_line(tmp_path, text, message):
    path = tmp_path / "Procfile"
    path.write_text(text)
    with pytest.raises(SystemExit, match=message):
        read_procfile(path)


def test_a_process_that_keeps_dying_after_starting_is_reported_once_per_burst():
    now = [0.0]
    watch = CrashWatch(exits=CRASH_LOOP_EXITS, window=600, clock=lambda: now[0])
    died = {"processname": "worker", "expected": "0", "pid": "42"}
    lines = []
    for _ in range(CRASH_LOOP_EXITS * 2):
        now[0] += 60
        lines.append(watch.handle("PROCESS_STATE_EXITED", died))
    reported = [line for line in lines if line]
    assert len(reported) == 2
    assert reported[0].startswith(f"!! worker keeps dying: {CRASH_LOOP_EXITS} unexpected exits within 10 min")
    # Expected exits (a stop) and exits spread out over more than the window are not a loop.
    assert watch.handle("PROCESS_STATE_EXITED", {**died, "expected": "1"}) is None
    slow = CrashWatch(exits=CRASH_LOOP_EXITS, window=600, clock=lambda: now[0])
    for _ in range(CRASH_LOOP_EXITS * 2):
        now[0] += 200
        assert slow.handle("PROCESS_STATE_EXITED", died) is None
