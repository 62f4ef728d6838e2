import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from regions.models import Application, Architecture, Component, ComponentKind, Region, Stack

# session, user, user perms, group perms, roles, stack, components, siblings, heartbeats
MAX_QUERIES = 10
LAMBDA_ARN = "arn:aws:lambda:us-east-1:123456789012:function:orders-api-handler"


@pytest.fixture
def stack(db):
    app = Application.objects.create(
        name="orders", display_name="Orders API", architecture=Architecture.DNS
    )
    east = Region.objects.create(code="us-east-1", account_id="123456789012")
    west = Region.objects.create(code="us-west-2")
    Stack.objects.create(application=app, region=west)
    return Stack.objects.create(
        application=app,
        region=east,
        health_url="https://api.us-east-1.orders.example.com/health",
        in_rotation=False,
        discovered_at=timezone.now(),
    )


def add_components(stack, count):
    kinds = list(ComponentKind)
    for i in range(count):
        Component.objects.create(
            stack=stack,
            kind=kinds[i % len(kinds)],
            identifier=f"{LAMBDA_ARN}-{i}",
            name=f"component-{i}",
            config={"MemorySize": 512, "ReservedConcurrency": None, "index": i},
        )


def url(stack):
    return reverse("regions:stack", args=[stack.application.name, stack.region.code])


def test_stack_page_shows_details_and_rotation(client_for, viewer, stack):
    response = client_for(viewer).get(url(stack))

    html = response.content.decode()
    assert response.status_code == 200
    assert "Orders API" in html
    assert "us-east-1" in html
    assert "https://api.us-east-1.orders.example.com/health" in html
    assert "out of rotation" in html
    assert "badge--unknown" in html
    assert "HX-Request" in response["Vary"]


def test_stack_page_links_to_the_other_regions(client_for, viewer, stack):
    html = client_for(viewer).get(url(stack)).content.decode()

    assert reverse("regions:stack", args=["orders", "us-west-2"]) in html
    assert reverse("regions:application", args=["orders"]) in html


def test_components_table_shows_kind_name_arn_and_config(client_for, viewer, stack):
    Component.objects.create(
        stack=stack,
        kind=ComponentKind.LAMBDA_FUNCTION,
        identifier=LAMBDA_ARN,
        name="orders-api-handler",
        config={"MemorySize": 512, "Runtime": "python3.12"},
    )

    html = client_for(viewer).get(url(stack)).content.decode()

    assert "Lambda function" in html
    assert "orders-api-handler" in html
    assert LAMBDA_ARN in html
    assert "<details>" in html
    assert "&quot;MemorySize&quot;: 512" in html


def test_stack_without_components_says_so(client_for, viewer, stack):
    html = client_for(viewer).get(url(stack)).content.decode()

    assert "No component is known for this stack" in html


def test_unknown_application_or_region_is_404(client_for, viewer, stack):
    client = client_for(viewer)

    assert client.get(reverse("regions:stack", args=["nope", "us-east-1"])).status_code == 404
    assert client.get(reverse("regions:stack", args=["orders", "eu-west-9"])).status_code == 404


def test_404_page_uses_the_console_template(client_for, viewer, stack):
    response = client_for(viewer).get(reverse("regions:stack", args=["nope", "us-east-1"]))

    assert "Nothing here" in response.content.decode()


def test_outsider_gets_403(client_for, outsider, stack):
    response = client_for(outsider).get(url(stack))

    assert response.status_code == 403
    assert "Your role does not allow this" in response.content.decode()


def test_query_count_is_pinned(client_for, viewer, stack, django_assert_max_num_queries):
    add_components(stack, 5)
    client = client_for(viewer)

    with django_assert_max_num_queries(MAX_QUERIES):
        assert client.get(url(stack)).status_code == 200


def test_query_count_does_not_grow_with_the_number_of_components(client_for, viewer, stack):
    client = client_for(viewer)
    add_components(stack, 2)
    with CaptureQueriesContext(connection) as few:
        client.get(url(stack))

    Component.objects.filter(stack=stack).delete()
    add_components(stack, 40)
    with CaptureQueriesContext(connection) as many:
        response = client.get(url(stack))
    assert response.content.decode().count("<details>") == 40

    assert len(many) == len(few) <= MAX_QUERIES
