"""The status markup of regions/overview_grid.py for the templates, so that the
application, stack and drill pages show a status, a lag figure and a drill marker as the
overview does: {% load status_markup %}."""

from django import template
from django.utils.safestring import mark_safe

from regions import overview_grid

register = template.Library()


@register.simple_tag
def status_attrs(application, status, routing=None, region=None):
    """data-status-of / data-status / data-traffic of an element stating the status of
    an application (name), or of its stack in `region`."""
    of = f"{application}/{region}" if region else application
    return mark_safe(overview_grid.status_attrs(of, status, routing))  # noqa: S308 - escaped there


@register.simple_tag
def lag_figure(replication):
    """The replication lag figure of a region (status.ReplicationVerdict)."""
    return mark_safe(overview_grid.lag_figure(replication))  # noqa: S308 - escaped there


@register.simple_tag
def drill_markers(drills, with_region=False):
    """"drill #N running" links for monitoring.ActiveDrill rows."""
    return mark_safe(overview_grid.drill_markers(drills, with_region=with_region))  # noqa: S308 - escaped there
