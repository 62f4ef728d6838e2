"""Every AWS change a drill makes is an audit event on the drill, written by the service
that makes it: the injection (`drill.fault_injected`, or `drill.inject_failed`) and the
revert (`drill.fault_reverted`, or `drill.revert_failed`), also when the reaper makes
it. Against the sandbox: the calls are real."""

from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane import audit, aws
from controlplane.models import AuditEvent, AuditSource
from experiments import ledger, plans, reaper
from experiments.faults import REGISTRY, Target
from experiments.models import Compensation, CompensationState, Drill, DrillState, FaultKind, Scenario

pytestmark = [pytest.mark.sandbox, pytest.mark.django_db]

LEDGER_ACTIONS = [
    "drill.fault_injected", "drill.inject_failed", "drill.fault_reverted", "drill.revert_failed",
]
WORKER = "worker-host:4242"


def ledger_events(drill):
    return list(
        AuditEvent.objects.filter(
            object_type="experiments.drill", object_id=str(drill.pk), action__in=LEDGER_ACTIONS
        ).order_by("seq")
    )


def without_inverse(call):
    return {key: value for key, value in call.items() if key != "inverse"}


def inject_scenario(drill, deadline, slug="throttle-region-functions"):
    """Inject every call of the scenario's plan on the drill's region, as the runner does."""
    scenario = Scenario.objects.get(slug=slug)
    return [
        ledger.inject(drill, fault, target, deadline=deadline, worker=WORKER)
        for fault, target in plans.targets_for(scenario, drill.application, drill.region)
    ]


def own_ssm_flag(name, region="us-east-1"):
    """A failure flag of this test's own (no inventory component): it can be broken
    out of band without touching the sandbox's stacks."""
    return Target(kind="ssm_fault_parameter", identifier=name, name=name, region=region, application="orders")


def what_the_audit_says(drill):
    """The oracle: from the drill's audit rows alone, {ledger row: (call, inverse,
    reverted)}, reverted as the last revert event says."""
    seen = {}
    for event in ledger_events(drill):
        row = event.after["compensation"]
        if event.action in ("drill.fault_injected", "drill.inject_failed"):
            seen[row] = (event.after["call"], event.after["inverse"], False)
        else:
            call, inverse, _ = seen.get(row, (None, None, False))
            seen[row] = (call, inverse, event.action == "drill.fault_reverted")
    return seen


def what_the_ledger_says(drill):
    return {
        row.pk: (without_inverse(row.call), row.inverse, row.state == CompensationState.REVERTED)
        for row in Compensation.objects.filter(drill=drill)
    }


def test_inject_and_revert_write_one_fault_injected_then_one_fault_reverted_per_ledger_row(
    inventory, sandbox_aws, make_drill, deadline
):
    lam = sandbox_aws("lambda", "us-east-1")
    lam.put_function_concurrency(FunctionName="orders-api", ReservedConcurrentExecutions=7)
    drill = make_drill(app="orders", region="us-east-1", state=DrillState.RUNNING)
    rows = inject_scenario(drill, deadline)
    assert len(rows) == 2
    assert ledger.revert_open(drill.pk, worker=WORKER) == []

    for row in rows:
        row.refresh_from_db()
        events = AuditEvent.objects.filter(after__compensation=row.pk).order_by("seq")
        assert [e.action for e in events] == ["drill.fault_injected", "drill.fault_reverted"]
        injected, reverted = events
        for event in events:
            assert (event.actor, event.source) == ("system", AuditSource.SYSTEM)
            assert (event.object_type, event.object_id) == ("experiments.drill", str(drill.pk))
            assert event.after["worker"] == WORKER
            assert event.after["target"]["identifier"] == row.target["identifier"]
        assert (injected.before["state"], injected.after["state"]) == ("pending", "injected")
        assert injected.after["call"] == without_inverse(row.call)
        assert injected.after["call"]["operation"] == "PutFunctionConcurrency"
        assert injected.after["call"]["params"]["ReservedConcurrentExecutions"] == 0
        assert injected.after["inverse"] == row.inverse
        assert injected.after["previous_value"] == row.previous_value
        assert (reverted.before["state"], reverted.after["state"]) == ("injected", "reverted")
        assert reverted.after["call"] == without_inverse(row.inverse)
        assert reverted.after["verified"] is True

    by_function = {r.target["name"]: r for r in rows}
    api = AuditEvent.objects.get(
        action="drill.fault_injected", after__compensation=by_function["orders-api"].pk
    )
    assert api.after["previous_value"] == {"ReservedConcurrentExecutions": 7}
    assert api.after["inverse"]["params"]["ReservedConcurrentExecutions"] == 7
    health = AuditEvent.objects.get(
        action="drill.fault_reverted", after__compensation=by_function["orders-health"].pk
    )
    assert health.after["call"]["operation"] == "DeleteFunctionConcurrency"
    assert lam.get_function_concurrency(FunctionName="orders-api")["ReservedConcurrentExecutions"] == 7
    report = audit.verify_chain()
    assert report.problem is None
    assert report.checked == AuditEvent.objects.count()


def test_a_revert_whose_aws_call_fails_writes_revert_failed_and_leaves_the_row_open(
    inventory, sandbox_aws, make_drill, deadline
):
    name = "/audit-test/revert-fails/failure-injection"
    fault = REGISTRY[FaultKind.SSM_FAILURE_FLAG]
    drill = make_drill(app="orders", region="us-east-1", state=DrillState.RUNNING)
    row = ledger.inject(drill, fault, own_ssm_flag(name), deadline=deadline, worker=WORKER)
    assert row.inverse["operation"] == "DeleteParameter"  # there was no flag before
    # An inverse AWS refuses (not "not found": that would close the row, see below).
    broken = {**row.inverse, "params": {"Name": ""}}
    Compensation.objects.filter(pk=row.pk).update(inverse=broken)
    row.refresh_from_db()

    problems = ledger.revert_open(drill.pk, worker=WORKER)

    assert len(problems) == 1 and "Name" in problems[0]
    row.refresh_from_db()
    assert row.state == CompensationState.FAILED
    assert row.attempts == 1
    failed = AuditEvent.objects.get(action="drill.revert_failed", after__compensation=row.pk)
    assert (failed.actor, failed.source, failed.object_id) == ("system", AuditSource.SYSTEM, str(drill.pk))
    assert (failed.before["state"], failed.after["state"]) == ("injected", "failed")
    assert failed.after["call"] == without_inverse(row.inverse)
    assert failed.after["worker"] == WORKER
    assert not AuditEvent.objects.filter(action="drill.fault_reverted").exists()
    assert ledger.open_compensations(drill.pk).get() == row
    sandbox_aws("ssm", "us-east-1").delete_parameter(Name=name)


def test_a_revert_whose_target_was_deleted_closes_the_row_as_gone(
    inventory, sandbox_aws, make_drill, deadline
):
    name = "/audit-test/revert-gone/failure-injection"
    fault = REGISTRY[FaultKind.SSM_FAILURE_FLAG]
    drill = make_drill(app="orders", region="us-east-1", state=DrillState.RUNNING)
    row = ledger.inject(drill, fault, own_ssm_flag(name), deadline=deadline, worker=WORKER)
    sandbox_aws("ssm", "us-east-1").delete_parameter(Name=name)  # someone else removed it

    problems = ledger.revert_open(drill.pk, worker=WORKER)

    assert len(problems) == 1 and "target gone, nothing to revert (ParameterNotFound" in problems[0]
    row.refresh_from_db()
    assert row.state == CompensationState.GONE
    gone = AuditEvent.objects.get(action="drill.revert_target_gone", after__compensation=row.pk)
    assert (gone.before["state"], gone.after["state"]) == ("injected", "gone")
    assert "ParameterNotFound" in gone.after["error"]
    assert not ledger.open_compensations(drill.pk).exists()  # nothing left for the reaper
    assert ledger.revert_open(drill.pk, worker=WORKER) == []  # and nothing retried


def test_an_injection_call_that_fails_writes_inject_failed_and_leaves_the_row_open(
    inventory, make_drill, deadline
):
    # SSM refuses names under the reserved "ssm" prefix: the read finds no flag, the put fails.
    fault = REGISTRY[FaultKind.SSM_FAILURE_FLAG]
    drill = make_drill(app="orders", region="us-east-1", state=DrillState.RUNNING)
    target = own_ssm_flag("ssm-audit-test-flag")

    with pytest.raises(aws.ClientError) as raised:
        ledger.inject(drill, fault, target, deadline=deadline, worker=WORKER)
    assert raised.value.response["Error"]["Code"] == "ValidationException"

    row = Compensation.objects.get(drill=drill)
    assert row.state == CompensationState.PENDING  # the call may have taken effect: still open
    failed = AuditEvent.objects.get(action="drill.inject_failed")
    assert failed.after["compensation"] == row.pk
    assert failed.after["call"] == without_inverse(row.call)
    assert failed.after["call"]["operation"] == "PutParameter"
    assert failed.after["inverse"] == row.inverse
    assert failed.after["previous_value"] == {"Value": None, "Type": None}
    assert str(raised.value) in failed.after["error"]
    assert not AuditEvent.objects.filter(action="drill.fault_injected").exists()


def test_the_reaper_s_revert_of_a_dead_worker_s_ledger_is_audited_naming_the_reaper(
    inventory, sandbox_aws, make_drill, deadline
):
    long_ago = timezone.now() - timedelta(hours=1)
    drill = make_drill(
        app="orders", region="us-east-1", state=DrillState.RUNNING, worker=WORKER, heartbeat_at=long_ago,
        started_at=long_ago,
    )
    rows = inject_scenario(drill, deadline)  # then the worker died

    result = reaper.reap()

    assert result["drills"] == [drill.pk]
    drill.refresh_from_db()
    assert drill.state == DrillState.ERRORED
    reverted = [e for e in ledger_events(drill) if e.action == "drill.fault_reverted"]
    assert sorted(e.after["compensation"] for e in reverted) == sorted(r.pk for r in rows)
    for event in reverted:
        assert event.after["worker"].startswith("reaper@")
        assert (event.actor, event.source) == ("system", AuditSource.SYSTEM)
        assert event.after["verified"] is None  # the reaper does not read back
    injected = [e for e in ledger_events(drill) if e.action == "drill.fault_injected"]
    assert {e.after["worker"] for e in injected} == {WORKER}
    lam = sandbox_aws("lambda", "us-east-1")
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName="orders-api")


def test_the_reaper_s_revert_of_a_drill_that_already_ended_is_audited_too(inventory, make_drill, deadline):
    drill = make_drill(app="orders", region="us-east-1", state=DrillState.RUNNING)
    [row, _] = inject_scenario(drill, deadline)
    Drill.objects.filter(pk=drill.pk).update(state=DrillState.FAILED)  # its runner died after

    reaper.reap()

    events = AuditEvent.objects.filter(action="drill.fault_reverted", after__compensation=row.pk)
    assert [e.after["worker"][:7] for e in events] == ["reaper@"]
    assert not ledger.open_compensations(drill.pk).exists()


def test_the_audit_log_alone_reconstructs_what_the_drill_did_to_aws(
    inventory, sandbox_aws, make_drill, deadline
):
    drill = make_drill(app="orders", region="us-east-1", state=DrillState.RUNNING)
    inject_scenario(drill, deadline)  # two Lambda functions
    name = "/audit-test/reconstruct/failure-injection"
    ledger.inject(drill, REGISTRY[FaultKind.SSM_FAILURE_FLAG], own_ssm_flag(name), deadline=deadline)
    sandbox_aws("ssm", "us-east-1").delete_parameter(Name=name)  # its revert will fail
    assert len(ledger.revert_open(drill.pk, worker=WORKER)) == 1

    from_audit = what_the_audit_says(drill)

    assert from_audit == what_the_ledger_says(drill)
    assert sorted(reverted for _, _, reverted in from_audit.values()) == [False, True, True]
    assert audit.verify_chain().problem is None
