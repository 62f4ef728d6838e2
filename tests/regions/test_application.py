import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from regions.models import Application, Architecture, Component, ComponentKind, Region, Stack

# session, user, user perms, group perms, roles, application, stacks, the status loader's
# six (monitoring.load_picture), heartbeats (footer)
MAX_QUERIES = 14


@pytest.fixture
def application(db):
    app = Application.objects.create(
        name="carts",
        display_name="Carts",
        architecture=Architecture.ANYCAST,
        global_endpoint="a1234567890abcdef.awsglobalaccelerator.com",
        owner_team="checkout-sre",
    )
    east = Region.objects.create(code="us-east-1")
    west = Region.objects.create(code="us-west-2")
    stack = Stack.objects.create(application=app, region=east)
    Stack.objects.create(application=app, region=west, in_rotation=False)
    for i in range(3):
        Component.objects.create(
            stack=stack, kind=ComponentKind.LAMBDA_FUNCTION, identifier=f"fn-{i}"
        )
    return app


def url(name):
    return reverse("regions:application", args=[name])


def test_application_page_shows_architecture_endpoint_and_owner(client_for, viewer, application):
    response = client_for(viewer).get(url("carts"))

    html = response.content.decode()
    assert response.status_code == 200
    assert "Carts" in html
    assert "Global Accelerator" in html
    assert "a1234567890abcdef.awsglobalaccelerator.com" in html
    assert "checkout-sre" in html
    assert "HX-Request" in response["Vary"]


def test_application_page_lists_its_stacks_with_component_counts(
    client_for, viewer, application
):
    html = client_for(viewer).get(url("carts")).content.decode()

    assert reverse("regions:stack", args=["carts", "us-east-1"]) in html
    assert reverse("regions:stack", args=["carts", "us-west-2"]) in html
    assert '<td class="num">3</td>' in html
    assert '<td class="num">0</td>' in html
    assert "out of rotation" in html


def test_unknown_application_is_404(client_for, viewer, application):
    assert client_for(viewer).get(url("nope")).status_code == 404


def test_outsider_gets_403(client_for, outsider, application):
    assert client_for(outsider).get(url("carts")).status_code == 403


def test_query_count_does_not_grow_with_stacks_or_components(
    client_for, viewer, application, django_assert_max_num_queries
):
    client = client_for(viewer)
    with CaptureQueriesContext(connection) as few:
        client.get(url("carts"))

    for i in range(38):
        region = Region.objects.create(code=f"eu-west-{i + 1}")
        stack = Stack.objects.create(application=application, region=region)
        Component.objects.create(stack=stack, kind=ComponentKind.ALB_LISTENER, identifier="l")
    assert application.stacks.count() == 40
    with django_assert_max_num_queries(MAX_QUERIES):
        response = client.get(url("carts"))
    assert response.content.decode().count('href="/apps/carts/') == 40
    with CaptureQueriesContext(connection) as many:
        client.get(url("carts"))

    assert len(many) == len(few)


def test_the_stacks_table_polls_itself_and_htmx_gets_only_it(client_for, viewer, application):
    client = client_for(viewer)

    page = client.get(url("carts")).content.decode()
    partial = client.get(url("carts"), headers={"HX-Request": "true"})

    assert f'hx-get="{url("carts")}" hx-trigger="every 2s, refresh"' in page
    assert "data-poll" in page
    html = partial.content.decode()
    assert html.lstrip().startswith('<section id="application-live"')
    assert "<html" not in html and "checkout-sre" not in html
    assert 'data-status-of="carts/us-east-1" data-status="unknown"' in html
    assert "HX-Request" in partial["Vary"]


def test_every_figure_links_to_its_definition(client_for, viewer, application):
    html = client_for(viewer).get(url("carts")).content.decode()

    for anchor in ("status", "traffic", "lag"):
        assert f'href="#def-{anchor}"' in html
        assert f'<dt id="def-{anchor}">' in html
    assert html.count('<a class="def-link" href="#def-lag">lag</a> unknown: no lag samples') == 2
