"""Starting real Celery processes from tests, on the configured broker, against the
test database."""

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.db import connection

BASE_DIR = Path(settings.BASE_DIR)


def test_database_url():
    """A DATABASE_URL that points a child process at the test database."""
    s = connection.settings_dict
    if s["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{s['NAME']}"
    user = s.get("USER") or ""
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgres://{auth}{s.get('HOST') or '127.0.0.1'}{port}/{s['NAME']}"


def child_env(**extra):
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": test_database_url(),
            "CONTROLPLANE_BROKER_URL": settings.CELERY_BROKER_URL,
            "CONTROLPLANE_VAR_DIR": str(settings.VAR_DIR),
            "DJANGO_SETTINGS_MODULE": "controlplane.settings",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if settings.AWS_ENDPOINT_URL:
        env["CONTROLPLANE_AWS_ENDPOINT_URL"] = settings.AWS_ENDPOINT_URL
    env.update({k: str(v) for k, v in extra.items()})
    return env


def unique_queue(prefix="test"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class CeleryProcess:
    def __init__(self, args, env, log_path):
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "controlplane", *args],
            cwd=BASE_DIR,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self):
        return self.proc.pid

    def kill(self, sig=signal.SIGKILL):
        """Kill the whole process group (the worker and its pool children)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        self.proc.wait(timeout=30)

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                self.kill()
        self._log.close()

    def log(self):
        return Path(self.log_path).read_text(errors="replace")


def start_worker(queue, tmp_path, *, concurrency=1, pool="prefork", name=None, **env):
    name = name or f"w-{uuid.uuid4().hex[:6]}@%h"
    args = [
        "worker",
        "-Q", queue,
        "-n", name,
        "--pool", pool,
        "--concurrency", str(concurrency),
        "--loglevel", "INFO",
        "--without-gossip",
        "--without-mingle",
    ]
    return CeleryProcess(args, child_env(**env), tmp_path / f"worker-{uuid.uuid4().hex[:6]}.log")


def wait_for(predicate, timeout, interval=0.05, message="condition"):
    """Poll `predicate` until it returns something truthy; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


class RunCommand:
    """The run command's own process set: scripts/supervise.py on a Procfile (by default
    Procfile.dev, what ./run.sh runs), in a session of its own, its output read line by
    line so a test can wait for supervisor's lines (`spawned: 'worker'`, `exited: ...`)."""

    def __init__(self, tmp_path, env, procfile=BASE_DIR / "Procfile.dev"):
        self.run_dir = tmp_path / "run"
        self.log_dir = tmp_path / "log"
        self.lines = []
        self._changed = threading.Condition()
        self.proc = subprocess.Popen(
            [
                sys.executable, "scripts/supervise.py", str(procfile),
                "--run-dir", str(self.run_dir), "--log-dir", str(self.log_dir),
            ],
            cwd=BASE_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def output(self):
        with self._changed:
            return "\n".join(self.lines)

    def wait_for_line(self, pattern, timeout, after=0):
        """The first output line from index `after` on that matches `pattern` (a regex)
        -> (index, match); fails at the deadline or when supervisord has exited."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for index in range(after, len(self.lines)):
                    if match := regex.search(self.lines[index]):
                        return index, match
                after = len(self.lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(
                        f"no line matching {pattern!r} within {timeout}s; output:\n" + "\n".join(self.lines)
                    )
                self._changed.wait(min(remaining, 0.5))

    def ctl(self, *args):
        """supervisorctl on this run's socket -> its stdout."""
        supervisorctl = Path(sys.executable).with_name("supervisorctl")
        result = subprocess.run(
            [str(supervisorctl), "-c", str(self.run_dir / "supervisord.conf"), *args],
            capture_output=True, text=True, timeout=30,
        )
        return result.stdout.strip()

    def pid(self, name):
        """The pid supervisor knows for a process of the Procfile (0: not running)."""
        return int(self.ctl("pid", f"controlplane:{name}") or 0)

    def log(self, name):
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def interrupt(self, timeout=30):
        """Ctrl-C: SIGINT to supervisord -> its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self._reader.join(timeout=5)

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.interrupt()
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)


class SilentServer:
    """A TCP server that accepts connections and never answers a byte: a hung Redis, or
    one at the far end of a half-open connection. Point CONTROLPLANE_BROKER_URL at
    `url()`; `connections` counts the sockets it accepted (and holds open)."""

    def __init__(self):
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._held = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(conn)

    @property
    def connections(self):
        return len(self._held)

    def url(self, db=0):
        return f"redis://127.0.0.1:{self.port}/{db}"

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()
        for conn in self._held:
            conn.close()


def console_request(user_id, method, url, data=None, *, timeout=120, **env):
    """One console request made by a separate process (its own settings, from `env`)
    as the user `user_id` -> {"status", "seconds" (the request alone), "location",
    "page" (the page redirected to, with its messages)}. The test must be transactional:
    the process reads and writes the test database."""
    script = f"""
import json, time
from django.test.utils import setup_test_environment
setup_test_environment()
from django.contrib.auth import get_user_model
from django.test import Client
client = Client()
client.force_login(get_user_model().objects.get(pk={user_id!r}))
started = time.monotonic()
response = getattr(client, {method.lower()!r})({url!r}, {data!r})
seconds = time.monotonic() - started
location = response.get("Location", "")
page = client.get(location).content.decode() if location else response.content.decode()
print("RESULT " + json.dumps({{"status": response.status_code, "seconds": seconds,
                               "location": location, "page": page}}))
"""
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=BASE_DIR, env=child_env(**env), capture_output=True, text=True, timeout=timeout,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])
