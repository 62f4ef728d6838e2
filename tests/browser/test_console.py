"""The console in a real headless Chromium: sign in, read the overview, open a stack,
and no Content Security Policy violation on the way."""

import os
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.utils import timezone

from controlplane.roles import VIEWER, sync_roles
from regions.models import Application, Architecture, Component, ComponentKind, Region, Stack
from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD, _make_user

pytestmark = [
    pytest.mark.browser,
    # live_server needs committed rows; serialized_rollback restores the role groups
    # that the data migration created, for the tests that run after this one.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

SCREENSHOTS = Path(settings.BASE_DIR) / "docs" / "screenshots"


def sample_inventory():
    regions = {
        code: Region.objects.create(code=code, account_id="123456789012")
        for code in ("us-east-1", "us-west-2", "eu-central-1")
    }
    orders = Application.objects.create(
        name="orders",
        display_name="Orders API",
        architecture=Architecture.DNS,
        global_endpoint="orders.example.com",
        owner_team="payments-sre",
    )
    carts = Application.objects.create(
        name="carts",
        display_name="Carts",
        architecture=Architecture.ANYCAST,
        global_endpoint="a1b2c3d4e5f6.awsglobalaccelerator.com",
        owner_team="checkout-sre",
    )
    Application.objects.create(
        name="profiles", architecture=Architecture.DNS, owner_team="identity"
    )
    now = timezone.now()
    for app in (orders, carts):
        for code, region in regions.items():
            Stack.objects.create(
                application=app,
                region=region,
                health_url=f"https://{app.name}.{code}.example.com/health",
                in_rotation=not (app is carts and code == "eu-central-1"),
                discovered_at=now,
            )
    Stack.objects.create(
        application=Application.objects.get(name="profiles"), region=regions["us-east-1"]
    )
    stack = Stack.objects.get(application=orders, region=regions["us-east-1"])
    account = "us-east-1:123456789012"
    components = [
        (ComponentKind.ROUTE53_HEALTH_CHECK, "orders-use1-health",
         "9f2c1a7e-4b0d-4c1e-9a55-1f0e2d3c4b5a",
         {"Type": "HTTPS", "ResourcePath": "/health", "FailureThreshold": 3, "Inverted": False}),
        (ComponentKind.ROUTE53_RECORD, "orders.example.com",
         "Z0123456789ABC/orders.example.com./A/us-east-1",
         {"Type": "A", "Region": "us-east-1", "SetIdentifier": "us-east-1"}),
        (ComponentKind.API_GATEWAY_STAGE, "prod",
         f"arn:aws:apigateway:{account}:/restapis/a1b2c3/stages/prod",
         {"stageName": "prod", "throttle": {"burstLimit": 5000, "rateLimit": 10000}}),
        (ComponentKind.LAMBDA_FUNCTION, "orders-api-handler",
         f"arn:aws:lambda:{account}:function:orders-api-handler",
         {"MemorySize": 512, "Runtime": "python3.12", "ReservedConcurrency": None}),
        (ComponentKind.DYNAMODB_REPLICA, "orders",
         f"arn:aws:dynamodb:{account}:table/orders",
         {"TableStatus": "ACTIVE", "Replicas": ["us-east-1", "us-west-2", "eu-central-1"]}),
        (ComponentKind.SSM_FAULT_PARAMETER, "/orders/failure-injection",
         "/orders/failure-injection",
         {"is_enabled": False, "fault_type": "latency", "delay": 400, "rate": 0.5}),
    ]
    for kind, name, identifier, config in components:
        Component.objects.create(
            stack=stack, kind=kind, name=name, identifier=identifier, config=config,
            discovered_at=now,
        )
    return orders


@pytest.fixture
def console_user(transactional_db):
    sync_roles(apps)  # the groups exist even if an earlier flush removed them
    return _make_user("vera-viewer", VIEWER)


def screenshot(page, name):
    if os.environ.get("SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def test_sign_in_see_the_overview_and_open_a_stack(live_server, page, console_user, csp_violations):
    sample_inventory()

    page.goto(f"{live_server.url}/")
    assert "/accounts/login/" in page.url
    page.fill("input[name=username]", console_user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")

    page.wait_for_url(f"{live_server.url}/")
    grid = page.locator("#overview-grid")
    for text in ("Orders API", "Carts", "profiles", "us-east-1", "eu-central-1"):
        assert grid.get_by_text(text, exact=True).first.is_visible()
    assert grid.locator(".badge--gray").count() == 7
    assert grid.locator(".rotation--out").count() == 1
    assert page.locator(".account-name").inner_text() == console_user.username
    assert "viewer" in page.locator(".account").inner_text()
    assert page.locator("text=Discover now").count() == 0
    # htmx is loaded from static and replaces the grid in place
    with page.expect_response(lambda r: r.request.headers.get("hx-request") == "true"):
        page.evaluate("htmx.trigger('#overview-grid', 'refresh')")
    page.locator("#overview-grid").wait_for()
    screenshot(page, "overview.png")

    page.click("a[aria-label^='orders in us-east-1']")
    page.wait_for_url(f"{live_server.url}/apps/orders/us-east-1/")
    assert page.locator("h1").inner_text().startswith("Orders API")
    assert page.locator("table.components tbody tr").count() == 6
    page.locator("details summary").nth(3).click()
    assert page.locator("details[open] pre").inner_text().startswith("{")
    screenshot(page, "stack.png")

    assert csp_violations == []


def test_sign_out_from_the_top_bar(live_server, page, console_user, csp_violations):
    sign_in(page, live_server, console_user, PASSWORD)
    assert "python manage.py import_inventory" in page.content()

    page.click("text=Sign out")

    page.wait_for_url(f"{live_server.url}/accounts/login/")
    assert page.locator(".message").inner_text() == "Signed out."
    assert csp_violations == []


def test_the_overview_shows_lag_and_a_drill_marker_and_defines_lag_one_click_away(
    live_server, page, console_user, csp_violations
):
    from experiments.models import DrillState
    from regions.models import LagMethod, LagSample
    from tests.regions.test_overview import add_drill

    orders = sample_inventory()
    LagSample.objects.create(application=orders, source_region="us-west-2", receiving_region="us-east-1",
                             at=timezone.now(), lag_ms=400, method=LagMethod.CANARY)
    drill = add_drill(orders, "us-west-2", DrillState.RUNNING, _make_user("otto-operator", "operator"))
    sign_in(page, live_server, console_user, PASSWORD)

    east = page.locator("[data-status-of='orders/us-east-1']")
    assert east.locator(".lag-figure").inner_text() == "0.4 s"
    west = page.locator("[data-status-of='orders/us-west-2']")
    assert west.locator(".lag").inner_text() == "lag unknown: no lag samples"
    marker = page.get_by_role("link", name=f"drill #{drill.pk} running in us-west-2")
    assert marker.get_attribute("href") == f"/drills/{drill.pk}/"
    definition = page.locator("#def-lag")
    assert not definition.is_visible()  # folded away under "What these figures mean"
    east.get_by_role("link", name="lag").click()
    definition.wait_for(state="visible")  # one click: the browser opens the list at it
    assert "CONTROLPLANE_LAG_DEGRADED_SECONDS (2 s)" in page.locator("#def-lag + dd").inner_text()

    assert csp_violations == []
