"""Approval rules: never the requester, bound to the plan hash, void after 24 h."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from controlplane import audit
from controlplane.models import AuditEvent
from controlplane.roles import APPROVER, OPERATOR
from experiments import services
from experiments.faults import plan_hash
from experiments.models import Approval, Decision, DrillState
from tests.experiments.helpers import change_plan

pytestmark = pytest.mark.django_db

PLAN = {"calls": [{"service": "lambda", "operation": "PutFunctionConcurrency", "params": {"x": 0}}]}


@pytest.fixture
def drill(make_drill):
    return make_drill(plan=PLAN, plan_hash=plan_hash(PLAN))


def test_an_approver_approves_the_exact_plan(drill, approver):
    approval = services.decide(drill, approver, Decision.APPROVE, comment="go")
    drill.refresh_from_db()
    assert drill.state == DrillState.APPROVED
    assert approval.plan_hash == drill.plan_hash
    assert approval.expires_at - approval.created_at == timedelta(hours=24)
    assert services.valid_approval(drill) == approval
    assert AuditEvent.objects.get(action="drill.approved").after["plan_hash"] == drill.plan_hash


def test_requester_cannot_approve_own_drill(make_user, make_drill):
    both = make_user("rita-requester", OPERATOR, APPROVER)
    drill = make_drill(requested_by=both, plan=PLAN, plan_hash=plan_hash(PLAN))
    with pytest.raises(PermissionDenied):
        services.decide(drill, both, Decision.APPROVE)
    drill.refresh_from_db()
    assert drill.state == DrillState.REQUESTED
    assert not Approval.objects.exists()


def test_an_approval_row_by_the_requester_is_never_valid(drill):
    approval = Approval(drill=drill, approver=drill.requested_by, decision=Decision.APPROVE,
                        plan_hash=drill.plan_hash)
    assert not approval.is_valid_for(drill)


def test_an_operator_cannot_approve(drill, make_user):
    other_operator = make_user("olga-operator", OPERATOR)
    with pytest.raises(PermissionDenied):
        services.decide(drill, other_operator, Decision.APPROVE)


def test_an_expired_approval_is_void(drill, approver):
    approval = services.decide(drill, approver, Decision.APPROVE)
    assert services.valid_approval(drill, now=approval.created_at + timedelta(hours=23)) == approval
    assert services.valid_approval(drill, now=approval.created_at + timedelta(hours=24, seconds=1)) is None
    Approval.objects.filter(pk=approval.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert services.valid_approval(drill) is None


def test_an_approval_is_void_for_a_plan_that_changed_since(drill, approver):
    services.decide(drill, approver, Decision.APPROVE)
    changed = {"calls": [{**PLAN["calls"][0], "params": {"x": 1}}]}
    change_plan(drill.pk, changed)
    drill.refresh_from_db()
    assert drill.plan_hash == plan_hash(changed)
    assert services.valid_approval(drill) is None


def test_an_approval_of_a_plan_that_changed_meanwhile_is_not_recorded(drill, approver):
    stale = type(drill).objects.get(pk=drill.pk)
    change_plan(drill.pk, {"calls": []})
    assert services.decide(stale, approver, Decision.APPROVE) is None
    assert not Approval.objects.exists()


def test_a_rejection_ends_the_drill_and_a_second_decision_does_nothing(drill, approver, make_user):
    services.decide(drill, approver, Decision.REJECT, comment="not today")
    drill.refresh_from_db()
    assert drill.state == DrillState.REJECTED
    assert services.valid_approval(drill) is None
    second = make_user("arne-approver", APPROVER)
    assert services.decide(drill, second, Decision.APPROVE) is None
    assert Approval.objects.count() == 1


def test_halt_and_clear_are_audited_once(operator, admin):
    assert services.halt_all(operator, "game day over")
    assert not services.halt_all(operator, "again")
    assert services.is_halted()
    assert services.clear_halt(admin, "game day resumed")
    assert not services.clear_halt(admin, "again")
    assert not services.is_halted()
    events = AuditEvent.objects.order_by("seq")
    assert [e.action for e in events] == ["halt.halted", "halt.cleared"]
    # the names the audit page's filter maps the old ones to
    assert set(audit.RENAMED_ACTIONS.values()) == {e.action for e in events}
    assert events[1].after == {"halted": False, "reason": "game day resumed"}


def test_roles_hold_the_drill_permissions(viewer, operator, approver, admin):
    assert viewer.has_perm("experiments.view_drill") and viewer.has_perm("experiments.view_scenario")
    assert not viewer.has_perm("experiments.request_drill")
    assert operator.has_perm("experiments.request_drill") and operator.has_perm("experiments.halt_drills")
    assert operator.has_perm("experiments.change_scenario")
    assert not operator.has_perm("experiments.approve_drill")
    assert approver.has_perm("experiments.approve_drill") and approver.has_perm("experiments.abort_drill")
    assert approver.has_perm("experiments.halt_drills") and not approver.has_perm("experiments.clear_halt")
    assert not approver.has_perm("experiments.request_drill")
    assert admin.has_perm("experiments.clear_halt") and admin.has_perm("experiments.approve_drill")
    assert not operator.has_perm("experiments.clear_halt")
