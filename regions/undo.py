"""Applying a drift finding's undo (regions/drift.py) from the console.

`apply_undo()` is the one mutating path: the operator names a finding (its component and
the fingerprint of its undo, as the stack page's form posts them), the finding is looked
up again in the drift computed now (nothing the browser sends becomes an AWS call: only a
current finding's own undo is made), the call goes through controlplane.aws with the
region's credentials, and the audit log gets `drift.undo` (before: the finding and the
component's last-seen configuration; after: the call and AWS's request id) or, when AWS
refuses, `drift.undo_failed` with the error. Afterwards the application's live
configuration and AWS observations are read again, so the finding goes away at once
when the undo took.
"""

import logging

from django.core.exceptions import PermissionDenied

from controlplane import audit, aws
from controlplane.models import AuditSource
from regions import aws_health, drift, monitoring
from regions.discovery.reader import error_text
from regions.models import Component

log = logging.getLogger(__name__)

PERMISSION = "regions.apply_drift_undo"


class UndoRefused(Exception):
    """Nothing was called: the finding is gone, cannot be applied from the console, or
    the input names none. The message says which, for the operator."""


class UndoFailed(Exception):
    """AWS refused or could not be reached; audited as drift.undo_failed."""


def current_finding(stack, component_id, key):
    """(component, the current drift finding of that component of `stack` whose undo has
    the fingerprint `key`) or raise UndoRefused."""
    try:
        component_id = int(component_id)
    except (TypeError, ValueError):
        component_id = 0
    if not 0 < component_id < 2**63:  # an id the database can hold
        raise UndoRefused("Name a drift finding to undo (no component, or not a component id).")
    component = Component.objects.select_related("stack__region", "stack__application").filter(
        pk=component_id, stack=stack
    ).first()
    if component is None:
        raise UndoRefused(f"{stack} has no such component (any more): nothing was changed.")
    picture = monitoring.load_picture(application_ids=[component.stack.application_id]).get(
        component.stack.application_id
    )
    for finding in picture.drift if picture else []:
        if finding.component == component.pk and finding.undo.key == key:
            return component, finding
    raise UndoRefused(
        f"{component} shows no such drift now (already undone, or a drill is running on "
        f"{component.stack.application.name}): nothing was changed."
    )


def _request_id(response):
    return ((response or {}).get("ResponseMetadata") or {}).get("RequestId", "")


def apply_undo(user, stack, component_id, key, *, request=None):
    """Make the undo call of the current drift finding (`component_id` of `stack`, `key`
    its undo's fingerprint) as `user` (who needs regions.apply_drift_undo) -> the Finding
    undone. Raises PermissionDenied, UndoRefused (nothing called) or UndoFailed (AWS
    refused or did not answer; audited)."""
    if not user.has_perm(PERMISSION):
        raise PermissionDenied("Applying a drift undo needs the operator role.")
    component, finding = current_finding(stack, component_id, key)
    undo = finding.undo
    if undo.manual:
        raise UndoRefused(f"This undo is made by hand, not from the console: {undo.manual}.")
    region = component.stack.region
    before = {"finding": finding.as_dict(), "config": component.config}
    record = {
        "source": AuditSource.CONSOLE, "obj": component, "before": before,
        "request_id": getattr(request, "request_id", ""),
    }
    try:
        response = aws.call(
            undo.service, undo.region, undo.operation, undo.parameters,
            role_arn=region.role_arn, external_id=region.external_id, endpoint_urls=undo.endpoint_urls,
        )
    except (aws.ClientError, aws.BotoCoreError) as exc:
        error = error_text(exc)
        audit.record(user, "drift.undo_failed", after={"call": undo.as_dict(), "error": error}, **record)
        raise UndoFailed(f"AWS did not make {undo.operation} ({error}); the fault is still on.") from exc
    audit.record(
        user, "drift.undo", after={"call": undo.as_dict(), "aws_request_id": _request_id(response)}, **record
    )
    # Read again now, so the page shows the result rather than the configuration read before.
    application_ids = [component.stack.application_id]
    drift.refresh_live_config(application_ids=application_ids)
    aws_health.poll(application_ids=application_ids)
    return finding
