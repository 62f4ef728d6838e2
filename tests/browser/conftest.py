import os
import shutil

import pytest
from django.apps import apps

from controlplane.roles import sync_roles
from experiments.scenarios import ensure_builtin_scenarios
from regions.discovery import run_discovery
from tests.processes import start_worker, unique_queue

# Playwright's sync API runs an event loop in this thread; the tests still use the ORM
# (to create users and the inventory) between browser steps.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: install it (apt-get install chromium) or set CHROMIUM_PATH")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1440, "height": 900}}


@pytest.fixture
def csp_violations(page):
    """Content Security Policy violations and page errors seen by `page`."""
    problems = []

    def on_console(message):
        text = message.text
        if "Content Security Policy" in text or "Refused to" in text:
            problems.append(text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    return problems


@pytest.fixture
def drill_worker(sandbox_settings, settings, tmp_path):
    """The role groups, the sandbox's inventory discovered, the built-in scenarios and a
    real Celery worker consuming a drill queue of this test's own (settings.DRILL_QUEUE)."""
    sync_roles(apps)
    assert run_discovery(actor="test", regions=["eu-central-1", "us-east-1", "us-west-2"]).warnings == []
    ensure_builtin_scenarios()
    settings.DRILL_QUEUE = unique_queue("browser-drills")
    worker = start_worker(
        settings.DRILL_QUEUE, tmp_path, concurrency=1, CONTROLPLANE_DRILL_QUEUE=settings.DRILL_QUEUE
    )
    yield worker
    worker.stop()


def sign_in(page, live_server, user, password):
    """Sign `user` in through the login form; returns once the overview is loaded."""
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
