"""The sandbox removes an API Gateway method setting as AWS does (sandbox/motofixes.py)."""

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.sandbox


def test_removing_a_method_setting_deletes_that_override_only(sandbox, sandbox_aws):
    stack = sandbox.stack("orders", "us-east-1")
    apigw = sandbox_aws("apigateway", "us-east-1")
    stage = {"restApiId": stack.rest_api_id, "stageName": "prod"}
    apigw.update_stage(**stage, patchOperations=[
        {"op": "replace", "path": "/*/*/throttling/rateLimit", "value": "0"},
        {"op": "replace", "path": "/~1items/GET/throttling/rateLimit", "value": "7"},
    ])

    apigw.update_stage(**stage, patchOperations=[{"op": "remove", "path": "/*/*"}])

    settings = apigw.get_stage(**stage)["methodSettings"]
    assert set(settings) == {"~1items/GET"}
    assert settings["~1items/GET"]["throttlingRateLimit"] == 7.0
    apigw.update_stage(**stage, patchOperations=[{"op": "remove", "path": "/~1items/GET"}])
    assert apigw.get_stage(**stage)["methodSettings"] == {}


def test_removing_a_method_setting_the_stage_does_not_have_is_refused_as_aws_does(sandbox, sandbox_aws):
    stack = sandbox.stack("orders", "us-west-2")
    apigw = sandbox_aws("apigateway", "us-west-2")
    stage = {"restApiId": stack.rest_api_id, "stageName": "prod"}
    assert "*/*" not in apigw.get_stage(**stage)["methodSettings"]

    with pytest.raises(ClientError) as caught:
        apigw.update_stage(**stage, patchOperations=[{"op": "remove", "path": "/*/*"}])

    assert caught.value.response["Error"]["Code"] == "BadRequestException"
    assert "no method setting for this method" in caught.value.response["Error"]["Message"]
