"""A discovery run: read AWS through the service modules (phase 1), then write what was
found into the inventory (phase 2). See the package's docstring (regions/discovery/__init__.py)."""

from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

from controlplane.models import AuditSource
from regions.discovery import arc, globalaccelerator, route53, tagging
from regions.discovery.reader import ARCHITECTURE_TAG, GLOBAL_ENDPOINT_URL_TAG, Reader
from regions.inventory import Summary, Writer
from regions.models import (
    Application,
    Architecture,
    Component,
    ComponentKind,
    Region,
    Stack,
    region_code_validator,
)

# Which architecture a component kind implies, for applications without the tag.
KIND_ARCHITECTURE = {
    ComponentKind.ROUTE53_RECORD: Architecture.DNS,
    ComponentKind.API_GATEWAY_STAGE: Architecture.DNS,
    ComponentKind.GA_ENDPOINT_GROUP: Architecture.ANYCAST,
    ComponentKind.ALB_LISTENER: Architecture.ANYCAST,
}


@dataclass
class DiscoveryReport:
    """What a run saw and what it changed.

    regions   region codes scanned
    found     Found components (application, region, kind, identifier, name, config)
    summary   regions.inventory.Summary: created/updated/unchanged counts per model,
              and `changes`, one line per created or updated object
    warnings  services or resources that could not be read, and tags that were ignored
    """

    regions: list = field(default_factory=list)
    found: list = field(default_factory=list)
    summary: Summary = field(default_factory=Summary)
    warnings: list = field(default_factory=list)

    @property
    def changes(self):
        return self.summary.changes

    def as_dict(self):
        return {
            "regions": self.regions,
            "found": [
                {
                    "application": f.application,
                    "region": f.region,
                    "kind": f.kind,
                    "identifier": f.identifier,
                    "name": f.name,
                }
                for f in self.found
            ],
            "counts": self.summary.as_dict(),
            "changes": self.changes,
            "warnings": self.warnings,
        }

    def lines(self):
        out = [f"Scanned regions: {', '.join(self.regions) or '(none)'}"]
        out.append(f"Found {len(self.found)} component(s):")
        for f in sorted(self.found, key=lambda f: (f.application, f.region, f.kind, f.identifier)):
            out.append(f"  {f.application}/{f.region}  {f.kind}  {f.identifier}")
        out.append("Changes:" if self.changes else "Changes: none")
        out.extend(f"  {line}" for line in self.changes)
        out.extend(self.summary.lines())
        if self.warnings:
            out.append(f"Warnings ({len(self.warnings)}):")
            out.extend(f"  {w}" for w in self.warnings)
        return out


def _valid_url(value):
    try:
        URLValidator()(value)
    except ValidationError:
        return False
    return True


# --- Phase 1: reading AWS (the service modules) ------------------------------------


def _scan_global(reader, region):
    """The global services, with `region`'s credentials."""
    route53.scan(reader, region)
    globalaccelerator.scan(reader, region)
    arc.scan(reader, region)


# --- Phase 2: writing the inventory -----------------------------------------------


def _apply(reader, report, *, actor, source, prune=False):
    now = timezone.now()
    # Pruning trusts only a complete scan: after any warning (a service that did not
    # answer) a missing component may simply not have been read.
    prune = prune and not report.warnings
    writer = Writer(actor, source, report.summary)
    by_app = {}
    for found in reader.found.values():
        by_app.setdefault(found.application, []).append(found)
    app_names = sorted(set(by_app) | set(reader.app_facts))

    with transaction.atomic():
        regions = {r.code: r for r in Region.objects.select_for_update()}
        for name in app_names:
            facts = reader.app_facts.get(name, {})
            components = by_app.get(name, [])
            app = Application.objects.select_for_update().filter(name=name).first()
            values = {}
            arch = facts.get("architecture")
            if arch and arch not in Architecture.values:
                report.warnings.append(f"{name}: {ARCHITECTURE_TAG}={arch!r} is not A or B; ignored")
                arch = None
            if arch:
                values["architecture"] = arch
            url = facts.get("global_endpoint_url")
            if url and not _valid_url(url):
                report.warnings.append(f"{name}: {GLOBAL_ENDPOINT_URL_TAG}={url!r} is not a URL; ignored")
            elif url:
                values["global_endpoint_url"] = url
            if facts.get("global_endpoint"):
                values["global_endpoint"] = facts["global_endpoint"][:255]
            if app is None:
                try:
                    Application._meta.get_field("name").run_validators(name)
                except ValidationError:
                    report.warnings.append(f"{name!r}: not a valid application name; ignored")
                    continue
                if "architecture" not in values:
                    implied = {KIND_ARCHITECTURE[f.kind] for f in components if f.kind in KIND_ARCHITECTURE}
                    if len(implied) != 1:
                        report.warnings.append(
                            f"{name}: architecture unknown (tag a global resource with "
                            f"{ARCHITECTURE_TAG}); not created"
                        )
                        continue
                    values["architecture"] = implied.pop()
            app = writer.save(Application, app, values, create={"name": name})

            stacks = {
                s.region.code: s
                for s in Stack.objects.select_for_update()
                .filter(application=app)
                .select_related("application", "region")
            }
            for code in sorted({f.region for f in components}):
                if code not in regions:
                    regions[code] = writer.save(Region, None, {}, create={"code": code})
                svalues = {}
                health_url = reader.health_urls.get((name, code)) or reader.derived_health_urls.get(
                    (name, code)
                )
                if health_url and _valid_url(health_url):
                    svalues["health_url"] = health_url
                elif health_url:
                    report.warnings.append(f"{name}/{code}: health URL {health_url!r} is not a URL; ignored")
                stack = writer.save(
                    Stack,
                    stacks.get(code),
                    svalues,
                    create={"application": app, "region": regions[code]},
                    touch={"discovered_at": now},
                )
                existing = {
                    (c.kind, c.identifier): c
                    for c in Component.objects.select_for_update().filter(stack=stack)
                }
                seen = set()
                for f in sorted(components, key=lambda f: (f.kind, f.identifier)):
                    if f.region != code:
                        continue
                    seen.add((f.kind, f.identifier))
                    writer.save(
                        Component,
                        existing.get((f.kind, f.identifier)),
                        {"name": f.name[:255], "config": f.config},
                        create={"stack": stack, "kind": f.kind, "identifier": f.identifier},
                        touch={"discovered_at": now, "config_read_at": reader.started_at},
                    )
                if prune:
                    for key, component in sorted(existing.items()):
                        if key not in seen:
                            writer.delete(component)


def run_discovery(
    *, actor="system", regions=None, applications=None, source=AuditSource.SYSTEM, prune=False
):
    """Discover stacks and components from AWS by tags and update the inventory.

    regions       region codes to scan (default: every Region in the inventory); a code
                  not yet in the inventory is scanned with the default credentials and
                  created if something is found there
    applications  application names to limit discovery to (default: all tagged)
    prune         delete the components of discovered stacks that are no longer found
                  (audited; only when the scan finished without warnings)
    Returns a DiscoveryReport."""
    report = DiscoveryReport()
    known = {r.code: r for r in Region.objects.all()}
    if regions:
        scan = {}
        for code in regions:
            try:
                region_code_validator(code)
            except ValidationError as exc:
                report.warnings.append(f"{code[:40]!r}: {' '.join(exc.messages)} Skipped.")
                continue
            scan[code] = known.get(code) or Region(code=code)
    else:
        scan = known
    report.regions = sorted(scan)
    if not scan:
        report.warnings.append("no regions to scan: add regions to the inventory or pass --region")
        return report

    reader = Reader(scan, applications, report.warnings)
    for code in sorted(scan):
        tagging.scan_region(reader, scan[code])
    # Global services once per set of credentials (role and external id).
    seen = set()
    for code in sorted(scan):
        key = (scan[code].role_arn, scan[code].external_id)
        if key not in seen:
            seen.add(key)
            _scan_global(reader, scan[code])

    report.found = sorted(
        reader.found.values(), key=lambda f: (f.application, f.region, f.kind, f.identifier)
    )
    _apply(reader, report, actor=actor, source=source, prune=prune)
    return report
