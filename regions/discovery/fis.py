"""Fault Injection Service: a stack's experiment templates (docs/DISCOVERY.md).

The tagging API does not return templates under moto, so `scan` also lists them
through FIS itself; a template found both ways is read once.
"""

from controlplane import aws
from regions.discovery.reader import pick, tag_dict
from regions.models import ComponentKind


def read_template(reader, region, app, template_id):
    result = reader.read("fis", region, "get_experiment_template", template_id, id=template_id)
    if result is None:
        return
    template = result["experimentTemplate"]
    config = pick(template, "description", "targets", "actions", "stopConditions", "roleArn")
    name = tag_dict(template.get("tags")).get("Name", template_id)
    reader.add(app, region.code, ComponentKind.FIS_EXPERIMENT_TEMPLATE, template_id, name, config)


def scan(reader, region):
    fis = aws.client_for_region("fis", region)
    templates = reader.paginate(
        f"fis in {region.code}", fis, "list_experiment_templates", "experimentTemplates"
    )
    for template in templates or []:
        app = reader.wanted(tag_dict(template.get("tags")))
        if app and not any(
            k[2] == ComponentKind.FIS_EXPERIMENT_TEMPLATE and k[3] == template["id"] for k in reader.found
        ):
            read_template(reader, region, app, template["id"])
