"""One entry for both exports: the format's document, its file name, or ExportError."""

from controlplane import aws
from experiments.faults import FaultError
from experiments.interop import ExportError, chaostoolkit, fis


def export(fmt, scenario, application, region, role_arn=""):
    """(document, file name) of `scenario` bound to `application` and `region`. The
    plan's reads reach AWS: a fault that cannot be planned there, or AWS's refusal,
    is an ExportError with its message."""
    try:
        if fmt == "fis":
            document, _ = fis.export(scenario, application, region, role_arn)
        else:
            document, _ = chaostoolkit.export(scenario, application, region)
    except FaultError as exc:
        raise ExportError(str(exc)) from exc
    except (aws.ClientError, aws.BotoCoreError) as exc:
        raise ExportError(f"AWS refused reading the plan's current values: {exc}") from exc
    return document, f"{scenario.slug}-{application.name}-{region.code}.{fmt}.json"
