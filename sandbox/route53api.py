"""Route 53's health-check reads, answered from what the sandbox's checkers saw.

moto stores health checks but never probes them: its GetHealthCheckStatus is canned
and it has no GetHealthCheckLastFailureReason nor GetHealthCheckCount. The sandbox's
checkers (sandbox/dataplane.py) keep an Observation per check; these answer from it,
one observation per checker region, as Route 53 reports a check's checkers. A check
moto does not know is NoSuchHealthCheck (404), as in AWS.
"""

import re
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from sandbox import motostate
from sandbox.awserrors import AwsError

# Route 53 health checkers live in these regions; each reports an observation.
CHECKER_REGIONS = ("us-east-1", "us-west-2", "eu-west-1")
XMLNS = "https://route53.amazonaws.com/doc/2013-04-01/"
PATHS = (
    (re.compile(r"^/2013-04-01/healthcheck/([^/]+)/status/?$"), "GetHealthCheckStatus"),
    (re.compile(r"^/2013-04-01/healthcheck/([^/]+)/lastfailurereason/?$"), "GetHealthCheckLastFailureReason"),
    (re.compile(r"^/2013-04-01/healthcheckcount/?$"), "GetHealthCheckCount"),
)


def route(method, path):
    """(operation, health check id or None) for a read the sandbox answers, else None."""
    if method != "GET":
        return None
    for pattern, operation in PATHS:
        match = pattern.match(path)
        if match:
            return operation, (match.group(1) if match.groups() else None)
    return None


def answer(world, operation, health_check_id):
    """The response body (XML bytes) of one of the reads `route` names."""
    if operation == "GetHealthCheckCount":
        with motostate.DATA_LOCK:
            count = len(motostate.global_backend("route53", world.topology.account_id).health_checks)
        return _document(operation, f"<HealthCheckCount>{count}</HealthCheckCount>")
    with motostate.DATA_LOCK:
        known = (
            health_check_id in motostate.global_backend("route53", world.topology.account_id).health_checks
        )
    if not known:
        raise AwsError(
            "NoSuchHealthCheck", f"No health check exists with the specified ID {health_check_id}", 404
        )
    with world.registry.lock:
        obs = world.registry.observations.get(health_check_id)
        if operation == "GetHealthCheckStatus":
            # A check the checkers have not probed yet has no observation to report.
            report = (obs.status, obs.checked_at) if obs else None
        else:
            report = (obs.last_failure, obs.last_failure_at) if obs and obs.last_failure else None
    return _document(operation, f"<HealthCheckObservations>{_observations(report)}</HealthCheckObservations>")


def _observations(report):
    if report is None:
        return ""
    status, at = report
    checked = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return "".join(
        f"<HealthCheckObservation><Region>{region}</Region><IPAddress>127.0.0.1</IPAddress>"
        f"<StatusReport><Status>{escape(status)}</Status>"
        f"<CheckedTime>{checked}</CheckedTime></StatusReport></HealthCheckObservation>"
        for region in CHECKER_REGIONS
    )


def _document(operation, inner):
    return (
        f'<?xml version="1.0"?>\n<{operation}Response xmlns="{XMLNS}">{inner}</{operation}Response>'
    ).encode()
