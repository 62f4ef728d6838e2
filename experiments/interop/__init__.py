"""Scenarios to and from other chaos tools (docs/DRILLS.md "Export and import").

`fis.export` turns a scenario bound to an application and region into the body AWS
FIS's CreateExperimentTemplate accepts; `chaostoolkit.export` into a Chaos Toolkit
experiment, and `chaostoolkit.import_experiment` turns one back into a scenario. Both
exports bind through `plans.make_plan`, the code a drill request runs: the targets and
the literal calls (with their inverses) are the ones an approver would see.
"""


class ExportError(Exception):
    """The scenario cannot be exported in this format (the message says why; `field`:
    the request's field it is about)."""

    def __init__(self, message, field="non_field_errors"):
        super().__init__(message)
        self.field = field
