"""The single place that creates boto3 clients. Nothing else imports boto3.

One session per (region, role): STS AssumeRole with the region's external id when a
role is configured, standard retries, timeouts, and an optional endpoint override
(settings.AWS_ENDPOINT_URL) so the same code talks to the sandbox or a moto server.
Assumed-role credentials refresh themselves before they expire. No credentials are
stored in the database: the base credentials come from the environment, the
instance profile or the sandbox.
"""

import functools
import threading

import boto3
import botocore
import botocore.exceptions
from botocore.config import Config
from botocore.credentials import DeferredRefreshableCredentials, RefreshableCredentials
from botocore.session import get_session
from django.conf import settings

# Errors worth retrying with backoff; everything else is an outcome to record.
TRANSIENT_ERROR_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "PriorRequestNotComplete",
        "ServiceUnavailable",
        "InternalError",
        "InternalFailure",
    }
)
ClientError = botocore.exceptions.ClientError
BotoCoreError = botocore.exceptions.BotoCoreError

_lock = threading.Lock()
_sessions = {}

# The sandbox's convention for paused replication (docs/SANDBOX.md): this tag, value
# "true", on the *receiving* replica. The sandbox honours it, drills set it and monitoring
# reads it (AWS itself pauses with a resource-policy statement instead).
SANDBOX_PAUSE_TAG = "sandbox:replication-paused"

# Services whose API lives in one region whatever region the stack is in.
GLOBAL_SERVICE_REGIONS = {
    "route53": "us-east-1",
    "globalaccelerator": "us-west-2",
    "route53-recovery-control-config": "us-west-2",
}


@functools.cache
def known_region_codes():
    """Every region of every AWS partition that this botocore release knows.

    From botocore's partitions.json, the table its endpoint rules resolve regions with
    (the one file every AWS SDK shares), without the partitions' "-global" pseudo-regions.
    A region AWS opened after this release is missing: settings.CONTROLPLANE_EXTRA_REGIONS
    adds it (regions.models.region_code_validator)."""
    partitions = get_session().get_data("partitions")["partitions"]
    return frozenset(
        code for partition in partitions for code in partition["regions"] if not code.endswith("-global")
    )


def botocore_version():
    return botocore.__version__


def is_transient(exc):
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code") in TRANSIENT_ERROR_CODES
    return isinstance(
        exc,
        botocore.exceptions.EndpointConnectionError
        | botocore.exceptions.ConnectTimeoutError
        | botocore.exceptions.ReadTimeoutError,
    )


def _config():
    return Config(
        # total_max_attempts counts the first try; botocore's "max_attempts" would
        # mean retries and allow AWS_MAX_ATTEMPTS + 1 calls.
        retries={"mode": "standard", "total_max_attempts": settings.AWS_MAX_ATTEMPTS},
        connect_timeout=settings.AWS_CONNECT_TIMEOUT,
        read_timeout=settings.AWS_READ_TIMEOUT,
    )


def _base_session(region_name):
    return boto3.session.Session(region_name=region_name)


def _assumed_session(region_name, role_arn, external_id):
    base = _base_session(region_name)
    sts = base.client("sts", endpoint_url=settings.AWS_ENDPOINT_URL, config=_config())

    def refresh():
        kwargs = {"RoleArn": role_arn, "RoleSessionName": "controlplane"}
        if external_id:
            kwargs["ExternalId"] = external_id
        creds = sts.assume_role(**kwargs)["Credentials"]
        return {
            "access_key": creds["AccessKeyId"],
            "secret_key": creds["SecretAccessKey"],
            "token": creds["SessionToken"],
            "expiry_time": creds["Expiration"].isoformat(),
        }

    botocore_session = get_session()
    botocore_session._credentials = DeferredRefreshableCredentials(
        refresh_using=refresh, method="sts-assume-role"
    )
    botocore_session.set_config_variable("region", region_name)
    return boto3.session.Session(botocore_session=botocore_session, region_name=region_name)


def session_for(region_name, role_arn="", external_id=""):
    """A cached session per region, role and endpoint: an assumed role's STS client is
    bound to the endpoint it was made for, so another endpoint gets its own session."""
    key = (region_name, role_arn or "", external_id or "", settings.AWS_ENDPOINT_URL or "")
    with _lock:
        session = _sessions.get(key)
        if session is None:
            if role_arn:
                session = _assumed_session(region_name, role_arn, external_id)
            else:
                session = _base_session(region_name)
            _sessions[key] = session
        return session


def client(service, region_name, *, role_arn="", external_id="", endpoint_url=None):
    """A boto3 client for `service` in `region_name`, as the given role."""
    session = session_for(region_name, role_arn, external_id)
    return session.client(
        service,
        region_name=region_name,
        endpoint_url=endpoint_url or settings.AWS_ENDPOINT_URL,
        config=_config(),
    )


def call(service, region_name, operation, params, *, role_arn="", external_id="", endpoint_urls=()):
    """Make one AWS API call named as the API names it (`UpdateHealthCheck`) with its
    request parameters, as the given role, and return the response. `endpoint_urls`
    (the ARC cluster endpoints) are tried in order, the next one only when this one was
    unreachable; without them the client's usual endpoint. Raises the AWS error."""
    endpoints = list(endpoint_urls) or [None]
    last = None
    for endpoint in endpoints:
        made = client(service, region_name, role_arn=role_arn, external_id=external_id, endpoint_url=endpoint)
        try:
            return getattr(made, botocore.xform_name(operation))(**params)
        except (BotoCoreError, ClientError) as exc:
            if len(endpoints) == 1 or not is_transient(exc):
                raise
            last = exc
    raise last


def client_for_region(service, region):
    """A client for a `regions.Region` row, honouring its role and external id."""
    target = GLOBAL_SERVICE_REGIONS.get(service, region.code)
    return client(
        service, target, role_arn=region.role_arn, external_id=region.external_id
    )


__all__ = [
    "TRANSIENT_ERROR_CODES",
    "BotoCoreError",
    "ClientError",
    "RefreshableCredentials",
    "call",
    "client",
    "client_for_region",
    "is_transient",
    "session_for",
]
