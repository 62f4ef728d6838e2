"""The issue's acceptance path, through the HTTP API alone: an operator requests a drill
on orders/us-east-1 with a token, an approver approves it with another, a real worker
runs it against the sandbox, and the drill ends passed with its figures."""

import json
import urllib.error
import urllib.request

import pytest

from controlplane.api import issue_token
from experiments.scenarios import ensure_builtin_scenarios
from regions.discovery import run_discovery
from tests.processes import start_worker, unique_queue, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.sandbox, pytest.mark.django_db(transaction=True)]


def call(base, method, path, token, payload=None):
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(
        f"{base}/api/v1{path}", data=data, method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_drill_requested_and_approved_through_the_api_passes(
    sandbox_settings, settings, live_server, operator, approver, viewer, tmp_path
):
    run_discovery(actor="test", regions=["eu-central-1", "us-east-1", "us-west-2"])
    ensure_builtin_scenarios()
    settings.DRILL_QUEUE = unique_queue("api-drills")
    base = live_server.url
    _, operator_token = issue_token(operator)
    _, approver_token = issue_token(approver)
    _, viewer_token = issue_token(viewer)

    status, scenarios = call(base, "GET", "/scenarios", viewer_token)
    assert status == 200
    assert "fail-region-health-check" in {s["slug"] for s in scenarios["scenarios"]}

    wanted = {"scenario": "fail-region-health-check", "application": "orders", "region": "us-east-1"}
    assert call(base, "POST", "/drills", viewer_token, wanted)[0] == 403
    status, created = call(base, "POST", "/drills", operator_token, wanted)
    assert status == 201, created
    drill_id = created["id"]
    assert created["state"] == "requested"

    assert call(base, "POST", f"/drills/{drill_id}/approve", operator_token, {"comment": "mine"})[0] == 403
    worker = start_worker(settings.DRILL_QUEUE, tmp_path, CONTROLPLANE_DRILL_QUEUE=settings.DRILL_QUEUE)
    try:
        status, approved = call(base, "POST", f"/drills/{drill_id}/approve", approver_token,
                                {"comment": "go ahead"})
        assert status == 200, approved

        def final():
            _, body = call(base, "GET", f"/drills/{drill_id}", viewer_token)
            return body if body["state"] in {"passed", "failed", "aborted", "errored"} else None

        drill = wait_for(final, 120, message=f"the drill to end:\n{worker.log()}")
    finally:
        worker.stop()
    assert drill["state"] == "passed", drill["outcome_reason"]
    figures = drill["figures"]
    assert 0 < figures["time_to_failover"] < 20
    assert figures["time_to_detect"] is not None
    assert figures["time_to_recover"] is not None
    assert [s["message"] for s in drill["steps"] if "Failed over" in s["message"]]
