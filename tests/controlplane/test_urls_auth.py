"""Walks every URL pattern of the project: nothing is reachable without signing in
except an explicit, asserted allowlist, and a viewer cannot use any mutating URL.

A new URL fails these tests until it is login-protected (or added to an allowlist
here with a reason), and until its view declares the HTTP methods it accepts."""

import re

import pytest
from django.contrib.auth.models import User
from django.urls import URLResolver, get_resolver, reverse

from regions.models import Application, Architecture, Region, Stack

LOGIN = reverse("login")
ADMIN_LOGIN = reverse("admin:login")
MUTATING_METHODS = {"POST", "PUT", "PATCH", "DELETE"}

# Public on purpose.
PUBLIC = {
    "healthz": "liveness for load balancers; reveals nothing",
    "login": "the sign-in page itself",
    "api-openapi": "the API's OpenAPI document: its shape only, no data; read before holding a token",
}
# Every URL whose view accepts a mutating method. The walk asserts this list is
# complete, so a new mutating URL must be added here (and so get the viewer check).
MUTATING = {
    "logout", "regions:discover", "regions:apply-undo",
    "experiments:create", "experiments:halt", "experiments:clear-halt", "experiments:approve",
    "experiments:reject", "experiments:abort", "experiments:scenario-create",
    "experiments:scenario-save", "experiments:close-ledger-row",
    "api-drills", "api-drill-approve", "api-drill-reject", "api-drill-abort", "api-halt",
    "notifications:create", "notifications:enabled", "notifications:delete", "notifications:test",
    "notifications:email-set", "api-channels", "api-channel",
    "api-scenario-import", "experiments:scenario-import",
    "api-schedules", "api-schedule-approve", "api-schedule-pause", "api-schedule-resume",
    "experiments:gameday-create", "experiments:gameday-approve", "experiments:gameday-reject",
    "experiments:gameday-abort", "api-gamedays", "api-gameday-approve", "api-gameday-abort",
    "experiments:schedule-create", "experiments:schedule-approve", "experiments:schedule-pause",
    "experiments:schedule-resume",
}
# Mutating, yet open to every signed-in user whatever their role.
MUTATING_FOR_EVERYONE = {
    "logout": "anyone signed in may sign out",
    "notifications:email-set": "every user with a role chooses whether to get email (an outsider gets 403)",
}
# Mutating URLs that also answer GET (a collection: GET lists, POST adds).
READ_AND_WRITE = {
    "api-channels": "GET lists the channels, POST makes one (both admin-only)",
    "api-drills": "GET ?schedule=ID lists a schedule's drills, POST requests one",
}


def _route_to_url(route, values):
    def fill(match):
        name = match.group(2)
        return str(values[name])

    return re.sub(r"<(?:(\w+):)?(\w+)>", fill, route)


def _regex_to_url(regex, values):
    text = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: str(values[m.group(1)]), regex)
    return text.lstrip("^").rstrip("$")


def all_urls(values):
    """(qualified name or None, url, callback) for every pattern of the project."""
    result = []

    def walk(patterns, prefix, namespace):
        for pattern in patterns:
            raw = str(pattern.pattern)
            if type(pattern.pattern).__name__ == "RegexPattern":
                piece = _regex_to_url(raw, values)
            else:
                piece = _route_to_url(raw, values)
            if isinstance(pattern, URLResolver):
                ns = namespace
                if pattern.namespace:
                    ns = f"{namespace}:{pattern.namespace}" if namespace else pattern.namespace
                walk(pattern.url_patterns, prefix + piece, ns)
            else:
                name = pattern.name and (f"{namespace}:{pattern.name}" if namespace else pattern.name)
                result.append((name, "/" + prefix + piece, pattern.callback, namespace))

    walk(get_resolver().url_patterns, "", None)
    return result


def declared_methods(view):
    """The HTTP methods a view accepts, read from its decorators: `api_view`'s
    `api_methods`, or the list `require_http_methods` (require_GET/require_POST)
    closes over. None when the view does not declare them."""
    fn = view
    while fn is not None:
        if getattr(fn, "api_methods", None):
            return set(fn.api_methods)
        code = getattr(fn, "__code__", None)
        if code is not None and fn.__closure__:
            cells = dict(zip(code.co_freevars, fn.__closure__, strict=True))
            if "request_method_list" in cells:
                return set(cells["request_method_list"].cell_contents)
        fn = getattr(fn, "__wrapped__", None)
    return None


@pytest.fixture
def values(db):
    app = Application.objects.create(name="orders", architecture=Architecture.DNS)
    region = Region.objects.create(code="us-east-1")
    stack = Stack.objects.create(application=app, region=region)
    user = User.objects.create_user("sample-user")
    return {
        "app": app.name,
        "region": region.code,
        "fmt": "json",
        # the Django admin's own converters
        "object_id": stack.pk,
        "id": user.pk,
        "content_type_id": 1,
        "app_label": "regions",
        "url": "no-such-page/",
        # drills (no such drill or scenario: the role checks answer before the lookup)
        "pk": 999999,
        "row": 999999,
        "slug": "fail-region-health-check",
    }


def console_urls(values):
    return [u for u in all_urls(values) if u[3] != "admin" and u[0] not in PUBLIC]


def first_method(view):
    methods = declared_methods(view)
    assert methods, f"{view} must declare its methods (require_GET, require_POST, api_view)"
    return "GET" if "GET" in methods else sorted(methods)[0]


def test_every_url_pattern_is_named_outside_the_admin(values):
    unnamed = [url for name, url, _, ns in all_urls(values) if name is None and ns != "admin"]

    assert unnamed == []


def test_the_walk_covers_the_known_console_urls(values):
    names = {name for name, *_ in all_urls(values)}

    for expected in (
        "healthz", "login", "logout", "audit", "audit-csv", "api-inventory",
        "api-status", "api-openapi",
        "regions:overview", "regions:application", "regions:stack", "regions:series",
        "regions:discover", "regions:export", "admin:index",
        "experiments:list", "experiments:new", "experiments:create", "experiments:detail",
        "experiments:approval", "experiments:approve", "experiments:reject", "experiments:abort",
        "experiments:halt", "experiments:clear-halt", "experiments:halt-banner",
        "experiments:scorecard", "experiments:scenarios", "experiments:scenario",
        "experiments:scenario-new", "experiments:scenario-create", "experiments:scenario-save",
        "api-scenarios", "api-drills", "api-drill", "api-drill-approve", "api-drill-reject",
        "api-drill-abort", "api-halt",
    ):
        assert expected in names


def test_public_allowlist_is_exactly_what_answers_anonymously(client, values):
    names = {name for name, *_ in all_urls(values)}
    assert set(PUBLIC) <= names

    assert client.get(reverse("healthz")).status_code == 200
    assert client.get(reverse("healthz")).json() == {"ok": True}
    assert client.get(LOGIN).status_code == 200
    openapi = client.get(reverse("api-openapi"))
    assert openapi.status_code == 200
    assert openapi.json()["openapi"].startswith("3.1")


def test_every_console_view_declares_its_http_methods(values):
    undeclared = [
        name for name, _, view, _ in console_urls(values) if declared_methods(view) is None
    ]

    assert undeclared == []


def test_anonymous_is_sent_to_login_on_every_console_url(client, values):
    checked = 0
    for name, url, view, _ in console_urls(values):
        method = first_method(view)
        response = client.generic(method, url)
        if url.startswith("/api/"):
            assert response.status_code == 401, name
            assert response["Content-Type"] == "application/json", name
            assert "error" in response.json(), name
        else:
            assert response.status_code == 302, f"{name} {method} {url}: {response.status_code}"
            assert response["Location"].startswith(LOGIN), name
        checked += 1

    assert checked == len(console_urls(values)) >= 9


def test_anonymous_is_sent_to_the_admin_login_on_every_admin_url(client, values):
    admin_urls = [(name, url) for name, url, _, ns in all_urls(values) if ns == "admin"]
    assert len(admin_urls) > 20

    for name, url in admin_urls:
        response = client.get(url)
        if name == "admin:login":
            assert response.status_code == 200
            continue
        assert response.status_code == 302, f"{name} {url}: {response.status_code}"
        location = response["Location"]
        if not location.startswith(ADMIN_LOGIN):
            # e.g. admin:logout sends an anonymous user to the index first
            response = client.get(location)
            location = response["Location"]
        assert location.startswith(ADMIN_LOGIN), f"{name} {url} -> {location}"


def test_mutating_allowlist_is_complete(values):
    found = {
        name
        for name, _, view, _ in console_urls(values)
        if declared_methods(view) & MUTATING_METHODS
    }

    assert found == MUTATING
    assert set(MUTATING_FOR_EVERYONE) <= MUTATING


def test_viewer_gets_403_on_every_mutating_url(client_for, viewer, values):
    client = client_for(viewer)
    urls = {name: (url, view) for name, url, view, _ in console_urls(values)}

    for name in sorted(MUTATING - set(MUTATING_FOR_EVERYONE)):
        url, view = urls[name]
        for method in sorted(declared_methods(view) & MUTATING_METHODS):
            response = client.generic(method, url)
            assert response.status_code == 403, f"{name} {method}: {response.status_code}"


def test_mutating_urls_refuse_get(client_for, admin, values):
    client = client_for(admin)
    urls = {name: url for name, url, *_ in console_urls(values)}

    for name in sorted(MUTATING - set(READ_AND_WRITE)):
        assert client.get(urls[name]).status_code == 405, name


def test_outsider_without_a_role_gets_403_on_every_console_page(client_for, outsider, values):
    client = client_for(outsider)

    for name, url, view, _ in console_urls(values):
        if name in MUTATING_FOR_EVERYONE:
            continue
        response = client.generic(first_method(view), url)
        assert response.status_code == 403, f"{name} {url}: {response.status_code}"


def test_outsider_is_sent_to_the_admin_login(client_for, outsider):
    response = client_for(outsider).get(reverse("admin:index"))

    assert response.status_code == 302
    assert response["Location"].startswith(ADMIN_LOGIN)


def test_every_api_route_is_an_api_view_and_names_a_permission_for_what_it_changes():
    from controlplane.checks import check_api_is_guarded, unguarded_api_routes

    assert unguarded_api_routes() == []
    assert check_api_is_guarded(None) == []


def test_the_check_names_an_unguarded_api_route():
    from django.http import HttpResponse
    from django.urls import URLResolver, path
    from django.urls.resolvers import RegexPattern

    from controlplane.api import api_view
    from controlplane.checks import unguarded_api_routes

    def plain(request):
        return HttpResponse()

    @api_view(["GET", "POST"])
    def no_permission(request):
        return HttpResponse()

    @api_view(["POST", "DELETE"], permission={"POST": "experiments.halt_drills"})
    def half(request):
        return HttpResponse()

    @api_view(["GET"])
    def read_only(request):
        return HttpResponse()

    resolver = URLResolver(
        RegexPattern(r"^/"),
        [
            path("api/v1/plain", plain),
            path("api/v1/open", no_permission),
            path("api/v1/half", half),
            path("api/v1/read", read_only),
            path("not-api", plain),
        ],
    )
    assert unguarded_api_routes(resolver) == [
        ("api/v1/plain", "is not wrapped by controlplane.api.api_view"),
        ("api/v1/open", "allows POST without a permission"),
        ("api/v1/half", "allows DELETE without a permission"),
    ]
