"""Where moto differs from AWS in a call the control plane makes, put right in the
sandbox's process (`install()`, run by `world.start` before the AWS endpoint serves).

- API Gateway `UpdateStage` with `{"op": "remove", "path": "/{resourcePath}/{httpMethod}"}`
  (`/*/*` for the whole stage): AWS deletes the stage's method setting for that path, and
  answers BadRequestException when there is none. This is how a stage throttle put on a
  stage without an override is undone (AWS refuses `remove` on the throttling fields
  themselves). moto ignores every `remove` but `/accessLogSettings`, so the override
  would stay with the drill's limits.
"""

from moto.apigateway.exceptions import BadRequestException
from moto.apigateway.models import Stage

# The last segment of a method setting's path; a resource path is one segment, its
# slashes escaped as "~1" ("/~1items/GET").
METHOD_SEGMENTS = {"*", "GET", "HEAD", "OPTIONS", "PUT", "POST", "PATCH", "DELETE"}

_moto_apply_operations = Stage.apply_operations


def _removed_method_setting(op):
    """The methodSettings key ("*/*") that `op` removes, or None for any other operation."""
    parts = str(op.get("path", "")).split("/")
    if op.get("op") != "remove" or len(parts) != 3 or parts[0] or not parts[1]:
        return None
    return f"{parts[1]}/{parts[2]}" if parts[2] in METHOD_SEGMENTS else None


def apply_stage_operations(stage, patch_operations):
    """moto's Stage.apply_operations, with AWS's removal of a method setting."""
    for op in patch_operations:
        key = _removed_method_setting(op)
        if key is None:
            _moto_apply_operations(stage, [op])
        elif stage.method_settings.pop(key, None) is None:
            raise BadRequestException(
                f"Cannot remove method setting {key} because there is no method setting for this method"
            )
    return stage


def install():
    Stage.apply_operations = apply_stage_operations
