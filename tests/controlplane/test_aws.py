"""The client factory against a moto server."""

# The moto fixtures live in tests/regions/conftest.py; importing them here makes pytest
# use them, and their names are then (deliberately) shadowed by the test arguments.
# ruff: noqa: F811

import botocore.exceptions
import pytest

from controlplane import aws
from regions.models import Region
from tests.regions.conftest import moto, moto_server  # noqa: F401  (fixtures)

ROLE = "arn:aws:iam::123456789012:role/ControlPlane"


def _error(code):
    return aws.ClientError({"Error": {"Code": code, "Message": "x"}}, "AnyOperation")


def test_clients_use_the_endpoint_override(moto):
    client = aws.client("sts", "us-east-1")

    assert client.meta.endpoint_url == moto
    assert client.get_caller_identity()["Account"] == "123456789012"


def test_an_explicit_endpoint_wins_over_the_setting(moto, settings):
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:9"

    client = aws.client("sts", "us-east-1", endpoint_url=moto)

    assert client.meta.endpoint_url == moto


def test_clients_retry_in_standard_mode_with_the_configured_attempts(moto, settings):
    settings.AWS_MAX_ATTEMPTS = 4

    retries = aws.client("lambda", "eu-central-1").meta.config.retries

    assert retries == {"mode": "standard", "total_max_attempts": 4}


def test_a_region_with_a_role_assumes_it_with_the_external_id(moto, monkeypatch):
    calls = []
    make_base = aws._base_session

    def base_session_watching_sts(region_name):
        session = make_base(region_name)
        session.events.register(
            "before-parameter-build.sts.AssumeRole", lambda params, **kw: calls.append(dict(params))
        )
        return session

    monkeypatch.setattr(aws, "_base_session", base_session_watching_sts)
    region = Region(code="us-west-2", role_arn=ROLE, external_id="controlplane-us-west-2")

    identity = aws.client_for_region("sts", region).get_caller_identity()

    assert calls == [
        {
            "RoleArn": ROLE,
            "RoleSessionName": "controlplane",
            "ExternalId": "controlplane-us-west-2",
        }
    ]
    assert identity["Arn"] == "arn:aws:sts::123456789012:assumed-role/ControlPlane/controlplane"


def test_a_region_without_a_role_uses_the_default_credentials(moto):
    region = Region(code="us-west-2")

    identity = aws.client_for_region("sts", region).get_caller_identity()

    assert ":assumed-role/" not in identity["Arn"]


def test_global_services_are_called_in_their_home_region(moto):
    region = Region(code="eu-central-1")

    assert aws.client_for_region("route53", region).meta.region_name == "us-east-1"
    assert aws.client_for_region("globalaccelerator", region).meta.region_name == "us-west-2"
    assert aws.client_for_region("lambda", region).meta.region_name == "eu-central-1"


def test_sessions_are_cached_per_region_and_role(moto):
    first = aws.session_for("us-east-1", ROLE, "ext")

    assert aws.session_for("us-east-1", ROLE, "ext") is first
    assert aws.session_for("us-west-2", ROLE, "ext") is not first
    assert aws.session_for("us-east-1", "", "") is not first
    assert aws.session_for("us-east-1", ROLE, "other") is not first


def test_another_endpoint_gets_its_own_session(moto, settings):
    first = aws.session_for("us-east-1", ROLE, "ext")
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:9"

    assert aws.session_for("us-east-1", ROLE, "ext") is not first
    settings.AWS_ENDPOINT_URL = moto
    assert aws.session_for("us-east-1", ROLE, "ext") is first


@pytest.mark.parametrize(
    "code", ["Throttling", "ThrottlingException", "TooManyRequestsException", "ServiceUnavailable"]
)
def test_throttling_and_service_errors_are_transient(code):
    assert aws.is_transient(_error(code))


@pytest.mark.parametrize(
    "code", ["AccessDenied", "AccessDeniedException", "ValidationException", "ResourceNotFoundException"]
)
def test_access_denied_and_bad_requests_are_not_transient(code):
    assert not aws.is_transient(_error(code))


def test_connection_failures_are_transient():
    assert aws.is_transient(botocore.exceptions.EndpointConnectionError(endpoint_url="http://x"))
    assert not aws.is_transient(ValueError("nope"))
