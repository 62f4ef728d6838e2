"""The drill request form offers only the regions and scenarios that fit the chosen
application: when it is chosen (the htmx re-render), in the preview, and after an
error; a choice that does not fit still gets the service's message, not "unknown"."""

import re

import pytest
from django.urls import reverse

from experiments.models import Drill
from experiments.scenarios import ensure_builtin_scenarios
from regions.models import Application, Architecture, Region, Stack

NEW = reverse("experiments:new")
CREATE = reverse("experiments:create")
# what fits orders (architecture A, stacks in us-east-1 and eu-central-1)
ORDERS_REGIONS = ["eu-central-1", "us-east-1"]


@pytest.fixture
def world(db):
    """orders (A) in us-east-1 and eu-central-1; payments (B) in us-west-2 only."""
    ensure_builtin_scenarios()
    regions = {code: Region.objects.create(code=code) for code in ("eu-central-1", "us-east-1", "us-west-2")}
    orders = Application.objects.create(name="orders", architecture=Architecture.DNS)
    payments = Application.objects.create(name="payments", architecture=Architecture.ANYCAST)
    for app, code in ((orders, "us-east-1"), (orders, "eu-central-1"), (payments, "us-west-2")):
        Stack.objects.create(application=app, region=regions[code])


def offered(html, name):
    """The non-empty option values of the select `name` as rendered."""
    select = re.search(rf'<select name="{name}".*?</select>', html, re.S).group(0)
    return [value for value in re.findall(r'<option value="([^"]*)"', select) if value]


def orders_scenarios():
    from experiments.models import Scenario

    return sorted(
        Scenario.objects.filter(architecture__in=["", Architecture.DNS]).values_list("slug", flat=True)
    )


def test_choosing_the_application_narrows_regions_and_scenarios(operator, world, client_for):
    html = client_for(operator).get(NEW, {"application": "orders"}, headers={"HX-Request": "true"}
                                    ).content.decode()

    assert html.lstrip().startswith('<section id="request-form"')  # the htmx re-render
    assert offered(html, "region") == ORDERS_REGIONS
    assert sorted(offered(html, "scenario")) == orders_scenarios()
    assert "dial-region-to-zero" not in offered(html, "scenario")  # architecture B
    assert "fail-region-health-check" in offered(html, "scenario")


def test_before_an_application_is_chosen_everything_is_offered(operator, world, client_for):
    html = client_for(operator).get(NEW).content.decode()

    assert offered(html, "region") == ["eu-central-1", "us-east-1", "us-west-2"]
    assert "dial-region-to-zero" in offered(html, "scenario")


def test_after_an_error_the_form_still_offers_only_what_fits(operator, world, client_for):
    response = client_for(operator).post(CREATE, {
        "application": "orders", "region": "us-east-1", "scenario": "fail-region-health-check",
        "window_start": "2030-01-02T10:00", "window_end": "2030-01-01T10:00",
    })

    assert response.status_code == 400
    html = response.content.decode()
    assert "The window must end after it starts." in html
    assert offered(html, "region") == ORDERS_REGIONS
    assert sorted(offered(html, "scenario")) == orders_scenarios()
    assert re.search(r'<option value="us-east-1" selected>', html)  # the choice is kept
    assert Drill.objects.count() == 0


def test_a_choice_that_does_not_fit_gets_the_services_message_and_the_fitting_choices(
    operator, world, client_for
):
    response = client_for(operator).post(
        CREATE, {"application": "orders", "region": "us-west-2", "scenario": "dial-region-to-zero"}
    )

    assert response.status_code == 400
    errors = response.context["form"].errors
    assert "applies to architecture B" in errors["scenario"][0]
    assert errors["region"] == ["orders has no stack in us-west-2."]
    html = response.content.decode()
    assert offered(html, "region") == ORDERS_REGIONS
    assert "dial-region-to-zero" not in offered(html, "scenario")


def test_the_preview_with_an_error_offers_only_what_fits(operator, world, client_for):
    html = client_for(operator).get(NEW, {
        "preview": "1", "application": "payments", "region": "us-east-1",
        "scenario": "fail-region-health-check",
    }).content.decode()

    assert "payments has no stack in us-east-1." in html
    assert offered(html, "region") == ["us-west-2"]
    assert "fail-region-health-check" not in offered(html, "scenario")  # architecture A
    assert "dial-region-to-zero" in offered(html, "scenario")


def test_an_unknown_choice_is_still_named_unknown(operator, world, client_for):
    response = client_for(operator).post(
        CREATE, {"application": "orders", "region": "mars-1", "scenario": "x"}
    )

    errors = response.context["form"].errors
    assert errors["region"] == ["Unknown region 'mars-1'."]
    assert errors["scenario"] == ["Unknown scenario 'x'."]
