"""Choices that carry their badge colour, declared beside each label (as NetBox's
ChoiceSet with its colours):

    class DrillState(ColouredChoices):
        REQUESTED = "requested", "Requested", "blue"
        PASSED = "passed", "Passed", "green"

    DrillState.PASSED.colour        -> "green"; the console's CSS: .badge--green
    DrillState.colour_of("passed")  -> "green" (a model field holds the plain value)

Values and labels stay those of `TextChoices` (`.choices`, `.label`), so fields and
migrations do not see the colour.
"""

from enum import property as enum_property

from django.db import models
from django.db.models.enums import ChoicesType


class ColouredChoicesType(ChoicesType):
    """Takes the colour off each member's (value, label, colour) before Django's
    ChoicesType reads (value, label), then gives it to the member."""

    def __new__(metacls, classname, bases, classdict, **kwds):
        colours = []
        for key in classdict._member_names:
            declared = classdict[key]
            if not (isinstance(declared, tuple) and len(declared) == 3):
                raise TypeError(f"{classname}.{key}: declare (value, label, colour), got {declared!r}")
            *value_label, colour = declared
            colours.append(colour)
            # dict.__setitem__, as Django's ChoicesType: enum's classdict refuses reassignment.
            dict.__setitem__(classdict, key, tuple(value_label))
        cls = super().__new__(metacls, classname, bases, classdict, **kwds)
        for member, colour in zip(cls.__members__.values(), colours, strict=True):
            member._colour_ = colour
        return cls


class ColouredChoices(models.TextChoices, metaclass=ColouredChoicesType):
    """TextChoices whose members are declared (value, label, colour)."""

    @enum_property
    def colour(self):
        """The badge colour declared beside the label."""
        return self._colour_

    @enum_property
    def badge(self):
        """The colour under the name the drill pages use (`badge--{{ x.badge }}`)."""
        return self._colour_

    @classmethod
    def colour_of(cls, value):
        """The colour of a stored value (a model field holds the plain string)."""
        return cls(value).colour
