"""Helpers the drill tests share (fixtures are in conftest.py)."""


def change_plan(drill_id, plan):
    """The drill's plan as if it had changed under an approver's eyes (its hash too)."""
    from experiments.faults import plan_hash
    from experiments.models import Drill

    return Drill.objects.filter(pk=drill_id).update(plan=plan, plan_hash=plan_hash(plan))
