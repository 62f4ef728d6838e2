"""Built-in scenarios, and the message per field an operator gets for a bad scenario."""

import pytest

from experiments.forms import ScenarioForm
from experiments.models import FaultKind, Scenario
from experiments.scenarios import BUILTIN_SCENARIOS, ensure_builtin_scenarios

pytestmark = pytest.mark.django_db

GOOD = {
    "slug": "flaky-orders",
    "name": "Flaky orders",
    "description": "",
    "fault_kind": FaultKind.SSM_FAILURE_FLAG,
    "target_selector": '{"component_kind": "ssm_fault_parameter"}',
    "parameters": '{"fault_type": "status_code", "error_code": 503, "rate": 0.5, "delay": 0}',
    "hypothesis": '{"steady_state": [{"check": "global_success_rate", "min_percent": 99}], '
    '"max_time_to_failover_seconds": 60}',
    "stop_conditions": '[{"metric": "global_error_rate", "threshold_percent": 5, "for_seconds": 30}]',
    "max_duration": "00:10:00",
    "architecture": "",
}


def errors_for(**changes):
    form = ScenarioForm(data={**GOOD, **changes})
    assert not form.is_valid()
    return form.errors


def test_the_builtin_scenarios_exist_with_stable_slugs():
    slugs = set(Scenario.objects.filter(built_in=True).values_list("slug", flat=True))
    assert slugs == {
        "fail-region-health-check", "dial-region-to-zero", "throttle-region-functions",
        "error-rate-50", "pause-replication",
    }
    assert Scenario.objects.get(slug="fail-region-health-check").architecture == "A"
    assert Scenario.objects.get(slug="dial-region-to-zero").architecture == "B"
    assert Scenario.objects.get(slug="error-rate-50").parameters["rate"] == 0.5


def test_ensuring_the_builtins_twice_changes_nothing():
    before = list(Scenario.objects.order_by("pk").values())
    ensure_builtin_scenarios()
    ensure_builtin_scenarios()
    after = list(Scenario.objects.order_by("pk").values())
    assert [{k: v for k, v in r.items() if k != "updated_at"} for r in after] == [
        {k: v for k, v in r.items() if k != "updated_at"} for r in before
    ]


def test_every_builtin_scenario_is_valid():
    for spec in BUILTIN_SCENARIOS:
        Scenario.objects.get(slug=spec["slug"]).full_clean()


def test_a_good_scenario_saves_with_its_author(operator):
    form = ScenarioForm(data=GOOD, user=operator)
    assert form.is_valid(), form.errors
    scenario = form.save()
    assert (scenario.created_by, scenario.built_in) == (operator, False)


def test_an_unknown_fault_kind_is_reported_on_fault_kind():
    assert "fault_kind" in errors_for(fault_kind="unplug_the_datacenter")


def test_an_unknown_fault_kind_is_reported_by_the_model_too():
    scenario = Scenario(slug="x", name="x", fault_kind="unplug_the_datacenter")
    with pytest.raises(Exception) as info:
        scenario.full_clean()
    assert "Unknown fault kind 'unplug_the_datacenter'." in info.value.message_dict["fault_kind"]


def test_a_rate_outside_zero_to_one_is_reported_on_parameters():
    assert errors_for(parameters='{"rate": 1.5}')["parameters"] == ["rate: a number between 0 and 1."]


def test_a_negative_delay_is_reported_on_parameters():
    assert errors_for(parameters='{"fault_type": "latency", "delay": -5}')["parameters"] == [
        "delay: milliseconds, 0 or more."
    ]


def test_an_error_code_that_is_not_4xx_or_5xx_is_reported_on_parameters():
    assert errors_for(parameters='{"error_code": 302}')["parameters"] == [
        "error_code: an HTTP error status, 4xx or 5xx."
    ]


def test_several_bad_parameters_get_a_message_each():
    bad = '{"rate": -1, "delay": -1, "error_code": 200, "colour": "red"}'
    messages = errors_for(parameters=bad)["parameters"]
    assert len(messages) == 4
    assert messages[0] == "colour: not a parameter of SSM failure-injection flag."


def test_a_max_duration_above_the_cap_is_reported_on_max_duration():
    assert errors_for(max_duration="02:00:00")["max_duration"] == ["At most 1 h."]


def test_the_cap_follows_the_setting(settings):
    from datetime import timedelta

    settings.DRILL_MAX_DURATION = timedelta(minutes=5)
    assert errors_for()["max_duration"] == ["At most 5 min."]


def test_a_stop_condition_threshold_out_of_range_is_reported_on_stop_conditions():
    errors = errors_for(stop_conditions='[{"metric": "global_error_rate", "threshold_percent": 150, '
                        '"for_seconds": 30}, {"metric": "global_error_rate", "threshold_percent": 5, '
                        '"for_seconds": -1}, {"metric": "moon_phase"}]')
    assert errors["stop_conditions"] == [
        "#1: threshold_percent must be above 0 and at most 100.",
        "#2: for_seconds must be 0 or more.",
        "#3: metric is one of global_error_rate, global_p95_latency, other_region_unhealthy, "
        "replication_lag.",
    ]


def test_a_hypothesis_with_a_negative_failover_time_is_reported_on_hypothesis():
    errors = errors_for(hypothesis='{"max_time_to_failover_seconds": -1}')
    assert errors["hypothesis"] == ["max_time_to_failover_seconds: seconds, 0 or more."]


def test_a_selector_for_the_wrong_component_kind_is_reported_on_target_selector():
    errors = errors_for(target_selector='{"component_kind": "lambda_function"}')
    assert errors["target_selector"] == [
        "SSM failure-injection flag acts on SSM failure-injection parameter components, not lambda_function."
    ]


def test_each_bad_field_gets_its_own_message():
    errors = errors_for(
        parameters='{"rate": 2}', max_duration="03:00:00",
        stop_conditions='[{"metric": "global_error_rate", "threshold_percent": 0}]',
    )
    assert set(errors) == {"parameters", "max_duration", "stop_conditions"}


def test_builtin_scenarios_cannot_be_edited_but_slugs_are_stable():
    builtin = Scenario.objects.get(slug="error-rate-50")
    form = ScenarioForm(data={**GOOD, "slug": "renamed"}, instance=builtin)
    assert not form.is_valid()
    assert "Built-in scenarios cannot be edited; copy one instead." in form.non_field_errors()
