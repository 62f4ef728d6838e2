"""API Gateway: REST API stages, the entry of an architecture A stack (docs/DISCOVERY.md).

The tagging API does not return stages under moto, so `scan` also lists them through
API Gateway itself (tags in the response); a stage found both ways is recorded once.
"""

from controlplane import aws
from regions.discovery.reader import pick, tag_dict
from regions.models import ComponentKind


def read_stage(reader, region, app, api_id, stage_name, api_name=None, stage=None):
    apigw = aws.client_for_region("apigateway", region)
    where = f"apigateway {api_id}/{stage_name} in {region.code}"
    if stage is None:
        stage = reader.call(where, apigw.get_stage, restApiId=api_id, stageName=stage_name)
        if stage is None:
            return
    if api_name is None:
        api = reader.call(where, apigw.get_rest_api, restApiId=api_id) or {}
        api_name = api.get("name", api_id)
    config = {"restApiId": api_id}
    config.update(
        pick(stage, "stageName", "deploymentId", "methodSettings", "variables",
             "tracingEnabled", "cacheClusterEnabled")
    )
    arn = f"arn:aws:apigateway:{region.code}::/restapis/{api_id}/stages/{stage_name}"
    reader.add(app, region.code, ComponentKind.API_GATEWAY_STAGE, arn, f"{api_name}/{stage_name}", config)


def scan(reader, region):
    apigw = aws.client_for_region("apigateway", region)
    apis = reader.paginate(f"apigateway in {region.code}", apigw, "get_rest_apis", "items")
    for api in apis or []:
        result = reader.call(
            f"apigateway {api['id']} in {region.code}", apigw.get_stages, restApiId=api["id"]
        )
        for stage in (result or {}).get("item", []):
            tags = {**tag_dict(api.get("tags")), **tag_dict(stage.get("tags"))}
            app = reader.wanted(tags)
            if app:
                reader.entry_tags(app, region.code, tags)
                read_stage(reader, region, app, api["id"], stage["stageName"], api.get("name"), stage)
