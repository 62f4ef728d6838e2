"""The plan hash binds an approval to the literal calls, parameters, targets and duration."""

import copy
from datetime import timedelta

import pytest

from experiments.faults import Call, Target, build_plan, plan_hash

TARGET = Target(kind="lambda_function", identifier="arn:aws:lambda:us-east-1:1:function:orders-api",
                name="orders-api", region="us-east-1", application="orders")


def plan(**changes):
    call = Call("lambda", "us-east-1", "PutFunctionConcurrency",
                {"FunctionName": TARGET.identifier, "ReservedConcurrentExecutions": 0},
                Call("lambda", "us-east-1", "PutFunctionConcurrency",
                     {"FunctionName": TARGET.identifier, "ReservedConcurrentExecutions": 7}))
    args = {"scenario_slug": "throttle-region-functions", "fault_kind": "lambda_reserved_concurrency",
            "parameters": {"reserved_concurrency": 0}, "targets": [TARGET], "calls": [call],
            "max_duration": timedelta(minutes=10)}
    args.update(changes)
    return build_plan(**args)


def test_the_same_plan_always_hashes_the_same():
    assert plan_hash(plan()) == plan_hash(plan())
    assert len(plan_hash(plan())) == 64


def test_key_order_does_not_change_the_hash():
    shuffled = dict(reversed(list(plan().items())))
    assert plan_hash(shuffled) == plan_hash(plan())


def _mutations():
    base = plan()
    yield "operation", lambda p: p["calls"][0].__setitem__("operation", "DeleteFunctionConcurrency")
    yield "call param", lambda p: p["calls"][0]["params"].__setitem__("ReservedConcurrentExecutions", 1)
    yield "inverse param", lambda p: p["calls"][0]["inverse"]["params"].__setitem__(
        "ReservedConcurrentExecutions", 8)
    yield "region", lambda p: p["calls"][0].__setitem__("region", "us-west-2")
    yield "scenario parameter", lambda p: p["parameters"].__setitem__("reserved_concurrency", 1)
    yield "target", lambda p: p["targets"][0].__setitem__("identifier", "other")
    yield "max duration", lambda p: p.__setitem__("max_duration_seconds", 601)
    yield "extra call", lambda p: p["calls"].append(copy.deepcopy(base["calls"][0]))


@pytest.mark.parametrize(("what", "mutate"), list(_mutations()), ids=[m[0] for m in _mutations()])
def test_changing_any_call_or_parameter_changes_the_hash(what, mutate):
    changed = plan()
    mutate(changed)
    assert plan_hash(changed) != plan_hash(plan()), what


def test_a_call_survives_the_round_trip_through_json():
    call = Call("route53-recovery-cluster", "us-west-2", "UpdateRoutingControlState",
                {"RoutingControlArn": "arn", "RoutingControlState": "Off"},
                Call("route53-recovery-cluster", "us-west-2", "UpdateRoutingControlState",
                     {"RoutingControlArn": "arn", "RoutingControlState": "On"}),
                endpoint_urls=("https://a", "https://b"))
    assert Call.from_dict(call.as_dict()) == call
