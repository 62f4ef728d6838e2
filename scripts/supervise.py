"""Run the processes of a Procfile under supervisor, as one foreground command.

    python scripts/supervise.py Procfile.dev          (what ./run.sh does last)
    python scripts/supervise.py --listen CONFIG       (supervisor starts this itself)

The Procfile stays the single list of processes (``name: command``). This script writes
a supervisord configuration for it under ``$CONTROLPLANE_VAR_DIR/run`` (default
``var/run``) and replaces itself with ``supervisord -n``. Supervisor then:

- restarts a process that exits unexpectedly, and logs the exit status
  (``exited: worker (terminated by SIGKILL; not expected)``, then ``spawned: ...``);
- backs off when a process dies again within STARTSECS of being started (1 s, 2 s,
  3 s ... between tries) and gives up after STARTRETRIES tries (``gave up: worker
  entered FATAL state``), instead of looping silently;
- on Ctrl-C (SIGINT) or SIGTERM, stops every process at once (they are one group, so
  they are signalled together, not one after another), SIGKILLing what is still up
  after STOPWAITSECS.

With ``--listen`` this script is supervisor's event listener: it counts each
process's unexpected exits and says plainly when one keeps dying (CRASH_LOOP_EXITS in
CRASH_LOOP_WINDOW seconds, even if each run lasted long enough to be restarted at
once) and when one has been given up on, with the command that starts it again.

Each process's output goes to ``var/log/<name>.log`` (``--log-dir``); the terminal shows
supervisor's own lines and the listener's. VAR is ``$CONTROLPLANE_VAR_DIR`` (default
``var``), as for the console.
"""

import argparse
import os
import secrets
import shlex
import signal
import sys
import time
from collections import defaultdict, deque
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
GROUP = "controlplane"
# A process that dies within STARTSECS of its start did not start: supervisor waits
# 1 s, 2 s, ... before each of STARTRETRIES further tries, then gives up (FATAL).
STARTSECS = 5
STARTRETRIES = 5
# Ctrl-C: SIGTERM to each process group, SIGKILL after this (a Celery worker's warm
# shutdown takes 7-8 s on the embedded broker).
STOPWAITSECS = 10
CRASH_LOOP_EXITS = 5
CRASH_LOOP_WINDOW = 600.0


def read_procfile(path):
    """[(name, command)] from a Procfile; a clear error on a malformed line."""
    processes = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, sep, command = stripped.partition(":")
        name = name.strip()
        if not sep or not name.replace("_", "").replace("-", "").isalnum() or not command.strip():
            raise SystemExit(f"{path}:{number}: expected 'name: command', got {line!r}")
        if any(name == seen for seen, _ in processes):
            raise SystemExit(f"{path}:{number}: process {name!r} is listed twice")
        processes.append((name, command.strip()))
    if not processes:
        raise SystemExit(f"{path}: no processes")
    return processes


def _ini(value):
    """A value for supervisor's config: it interpolates %(name)s, so % is doubled."""
    return str(value).replace("%", "%%")


def render_config(processes, *, run_dir, log_dir, password, python=sys.executable):
    """The supervisord configuration, as text."""
    lines = [
        "; written by scripts/supervise.py from the Procfile; edit the Procfile instead",
        "[supervisord]",
        # In the foreground supervisord prints its log to the terminal as well.
        "nodaemon=true",
        f"logfile={_ini(log_dir / 'supervisord.log')}",
        "logfile_maxbytes=5MB",
        "logfile_backups=1",
        "loglevel=info",
        f"pidfile={_ini(run_dir / 'supervisord.pid')}",
        f"childlogdir={_ini(log_dir)}",
        f"directory={_ini(BASE_DIR)}",
        "",
        # supervisorctl's socket: only this user may open it, with a password made
        # for this run (kept in the config file, which only this user can read).
        "[unix_http_server]",
        f"file={_ini(run_dir / 'supervisor.sock')}",
        "chmod=0700",
        "username=controlplane",
        f"password={_ini(password)}",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl=unix://{_ini(run_dir / 'supervisor.sock')}",
        "username=controlplane",
        f"password={_ini(password)}",
        "",
    ]
    if os.geteuid() == 0:
        # Said on purpose: supervisord warns when root runs it without saying so.
        lines.insert(2, "user=root")
    for name, command in processes:
        lines += [
            f"[program:{name}]",
            # Through a shell so that the Procfile's $VARIABLES expand as with honcho or
            # foreman; the commands `exec`, so supervisor signals the process itself.
            f"command=/bin/sh -c {_ini(shlex.quote(command))}",
            f"directory={_ini(BASE_DIR)}",
            "autostart=true",
            "autorestart=true",
            f"startsecs={STARTSECS}",
            f"startretries={STARTRETRIES}",
            "stopsignal=TERM",
            f"stopwaitsecs={STOPWAITSECS}",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={_ini(log_dir / f'{name}.log')}",
            "stdout_logfile_maxbytes=20MB",
            "stdout_logfile_backups=2",
            "",
        ]
    lines += [
        f"[group:{GROUP}]",
        "programs=" + ",".join(name for name, _ in processes),
        "",
        "[eventlistener:watch]",
        f"command={_ini(shlex.quote(python))} {_ini(shlex.quote(str(Path(__file__).resolve())))} "
        f"--listen {_ini(shlex.quote(str(run_dir / 'supervisord.conf')))}",
        "events=PROCESS_STATE_EXITED,PROCESS_STATE_FATAL",
        "autorestart=true",
        "stderr_logfile=/dev/stderr",
        "stderr_logfile_maxbytes=0",
        "",
    ]
    return "\n".join(lines)


def supervise(procfile, run_dir=None, log_dir=None):
    var_dir = Path(os.environ.get("CONTROLPLANE_VAR_DIR", BASE_DIR / "var"))
    run_dir = Path(run_dir or var_dir / "run")
    log_dir = Path(log_dir or var_dir / "log")
    run_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    config = run_dir / "supervisord.conf"
    config.touch(mode=0o600)
    config.chmod(0o600)
    config.write_text(
        render_config(
            read_procfile(procfile), run_dir=run_dir, log_dir=log_dir, password=secrets.token_urlsafe(24)
        )
    )
    supervisord = Path(sys.executable).with_name("supervisord")
    os.execv(str(supervisord), [str(supervisord), "-n", "-c", str(config)])  # noqa: S606 - our own venv's supervisord


# --- the event listener ------------------------------------------------------------


def _parse(text):
    return dict(token.split(":", 1) for token in text.split())


class CrashWatch:
    """Counts unexpected exits per process; says when one keeps dying or was given up."""

    def __init__(self, *, exits=CRASH_LOOP_EXITS, window=CRASH_LOOP_WINDOW, clock=time.monotonic):
        self.exits = exits
        self.window = window
        self.clock = clock
        self._seen = defaultdict(deque)

    def handle(self, event, payload, config="var/run/supervisord.conf"):
        """One event; returns the line to print, or None."""
        name = payload.get("processname", "?")
        if event == "PROCESS_STATE_FATAL":
            return (
                f"!! {name} keeps failing right after it starts and supervisor gave up on it: "
                f"it is NOT running. Read var/log/{name}.log, then start it again with "
                f".venv/bin/supervisorctl -c {config} start {GROUP}:{name}"
            )
        if event != "PROCESS_STATE_EXITED" or payload.get("expected") != "0":
            return None
        now = self.clock()
        seen = self._seen[name]
        seen.append(now)
        while seen and now - seen[0] > self.window:
            seen.popleft()
        if len(seen) >= self.exits:
            seen.clear()
            return (
                f"!! {name} keeps dying: {self.exits} unexpected exits within "
                f"{self.window / 60:.0f} min (pid {payload.get('pid', '?')} was the last); "
                f"supervisor keeps restarting it. Read var/log/{name}.log."
            )
        return None


def listen(config, stdin=sys.stdin, stdout=sys.stdout, stderr=sys.stderr):
    """Supervisor's event-listener protocol (READY, header, payload, RESULT)."""
    # Stopped with everything else on Ctrl-C: a quiet exit, not a "terminated" warning.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    watch = CrashWatch()
    while True:
        stdout.write("READY\n")
        stdout.flush()
        header_line = stdin.readline()
        if not header_line:
            return
        header = _parse(header_line)
        payload_text = stdin.read(int(header["len"]))
        line = watch.handle(header["eventname"], _parse(payload_text.split("\n", 1)[0]), config)
        if line:
            stderr.write(time.strftime("%Y-%m-%d %H:%M:%S ") + line + "\n")
            stderr.flush()
        stdout.write("RESULT 2\nOK")
        stdout.flush()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("procfile", nargs="?", default=str(BASE_DIR / "Procfile.dev"))
    parser.add_argument("--listen", metavar="CONFIG", help="run as supervisor's event listener for CONFIG")
    parser.add_argument("--run-dir", help="supervisord's config, socket and pid file (default: VAR/run)")
    parser.add_argument("--log-dir", help="one log file per process (default: VAR/log)")
    args = parser.parse_args(argv)
    if args.listen:
        listen(args.listen)
    else:
        supervise(args.procfile, args.run_dir, args.log_dir)


if __name__ == "__main__":
    main()
