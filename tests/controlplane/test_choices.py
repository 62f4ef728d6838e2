"""controlplane.choices.ColouredChoices: the badge colour declared beside each label."""

import pytest

from controlplane.choices import ColouredChoices
from experiments.models import CompensationState, Decision, DrillState, StepKind
from regions.status import HealthStatus


class Light(ColouredChoices):
    GO = "go", "Go", "green"
    STOP = "stop", "Stop", "red"


def test_values_and_labels_are_those_of_text_choices_and_each_member_has_its_colour():
    assert Light.choices == [("go", "Go"), ("stop", "Stop")]
    assert Light.GO == "go" and Light("stop") is Light.STOP
    assert [(member.colour, member.badge) for member in Light] == [("green", "green"), ("red", "red")]
    assert Light.colour_of("stop") == "red"


def test_a_member_without_a_colour_is_refused():
    with pytest.raises(TypeError, match=r"Half\.NO: declare \(value, label, colour\)"):

        class Half(ColouredChoices):
            YES = "yes", "Yes", "green"
            NO = "no", "No"


def test_every_colour_of_every_status_has_its_one_badge_style(settings):
    """Health, drill states, steps, ledger rows and decisions: one class per colour, in
    console.css (which every page loads), and no badge class named after a status."""
    css = (settings.BASE_DIR / "static" / "css" / "console.css").read_text()
    for choices in (HealthStatus, DrillState, StepKind, CompensationState, Decision):
        for member in choices:
            assert f".badge--{member.colour} " in css, member
            assert f".badge--{member.value} " not in css or member.value == member.colour, member
