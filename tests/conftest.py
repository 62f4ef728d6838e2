import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group, User

from controlplane.authcache import CachedModelBackend
from controlplane.roles import ADMIN, APPROVER, OPERATOR, VIEWER, sync_roles
from tests.processes import SilentServer

PASSWORD = "correct-horse-battery-staple"


def _make_user(username, *roles):
    if roles and Group.objects.filter(name__in=roles).count() != len(roles):
        # A transactional test before this one flushed the tables, role groups included.
        sync_roles(django_apps)
    user = User.objects.create_user(username, password=PASSWORD)
    for role in roles:
        user.groups.add(Group.objects.get(name=role))
    if ADMIN in roles:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    return user


@pytest.fixture
def make_user(db):
    return _make_user


@pytest.fixture
def viewer(db):
    return _make_user("vera-viewer", VIEWER)


@pytest.fixture
def operator(db):
    return _make_user("otto-operator", OPERATOR)


@pytest.fixture
def approver(db):
    return _make_user("anna-approver", APPROVER)


@pytest.fixture
def admin(db):
    return _make_user("ada-admin", ADMIN)


@pytest.fixture
def outsider(db):
    """Logged in, but holds no role."""
    return _make_user("oscar-outsider")


def warm_auth_cache(user):
    """What the first request of a signed-in user puts in the cache (its user row and
    permissions: controlplane/authcache.py), so that a test counting one page's queries
    counts what every later request costs. tests/controlplane/test_authcache.py pins
    the first request's own count."""
    backend = CachedModelBackend()
    backend.get_all_permissions(backend.get_user(user.pk))


@pytest.fixture
def client_for(client):
    def login(user):
        client.force_login(user)
        warm_auth_cache(user)
        return client

    return login


@pytest.fixture
def silent_redis():
    """A "Redis" that accepts connections and never answers (tests/processes.py)."""
    server = SilentServer()
    yield server
    server.close()


# The sandbox (a local multi-region world), one per test session, in a child process.
from tests.sandbox_support import sandbox, sandbox_aws, sandbox_session, sandbox_settings  # noqa: E402, F401


def pytest_collection_modifyitems(config, items):
    """Browser tests last: Playwright's sync API keeps an event loop running in the main
    thread for the rest of the session, and tests that start their own loop with
    asyncio.run() must come before it (pytest-django has already put transactional
    tests after the others; this keeps that order within each group)."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
