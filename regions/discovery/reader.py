"""The reader: what one pass over AWS found, and its warnings.

A `Reader` holds no AWS knowledge of its own: the service modules of this package
(`awslambda.read_function(reader, ...)`, `route53.scan(reader, region)`, ...) call AWS
through it (`call`, `paginate`: a failed call is a warning, never an exception) and
record each component with `add`. Discovery (`run.py`) and the live configuration
refresh (regions/drift.py) both read through it.
"""

import logging
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from controlplane import aws
from controlplane.jsonvalues import json_safe

log = logging.getLogger("regions.discovery")

REGION_TAG = "controlplane:region"
ARCHITECTURE_TAG = "controlplane:architecture"
GLOBAL_ENDPOINT_URL_TAG = "controlplane:global-endpoint-url"
HEALTH_URL_TAG = "controlplane:health-url"


@dataclass
class Found:
    """One component seen in AWS."""

    application: str
    region: str
    kind: str
    identifier: str
    name: str
    config: dict

    def __str__(self):
        return f"{self.application}/{self.region} {self.kind} {self.identifier}"


def pick(data, *keys):
    return {k: data[k] for k in keys if k in data}


def tag_dict(raw):
    """Tags as a dict, whichever shape the service returns them in."""
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return dict(raw)
    return {t["Key"]: t.get("Value", "") for t in raw}


def error_text(exc):
    if isinstance(exc, aws.ClientError):
        err = exc.response.get("Error", {})
        code = err.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = (err.get("Message") or "").strip().splitlines()
        text = f"{code}: {message[0][:160]}" if message and not message[0].startswith("<") else str(code)
        return text
    return str(exc)[:200]


class Reader:
    """One pass of reads over AWS.

    regions       region code -> Region (saved or not): where to read, with whose
                  credentials; a component tagged for another region is left out with
                  a warning
    applications  application names to keep (None: every tagged application)
    warnings      the list warnings are appended to (default: a new one)

    started_at           when the reads began (what a configuration read by them is at most as
                         old as: Component.config_read_at)

    After the reads:
    found                {(application, region, kind, identifier): Found}
    app_facts            {application: {"architecture", "global_endpoint", "global_endpoint_url"}}
                         from the tags of its global resources
    health_urls          {(application, region): URL} from a controlplane:health-url tag
    derived_health_urls  {(application, region): URL} from the stack's Route 53 health check
    warnings             what could not be read or was ignored, one line each
    """

    def __init__(self, regions, applications=None, warnings=None):
        self.regions = regions
        self.applications = set(applications) if applications else None
        self.tag_key = settings.DISCOVERY_TAG_KEY
        self.warnings = [] if warnings is None else warnings
        self.found = {}
        self.app_facts = {}
        self.health_urls = {}
        self.derived_health_urls = {}
        self.unscanned = set()
        self.started_at = timezone.now()

    def warn(self, message):
        log.warning("discovery: %s", message)
        self.warnings.append(message)

    def call(self, where, fn, *args, **kwargs):
        """Run one AWS call; on failure record a warning and return None."""
        try:
            return fn(*args, **kwargs)
        except (aws.ClientError, aws.BotoCoreError) as exc:
            self.warn(f"{where}: {error_text(exc)}")
            return None

    def read(self, service, region, operation, identifier, **params):
        """One read call of `service` in `region` (a Region) about `identifier`; on
        failure a warning naming all three, and None."""
        client = aws.client_for_region(service, region)
        where = f"{service} {identifier} in {region.code}"
        return self.call(where, getattr(client, operation), **params)

    def tagged(self, where, client, arn):
        """(application, tags) of a global resource from its ListTagsForResource; the
        application is None when discovery does not want it (or the tags cannot be read)."""
        result = self.call(f"{where} tags of {arn}", client.list_tags_for_resource, ResourceArn=arn)
        tags = tag_dict((result or {}).get("Tags"))
        return self.wanted(tags), tags

    def paginate(self, where, client, operation, key, **kwargs):
        """All items of a paginated list call, or None (and a warning) on failure."""
        items = []
        try:
            for page in client.get_paginator(operation).paginate(**kwargs):
                items.extend(page.get(key) or [])
        except (aws.ClientError, aws.BotoCoreError) as exc:
            self.warn(f"{where}: {error_text(exc)}")
            return None
        return items

    def wanted(self, tags):
        """The application a resource's tags name, if discovery wants it; else None."""
        app = tags.get(self.tag_key)
        if not app:
            return None
        if self.applications is not None and app not in self.applications:
            return None
        return app

    def add(self, app, region, kind, identifier, name, config):
        if region not in self.regions:
            if region not in self.unscanned:
                self.unscanned.add(region)
                self.warn(
                    f"{app}: resources tagged for region {region}, which is not scanned "
                    f"(add it to the inventory or pass --region {region})"
                )
            return
        key = (app, region, kind, identifier)
        self.found[key] = Found(app, region, kind, identifier, name or "", json_safe(config))

    def facts(self, app, tags, *, architecture=None, global_endpoint=""):
        """Record what an application's global resource says of the application."""
        facts = self.app_facts.setdefault(app, {})
        arch = tags.get(ARCHITECTURE_TAG) or architecture
        if arch:
            facts.setdefault("architecture", arch)
        if tags.get(GLOBAL_ENDPOINT_URL_TAG):
            facts.setdefault("global_endpoint_url", tags[GLOBAL_ENDPOINT_URL_TAG])
        if global_endpoint:
            facts.setdefault("global_endpoint", global_endpoint)

    def entry_tags(self, app, region, tags):
        """Record the health URL tag of a stack's entry resource (API stage, ALB)."""
        if tags.get(HEALTH_URL_TAG):
            self.health_urls.setdefault((app, region), tags[HEALTH_URL_TAG])
