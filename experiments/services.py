"""Service functions that change drills, approvals, the ledger and the halt switch.

Every state change is a conditional UPDATE and writes its audit event explicitly, in
the same transaction, only when the UPDATE changed a row. Callers pass ids and act only
on a True result: double clicks and redelivered tasks then do nothing.
"""


from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from controlplane import audit
from controlplane.models import AuditSource
from experiments import faults, plans
from experiments.models import (
    APPROVAL_TTL,
    STATE_TIMESTAMP,
    Approval,
    Decision,
    Drill,
    DrillState,
    DrillStep,
    HaltState,
    StepKind,
)
from experiments.scenarios import validate_scenario


def transition(drill_id, from_states, to_state, *, actor=None, source=AuditSource.SYSTEM,
               request_id="", audit_data=None, **fields):
    """Move drill `drill_id` from one of `from_states` to `to_state`, setting `fields`
    and the state's timestamp. True if this call made the change (then one audit event
    `drill.<to_state>` is written); False if the drill was not in `from_states`."""
    if isinstance(from_states, str):
        from_states = [from_states]
    to_state = DrillState(to_state)
    now = timezone.now()
    values = {"state": to_state, **fields}
    values.setdefault(STATE_TIMESTAMP[to_state], now)
    with transaction.atomic():
        changed = Drill.objects.filter(pk=drill_id, state__in=list(from_states)).update(**values)
        if changed != 1:
            return False
        drill = Drill.objects.select_related("scenario", "region", "application").get(pk=drill_id)
        after = {"state": to_state.value, **{k: v for k, v in fields.items() if k != "plan"}}
        if audit_data:
            after.update(audit_data)
        audit.record(
            actor,
            f"drill.{to_state.value}",
            source=source,
            obj=drill,
            object_repr=drill.audit_repr(),
            before={"state": list(map(str, from_states))},
            after=after,
            request_id=request_id,
        )
        DrillStep.add(drill_id, StepKind.STATE, f"{to_state.label}", {"state": to_state.value}, at=now)
    return True


# --- planning -------------------------------------------------------------------------


def request_drill(*, scenario, application, region, requested_by, window_start=None, window_end=None,
                  source=AuditSource.CONSOLE, request_id=""):
    """Create a drill in `requested` with its plan and hash (audit: drill.requested)."""
    # A scenario saved before a rule existed (or written around the form) is checked
    # again: a check the runner would not evaluate is refused, never ignored.
    validate_scenario(scenario)
    if not scenario.applies_to(application):
        raise ValidationError(
            {"scenario": f"{scenario.name} does not apply to architecture {application.architecture}."}
        )
    plan, digest = plans.make_plan(scenario, application, region)
    with transaction.atomic():
        drill = Drill.objects.create(
            scenario=scenario, application=application, region=region, requested_by=requested_by,
            window_start=window_start, window_end=window_end, plan=plan, plan_hash=digest,
        )
        audit.record(
            requested_by, "drill.requested", source=source, obj=drill, request_id=request_id,
            after={"scenario": scenario.slug, "application": application.name, "region": region.code,
                   "plan_hash": digest},
        )
        DrillStep.add(drill.pk, StepKind.PLAN, f"Planned {len(plan['calls'])} call(s)", {"plan_hash": digest})
    return drill


def replan(drill_id, plan, *, actor, source=AuditSource.CONSOLE, request_id=""):
    """Replace the plan of a drill not yet queued; it goes back to `requested` and any
    approval is void (it was for another hash)."""
    return transition(
        drill_id, [DrillState.REQUESTED, DrillState.APPROVED], DrillState.REQUESTED,
        actor=actor, source=source, request_id=request_id,
        plan=plan, plan_hash=faults.plan_hash(plan), approved_at=None,
        audit_data={"plan_hash": faults.plan_hash(plan)},
    )


# --- approvals ------------------------------------------------------------------------


def valid_approval(drill, now=None):
    """The approval that currently authorises the drill's plan, or None: decision
    approve, for the drill's current plan hash, not expired, not by the requester."""
    now = now or timezone.now()
    for approval in Approval.objects.filter(drill_id=drill.pk, decision=Decision.APPROVE):
        if approval.is_valid_for(drill, now):
            return approval
    return None


def decide(drill, approver, decision, *, comment="", source=AuditSource.CONSOLE, request_id=""):
    """Record an approver's decision on the drill's current plan and move the drill
    (requested -> approved | rejected). Raises PermissionDenied for the requester or a
    user without `experiments.approve_drill`; returns the Approval, or None when the
    drill was no longer waiting (nothing written)."""
    decision = Decision(decision)
    if approver.pk == drill.requested_by_id:
        raise PermissionDenied("The requester of a drill cannot approve or reject it.")
    if not approver.has_perm("experiments.approve_drill"):
        raise PermissionDenied("Approving drills needs the approver role.")
    to_state = DrillState.APPROVED if decision == Decision.APPROVE else DrillState.REJECTED
    with transaction.atomic():
        current = Drill.objects.select_for_update().filter(pk=drill.pk).values("plan_hash").first()
        if current is None or current["plan_hash"] != drill.plan_hash:
            return None  # the plan changed under the approver's eyes
        if not transition(drill.pk, [DrillState.REQUESTED], to_state, actor=approver, source=source,
                          request_id=request_id,
                          audit_data={"plan_hash": drill.plan_hash, "comment": comment}):
            return None
        now = timezone.now()
        return Approval.objects.create(
            drill=drill, approver=approver, decision=decision, comment=comment,
            plan_hash=drill.plan_hash, created_at=now, expires_at=now + APPROVAL_TTL,
        )


# --- halt ------------------------------------------------------------------------------


def halt_state():
    state, _ = HaltState.objects.get_or_create(pk=1)
    return state


def is_halted():
    return HaltState.objects.filter(pk=1, halted=True).exists()


def halt(actor, reason, *, source=AuditSource.CONSOLE, request_id=""):
    """Turn the halt on; True if it was off."""
    halt_state()
    with transaction.atomic():
        changed = HaltState.objects.filter(pk=1, halted=False).update(
            halted=True, reason=reason, halted_by=audit.actor_name(actor), halted_at=timezone.now(),
            cleared_by="", cleared_at=None,
        )
        if changed:
            audit.record(actor, "drills.halt", source=source, object_type="experiments.haltstate",
                         object_id="1", object_repr="halt", after={"halted": True, "reason": reason},
                         request_id=request_id)
    return bool(changed)


def clear_halt(actor, *, source=AuditSource.CONSOLE, request_id=""):
    """Turn the halt off; True if it was on."""
    with transaction.atomic():
        changed = HaltState.objects.filter(pk=1, halted=True).update(
            halted=False, cleared_by=audit.actor_name(actor), cleared_at=timezone.now()
        )
        if changed:
            audit.record(actor, "drills.clear_halt", source=source, object_type="experiments.haltstate",
                         object_id="1", object_repr="halt", before={"halted": True},
                         after={"halted": False}, request_id=request_id)
    return bool(changed)
