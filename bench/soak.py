"""Soak of the README's run command as a user gets it, on a busy machine.

    .venv/bin/python bench/soak.py [--minutes 20] [--port 8300] [--hogs 2]

Runs `./run.sh` (console, workers, beat and sandbox under supervisor, on the embedded
defaults: SQLite and the localfs broker) with a var folder of its own, and while two
CPU-bound loops take the cores:

- polls the console every second as a signed-in viewer (GET / and, in turn,
  GET /api/v1/status with a token): a request counts as answered on a 2xx within 10 s;
- every minute requests a drill through the API as the operator and approves it as the
  approver, alternating orders/us-east-1 (throttle the region's functions) and
  payments/us-west-2 (dial the region to zero);
- every 5 minutes SIGKILLs a worker (the drill worker and the probes worker in turn),
  its pool children with it, 6 s after an orders drill was requested (mid-drill).

Then it waits for every drill to end, checks with boto3 straight against the sandbox
(not through the control plane) that no fault is left on, reads from the database the
longest gap between two probe samples of any target, counts the restarts supervisor
logged, presses Ctrl-C and times the stop. It prints a report, writes it as JSON next to
the run's logs, and exits non-zero when a target is missed: console answered >= 99.9 %,
every drill final, 0 faults left, every killed worker back.

Bounded: every wait has a deadline; the hogs and ./run.sh are stopped at the end.
"""

import argparse
import http.cookiejar
import json
import multiprocessing
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import boto3
from botocore.config import Config

BASE_DIR = Path(__file__).resolve().parent.parent
DRILLS = [
    ("throttle-region-functions", "orders", "us-east-1"),
    ("dial-region-to-zero", "payments", "us-west-2"),
]
FINAL = {"passed", "failed", "aborted", "errored", "rejected", "expired", "inconclusive"}
KILLED = ["worker", "probes"]


def hog(deadline):
    """A CPU-bound loop that stops by itself at `deadline` (time.time())."""
    n = 0
    while time.time() < deadline:
        n += 1


class Run:
    """./run.sh in its own session; its output kept line by line."""

    def __init__(self, var_dir, port, aws_port, base_port):
        self.var_dir = var_dir
        env = {
            **os.environ,
            "CONTROLPLANE_VAR_DIR": str(var_dir),
            "PORT": str(port),
            "SANDBOX_AWS_PORT": str(aws_port),
            "SANDBOX_BASE_PORT": str(base_port),
        }
        for key in ("DATABASE_URL", "CONTROLPLANE_BROKER_URL", "CONTROLPLANE_AWS_ENDPOINT_URL"):
            env.pop(key, None)  # the embedded defaults, as a user gets them
        self.lines = []
        self.proc = subprocess.Popen(
            ["./run.sh"],
            cwd=BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        with open(self.var_dir / "run.sh.out", "w") as out:
            for line in self.proc.stdout:
                self.lines.append(line.rstrip("\n"))
                out.write(line)
                out.flush()

    def ctl(self, *args):
        supervisorctl = BASE_DIR / ".venv/bin/supervisorctl"
        result = subprocess.run(
            [str(supervisorctl), "-c", str(self.var_dir / "run/supervisord.conf"), *args],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return result.stdout.strip()

    def pid(self, name):
        try:
            return int(self.ctl("pid", f"controlplane:{name}") or 0)
        except ValueError:
            return 0

    def count(self, pattern):
        regex = re.compile(pattern)
        return sum(1 for line in list(self.lines) if regex.search(line))

    def interrupt(self, timeout=60):
        pressed = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
            return None
        return time.monotonic() - pressed


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise SystemExit(f"timed out after {timeout}s waiting for {what}")


def manage(var_dir, *args):
    env = {**os.environ, "CONTROLPLANE_VAR_DIR": str(var_dir)}
    for key in ("DATABASE_URL", "CONTROLPLANE_BROKER_URL"):
        env.pop(key, None)
    return subprocess.run(
        [str(BASE_DIR / ".venv/bin/python"), "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.strip()


class Console:
    """An HTTP client of the console: a signed-in session, and API tokens."""

    def __init__(self, base):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path, token=None, timeout=10):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = urllib.request.Request(self.base + path, headers=headers)
        try:
            with self.opener.open(request, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def post_json(self, path, token, payload, timeout=30):
        request = urllib.request.Request(
            self.base + path,
            data=json.dumps(payload).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            body = exc.read()
            try:
                return exc.code, json.loads(body)
            except ValueError:
                return exc.code, {"error": body[:200].decode(errors="replace")}

    def login(self, username, password):
        _, page = self.get("/accounts/login/")
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1).decode()
        data = urllib.parse.urlencode(
            {"username": username, "password": password, "csrfmiddlewaretoken": token}
        ).encode()
        request = urllib.request.Request(
            self.base + "/accounts/login/", data=data, headers={"Referer": self.base + "/accounts/login/"}
        )
        with self.opener.open(request, timeout=30) as resp:
            if "/accounts/login/" in resp.url:
                raise SystemExit(f"could not sign in as {username}")


def poll_console(console, token, stop, results):
    """Every second, GET the overview or the status API; record (t, ok, seconds, what)."""
    n = 0
    while not stop.is_set():
        started = time.monotonic()
        path = "/" if n % 2 == 0 else "/api/v1/status"
        try:
            status, _ = console.get(path, token=None if path == "/" else token, timeout=10)
            ok = 200 <= status < 300
            what = str(status)
        except Exception as exc:  # every failure is a result here
            ok, what = False, type(exc).__name__ + ": " + str(exc)[:100]
        results.append((time.time(), ok, time.monotonic() - started, f"GET {path} {what}"))
        n += 1
        stop.wait(max(0.0, 1.0 - (time.monotonic() - started)))


def faults_left(state, endpoint):
    """Every fault a drill can leave, read with plain boto3 against the sandbox."""
    config = Config(retries={"max_attempts": 3, "mode": "standard"})

    def client(service, region):
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=endpoint,
            config=config,
            aws_access_key_id="sandbox",
            aws_secret_access_key="sandbox",  # noqa: S106 - sandbox
        )

    left = []
    for app_name, app in state["applications"].items():
        for region, stack in app["stacks"].items():
            where = f"{app_name}/{region}"
            ssm = client("ssm", region)
            value = json.loads(ssm.get_parameter(Name=stack["ssm_fault_parameter"])["Parameter"]["Value"])
            if value.get("is_enabled"):
                left.append(f"{where}: SSM failure flag on")
            lam = client("lambda", region)
            for fn in stack["functions"]:
                if "ReservedConcurrentExecutions" in lam.get_function_concurrency(FunctionName=fn):
                    left.append(f"{where}: reserved concurrency on {fn}")
            tags = client("dynamodb", region).list_tags_of_resource(ResourceArn=stack["table_arn"])["Tags"]
            if any(t["Key"] == "sandbox:replication-paused" for t in tags):
                left.append(f"{where}: replication paused")
            if stack.get("health_check_id"):
                hc = client("route53", "us-east-1").get_health_check(HealthCheckId=stack["health_check_id"])
                cfg = hc["HealthCheck"]["HealthCheckConfig"]
                if cfg.get("Inverted") or cfg.get("Disabled"):
                    left.append(f"{where}: health check inverted/disabled")
            if stack.get("endpoint_group_arn"):
                group = client("globalaccelerator", "us-west-2").describe_endpoint_group(
                    EndpointGroupArn=stack["endpoint_group_arn"]
                )["EndpointGroup"]
                if group["TrafficDialPercentage"] != 100:
                    left.append(f"{where}: traffic dial at {group['TrafficDialPercentage']} %")
            if stack.get("listener_arn"):
                listener = client("elbv2", region).describe_listeners(ListenerArns=[stack["listener_arn"]])
                if any(a["Type"] != "forward" for a in listener["Listeners"][0]["DefaultActions"]):
                    left.append(f"{where}: ALB listener answers a fixed response")
    return left


def longest_probe_gap(db_path, since, until):
    """The longest time between two consecutive probe samples of one target (seconds),
    from the start of the soak to its end, and the target."""
    con = sqlite3.connect(db_path, timeout=30)
    rows = con.execute(
        "SELECT application_id, stack_id, target, vantage, at FROM regions_healthsample "
        "WHERE at >= ? AND at <= ? ORDER BY application_id, stack_id, target, vantage, at",
        (since.isoformat(sep=" "), until.isoformat(sep=" ")),
    ).fetchall()
    con.close()
    worst, where, previous = 0.0, None, {}
    for app_id, stack_id, target, vantage, at in rows:
        key = (app_id, stack_id, target, vantage)
        moment = datetime.fromisoformat(at).replace(tzinfo=UTC).timestamp()
        if key in previous and moment - previous[key] > worst:
            worst, where = moment - previous[key], key
        previous[key] = moment
    return worst, where, len(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--drill-every", type=float, default=60.0, help="seconds")
    parser.add_argument("--kill-every", type=float, default=300.0, help="seconds")
    parser.add_argument("--hogs", type=int, default=2, help="CPU-bound loops beside the run")
    parser.add_argument("--port", type=int, default=8300)
    parser.add_argument("--aws-port", type=int, default=4966)
    parser.add_argument("--base-port", type=int, default=4970)
    args = parser.parse_args()

    var_dir = Path(tempfile.mkdtemp(prefix="soak-"))
    print(
        f"soak: {args.minutes} min, drill every {args.drill_every:.0f} s, worker SIGKILL every "
        f"{args.kill_every:.0f} s, {args.hogs} CPU hogs; var {var_dir}",
        flush=True,
    )
    total = args.minutes * 60
    hogs = [
        multiprocessing.Process(target=hog, args=(time.time() + total + 900,), daemon=True)
        for _ in range(args.hogs)
    ]
    for process in hogs:
        process.start()
    run = Run(var_dir, args.port, args.aws_port, args.base_port)
    console = Console(f"http://127.0.0.1:{args.port}")
    stop = threading.Event()
    polls, drills, kills = [], [], []
    try:
        wait_until(lambda: (var_dir / "demo-users.json").exists(), 600, "./run.sh to set up")
        users = json.loads((var_dir / "demo-users.json").read_text())
        tokens = {name: manage(var_dir, "create_token", name, "--name", "soak") for name in users}
        wait_until(
            lambda: _status_ok(console, tokens["viewer"]), 180, "the console and the discovered inventory"
        )
        console.login("viewer", users["viewer"])
        started_at = datetime.now(UTC)
        poller = threading.Thread(
            target=poll_console, args=(console, tokens["viewer"], stop, polls), daemon=True
        )
        poller.start()
        began = time.monotonic()
        # Every kill_every seconds a kill is due; it lands 6 s after the next orders drill
        # is requested (that drill takes ~15 s; a payments dial drill ~8 s), so the drill
        # worker dies mid-drill with a fault on: the reaper's path. The probes worker is
        # killed in turn, at the same moment of a drill.
        next_drill, next_kill, n_drill, n_kill = began + 5, began + args.kill_every, 0, 0
        kill_at = None
        while time.monotonic() - began < total:
            now = time.monotonic()
            if now >= next_drill:
                scenario, app, region = DRILLS[n_drill % len(DRILLS)]
                n_drill += 1
                next_drill += args.drill_every
                drills.append(_drill(console, tokens, scenario, app, region))
                print(f"  {time.monotonic() - began:6.0f}s drill {drills[-1]}", flush=True)
                if now >= next_kill and kill_at is None and app == DRILLS[0][1]:
                    kill_at = now + 6
            if kill_at is not None and now >= kill_at:
                name = KILLED[n_kill % len(KILLED)]
                n_kill += 1
                next_kill += args.kill_every
                kill_at = None
                kills.append(_kill(run, name))
                print(f"  {time.monotonic() - began:6.0f}s killed {kills[-1]}", flush=True)
            time.sleep(0.2)
        ended_at = datetime.now(UTC)
        # Every requested drill must end (a running one finishes its hold and recovers).
        pending = [d["id"] for d in drills if d.get("id")]
        deadline = time.monotonic() + 300
        states = {}
        while pending and time.monotonic() < deadline:
            for drill_id in list(pending):
                status, body = _get_json(console, f"/api/v1/drills/{drill_id}", tokens["viewer"])
                if status == 200:
                    states[drill_id] = body.get("state")
                    if body.get("state") in FINAL:
                        pending.remove(drill_id)
            time.sleep(1)
        stop.set()
        poller.join(timeout=15)
        for kill in kills:
            kill["back"] = run.pid(kill["process"]) not in (0, kill["pid"])
        state = json.loads((var_dir / "sandbox.json").read_text())
        left = faults_left(state, state["aws_endpoint"])
        gap, gap_where, n_samples = longest_probe_gap(var_dir / "controlplane.sqlite3", started_at, ended_at)
        restarts = {
            name: run.count(rf"exited: {name} \(.*not expected\)")
            for name in ("sandbox", "web", "worker", "probes", "beat")
        }
        fatal = run.count(r"gave up: |!! ")
    finally:
        stop.set()
        stopped_in = run.interrupt() if run.proc.poll() is None else None
        for process in hogs:
            process.terminate()

    answered = sum(1 for _, ok, _, _ in polls if ok)
    failures = [p for p in polls if not p[1]]
    final = sum(1 for d in drills if states.get(d.get("id")) in FINAL)
    outcome_counts = {}
    for drill_state in states.values():
        outcome_counts[drill_state] = outcome_counts.get(drill_state, 0) + 1
    report = {
        "minutes": args.minutes,
        "hogs": args.hogs,
        "console_requests": len(polls),
        "console_answered": answered,
        "console_answered_percent": round(100.0 * answered / len(polls), 3) if polls else 0.0,
        "console_slowest_seconds": round(max((p[2] for p in polls), default=0.0), 2),
        "console_failures": [
            f"{datetime.fromtimestamp(t, UTC):%H:%M:%S} {what}" for t, _, _, what in failures
        ][:20],
        "drills_requested": len(drills),
        "drills_refused": [d for d in drills if not d.get("id")],
        "drills_final": final,
        "drill_states": outcome_counts,
        "faults_left": left,
        "workers_killed": kills,
        "restarts_logged": restarts,
        "gave_up_lines": fatal,
        "longest_probe_gap_seconds": round(gap, 2),
        "longest_probe_gap_target": gap_where,
        "probe_samples": n_samples,
        "ctrl_c_stopped_in_seconds": None if stopped_in is None else round(stopped_in, 1),
        "var_dir": str(var_dir),
    }
    (var_dir / "soak-report.json").write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps(report, indent=2, default=str))
    misses = []
    if not polls or answered / len(polls) < 0.999:
        misses.append("console answered < 99.9 %")
    if final != len(drills) or report["drills_refused"]:
        misses.append("a drill was refused or did not end")
    if left:
        misses.append("faults left on")
    if not all(k.get("back") for k in kills):
        misses.append("a killed worker did not come back")
    print("TARGETS MET" if not misses else "MISSED: " + "; ".join(misses), flush=True)
    return 1 if misses else 0


def _get_json(console, path, token):
    try:
        status, body = console.get(path, token=token, timeout=10)
        return status, json.loads(body or b"{}")
    except (OSError, ValueError):
        return 0, {}


def _status_ok(console, token):
    status, body = _get_json(console, "/api/v1/status", token)
    return status == 200 and len(body.get("applications", [])) >= 2


def _drill(console, tokens, scenario, app, region):
    status, body = console.post_json(
        "/api/v1/drills", tokens["operator"], {"scenario": scenario, "application": app, "region": region}
    )
    record = {"scenario": scenario, "target": f"{app}/{region}", "request_status": status}
    if status not in (200, 201):
        record["error"] = body
        return record
    record["id"] = body["id"]
    status, body = console.post_json(
        f"/api/v1/drills/{record['id']}/approve", tokens["approver"], {"comment": "soak"}
    )
    record["approve_status"] = status
    if status not in (200, 201, 202):
        record["error"] = body
    return record


def _kill(run, name):
    pid = run.pid(name)
    record = {"process": name, "pid": pid, "at": datetime.now(UTC).strftime("%H:%M:%S")}
    if pid:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        new = wait_until(lambda: (p := run.pid(name)) not in (0, pid) and p, 60, f"{name} to come back")
        record["back_in_seconds"] = round(time.monotonic() - killed, 1)
        record["new_pid"] = new
    return record


if __name__ == "__main__":
    sys.exit(main())
