"""One status, everywhere (docs/MONITORING.md): the overview, the application, stack and
drill pages and GET /api/v1/status read one loader (monitoring.load_picture) and say the
same thing at the same moment; after a fault is reverted they all reach AWS's view
within one probe interval plus one AWS poll.

Every page marks what it states with data-status-of / data-status / data-traffic
(regions/overview_grid.py): that is what these tests read and compare."""

import json
import re
import time
import uuid

import pytest
from django.conf import settings
from django.db import close_old_connections
from django.urls import reverse

from experiments.models import DrillState
from regions.discovery import run_discovery
from regions.models import Application, Stack
from sandbox.seed import FAULT_OFF
from tests.processes import CeleryProcess, child_env, start_worker, unique_queue, wait_for
from tests.regions.test_overview import add_drill, add_lag
from tests.regions.test_status_api import add_routing_components, populate

STATUS = reverse("api-status")
STATES = re.compile(r'data-status-of="([^"]+)" data-status="(\w+)"(?: data-traffic="(yes|no)")?')


def stated(html):
    """{"<application>": (status, None), "<application>/<region>": (status, "yes" / "no"
    / None)}: what a page states; a page that states one thing twice says it the same."""
    out = {}
    for of, status, traffic in STATES.findall(html):
        value = (status, traffic or None)
        assert out.setdefault(of, value) == value, f"{of} stated as {out[of]} and {value} on one page"
    return out


def from_api(data):
    """The same, from GET /api/v1/status."""
    out = {}
    for app in data["applications"]:
        out[app["name"]] = (app["status"], None)
        for region in app["regions"]:
            traffic = region["receives_traffic"]
            out[f"{app['name']}/{region['region']}"] = (
                region["status"], None if traffic is None else "yes" if traffic else "no"
            )
    return out


def page_urls(drill_ids=()):
    """Every page that states a status: the overview, each application, each stack, the
    drill page's polled part (regions:now) and the drill pages."""
    urls = [reverse("regions:overview")]
    for app in Application.objects.order_by("name"):
        urls.append(reverse("regions:application", args=[app.name]))
    for app, region in Stack.objects.order_by("pk").values_list("application__name", "region__code"):
        urls.append(reverse("regions:stack", args=[app, region]))
        urls.append(reverse("regions:now", args=[app, region]))
    urls.extend(reverse("experiments:detail", args=[pk]) for pk in drill_ids)
    return urls


def read_all(client, urls):
    """(what the API says before, {url: what the page states}, what the API says after)."""
    before = from_api(client.get(STATUS).json())
    pages = {url: stated(client.get(url).content.decode()) for url in urls}
    after = from_api(client.get(STATUS).json())
    return before, pages, after


def test_every_page_and_the_api_say_the_same(client_for, viewer, operator):
    orders, other = populate(2, ("us-east-1", "us-west-2"))
    add_routing_components(orders)  # us-west-2: health check inverted, no traffic
    add_lag(other, "us-west-2", "us-east-1", 4200, seconds_ago=1)  # over the threshold
    running = add_drill(orders, "us-east-1", DrillState.RUNNING, operator)
    done = add_drill(other, "us-west-2", DrillState.PASSED, operator)
    client = client_for(viewer)

    before, pages, after = read_all(client, page_urls([running.pk, done.pk]))

    assert before == after  # nothing changed while the pages were read
    assert before["orders/us-west-2"] == ("unhealthy", "no")
    # no routing configuration: the clients' view alone (the global endpoint served by
    # us-east-1) says where the traffic goes
    assert before["orders-1/us-east-1"] == ("degraded", "yes")
    for url, states in pages.items():
        assert states, f"{url} states no status"
        assert {of: before[of] for of in states} == states, url
    overview = pages[reverse("regions:overview")]
    assert overview == before  # the overview states everything
    for app in ("orders", "orders-1"):
        states = pages[reverse("regions:application", args=[app])]
        assert set(states) == {app, f"{app}/us-east-1", f"{app}/us-west-2"}
    stack = pages[reverse("regions:stack", args=["orders", "us-west-2"])]
    assert set(stack) == {"orders", "orders/us-west-2"}
    assert pages[reverse("regions:now", args=["orders", "us-west-2"])] == stack
    assert set(pages[reverse("experiments:detail", args=[done.pk])]) == {"orders-1", "orders-1/us-west-2"}


def test_the_application_page_shows_the_computed_status_not_a_hand_written_one(client_for, viewer):
    populate()

    html = client_for(viewer).get(reverse("regions:application", args=["orders"])).content.decode()

    assert ">unknown<" not in html
    assert stated(html)["orders/us-east-1"] == ("healthy", "yes")  # serves the global endpoint
    assert stated(html)["orders/us-west-2"] == ("unhealthy", "no")
    assert "3 consecutive 503 from /health" in html
    assert '<span class="lag-figure">1.2 s</span>' in html  # replication lag into us-east-1


def test_the_status_api_lists_the_live_drills_with_their_region_and_page(client_for, viewer, operator):
    orders, other = populate(2)
    queued = add_drill(orders, "us-west-2", DrillState.QUEUED, operator)
    add_drill(other, "us-east-1", DrillState.ABORTED, operator)

    apps = {a["name"]: a for a in client_for(viewer).get(STATUS).json()["applications"]}

    assert apps["orders"]["drills"] == [{
        "id": queued.pk, "state": "queued", "region": "us-west-2",
        "url": reverse("experiments:detail", args=[queued.pk]),
    }]
    assert apps["orders-1"]["drills"] == []


# --- after a fault is reverted, against the sandbox, with beat and workers ---------------

FAULT_ON = {"is_enabled": True, "fault_type": "status_code", "error_code": 503, "rate": 1}
APP, REGION = "orders", "us-east-1"
TARGET = f"{APP}/{REGION}"


def _route53_says_healthy(sb):
    """Route 53's own verdict on the region's health check, read by the test itself:
    healthy when more than 18 % of its checkers report success."""
    observations = sb.client("route53", "us-east-1").get_health_check_status(
        HealthCheckId=sb.stack(APP, REGION).health_check_id
    )["HealthCheckObservations"]
    ok = sum(1 for o in observations if o["StatusReport"]["Status"].startswith("Success"))
    return ok > 0.18 * len(observations)


@pytest.mark.sandbox
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_after_a_fault_is_reverted_every_page_agrees_with_aws_within_one_probe_interval_and_one_aws_poll(
    sandbox_settings, client_for, viewer, operator, tmp_path
):
    """The SSM failure flag of orders/us-east-1 makes its /health answer 503: the probes
    and Route 53's checkers both see it. Once the flag is off and Route 53 itself says
    healthy again, every page says so within CONTROLPLANE_PROBE_INTERVAL +
    CONTROLPLANE_AWS_HEALTH_INTERVAL, and whenever the API said the same before and after
    a round of reads, every page of the round said exactly that."""
    sb = sandbox_settings
    run_discovery(actor="test", regions=["eu-central-1", "us-east-1", "us-west-2"])
    finished = add_drill(Application.objects.get(name=APP), REGION, DrillState.PASSED, operator)
    bound = settings.CONTROLPLANE_PROBE_INTERVAL + max(
        settings.CONTROLPLANE_AWS_HEALTH_INTERVAL, settings.CONTROLPLANE_LIVE_CONFIG_INTERVAL
    )
    assert bound == 12  # the defaults: 2 s + 10 s
    vantage = f"t-{uuid.uuid4().hex[:6]}"
    env = {"CONTROLPLANE_VANTAGE": vantage, "CONTROLPLANE_PROBE_VANTAGES": vantage,
           "CONTROLPLANE_DRILL_QUEUE": unique_queue("drills")}
    ssm = sb.client("ssm", REGION)
    parameter = sb.stack(APP, REGION).ssm_fault_parameter

    def put(value):
        ssm.put_parameter(Name=parameter, Value=json.dumps(value), Type="String", Overwrite=True)

    processes = [
        start_worker(f"probes.{vantage}", tmp_path, concurrency=1, **env),
        start_worker("celery", tmp_path, concurrency=2, **env),
        CeleryProcess(
            ["beat", "-s", str(tmp_path / "beat-schedule")], child_env(**env), tmp_path / "beat.log"
        ),
    ]
    client = client_for(viewer)
    urls = page_urls([finished.pk])
    rounds = []  # (seconds since the revert, API before, pages, API after)

    def wait_until(condition, timeout, what, since=None):
        """Read every page and the API in rounds until `condition(api)` holds in a round
        in which the API did not change; every such round must show all pages agreeing."""
        deadline = time.monotonic() + timeout
        while True:
            started = time.monotonic()
            close_old_connections()
            before, pages, after = read_all(client, urls)
            rounds.append((started - since if since else None, before, pages, after))
            if before == after:
                for url, states in pages.items():
                    assert {of: before[of] for of in states} == states, (url, states, before)
                if condition(before):
                    return started
            if started > deadline:
                logs = "\n".join(f"--- {p.log_path}:\n{p.log()[-2000:]}" for p in processes)
                raise AssertionError(f"timed out after {timeout} s waiting for {what}: {before}\n{logs}")
            time.sleep(0.2)

    try:
        wait_until(lambda api: api[TARGET] == ("healthy", "yes") and api[APP] == ("healthy", None),
                   90, f"{TARGET} healthy with traffic on every page")
        put(FAULT_ON)
        # Until the probes and AWS's own view both see it (Route 53 is asked at most every
        # CONTROLPLANE_ROUTE53_STATUS_MIN_INTERVAL while healthy).
        wait_until(
            lambda api: api[TARGET][0] == "unhealthy" and "Route 53 health check" in _reason(client),
            90, f"{TARGET} unhealthy, Route 53's view included",
        )
        put(FAULT_OFF)
        reverted = time.monotonic()
        wait_for(lambda: _route53_says_healthy(sb), 30, message="Route 53 to say healthy again")
        aws_healthy = time.monotonic()
        reached = wait_until(lambda api: api[TARGET] == ("healthy", "yes") and api[APP] == ("healthy", None),
                             60, f"{TARGET} healthy again on every page", since=reverted)
    finally:
        put(FAULT_OFF)
        for process in processes:
            process.stop()

    assert reached - aws_healthy <= bound, (
        f"the pages agreed with AWS {reached - aws_healthy:.1f} s after it said healthy "
        f"({aws_healthy - reverted:.1f} s after the revert); bound {bound} s"
    )
    checked = [r for r in rounds if r[1] == r[3]]
    assert len(checked) >= 3 and {r[1][TARGET][0] for r in checked} >= {"healthy", "unhealthy"}


def _reason(client):
    (app,) = [a for a in client.get(STATUS).json()["applications"] if a["name"] == APP]
    return next(r["reason"] for r in app["regions"] if r["region"] == REGION)
