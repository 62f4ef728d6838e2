"""Import and export of the inventory as YAML or JSON (see docs/INVENTORY.md).

The file format, the same for import and export::

    regions:                      # AWS regions the control plane talks to
      - code: us-east-1           # required
        account_id: "123456789012"  # optional; quote it (a string of 12 digits)
        role_arn: arn:aws:iam::123456789012:role/ControlPlane   # optional
        external_id: controlplane-orders                        # optional
    applications:
      - name: orders              # required; lowercase letters, digits, hyphens
        architecture: A           # required; A (Route 53 -> API Gateway) or B (GA -> ALB)
        display_name: Orders      # optional
        global_endpoint: api.orders.example.com                  # optional
        global_endpoint_url: https://api.orders.example.com/     # optional
        owner_team: checkout      # optional
        description: ...          # optional
        stacks:                   # optional; one per region
          - region: us-east-1     # required; listed under regions: or already known
            health_url: https://api.us-east-1.orders.example.com/health   # optional
            in_rotation: true     # optional
            components:           # optional
              - kind: lambda_function            # required; a ComponentKind value
                identifier: arn:aws:lambda:...   # required; ARN or id
                name: orders-api                 # optional
                config: {}                       # optional; any JSON mapping

Rules:

- Refused before anything is read into the database: a file over
  CONTROLPLANE_INVENTORY_MAX_BYTES (before it is parsed), YAML aliases, nesting deeper
  than MAX_DEPTH, and (while validating) a string longer than its model field.
- Region codes must be AWS regions botocore knows, or listed in
  CONTROLPLANE_EXTRA_REGIONS (regions.models.region_code_validator).
- Unknown keys are errors, so that a typo never passes silently.
- Field values are checked by the models' own validators (``full_clean``); every error
  of the file is reported, one per line, naming the file, the entry and the field::

      inventory.yaml: applications[1] (payments) > stacks[0] (us-west-2) > health_url: ...

- A key left out leaves that field as it is (a new object gets the model's default);
  to clear a field, give it an empty value.
- The import runs in one transaction: it changes everything or nothing. It is
  idempotent: objects that already match are counted as unchanged and get no audit row.
- Applications and regions absent from the file are left alone. So are stacks and
  components absent from the file, unless ``prune=True``, which removes the stacks and
  components of the file's applications that the file does not list.
- Every created, updated or deleted object gets an audit event
  (``inventory.create``/``inventory.update``/``inventory.delete``) with before/after
  dicts of the fields that changed.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from controlplane import audit
from controlplane.models import AuditSource
from regions.models import Application, Component, ComponentKind, Region, Stack

# Keys each entry accepts, and those it requires.
REGION_KEYS = ("code", "account_id", "role_arn", "external_id")
# What the control plane assumes to reach a region's account: exported and shown only to
# those who may import the inventory (admins), in the console's export, the stack page
# and GET /api/v1/inventory alike.
ACCESS_KEYS = ("role_arn", "external_id")
ACCESS_PERMISSION = "regions.import_inventory"
# An application's own fields; an entry also lists its stacks.
APPLICATION_FIELDS = (
    "name",
    "display_name",
    "architecture",
    "global_endpoint",
    "global_endpoint_url",
    "owner_team",
    "description",
)
APPLICATION_KEYS = (*APPLICATION_FIELDS, "stacks")
STACK_KEYS = ("region", "health_url", "in_rotation", "components")
COMPONENT_KEYS = ("kind", "identifier", "name", "config")
REQUIRED = {
    "region": ("code",),
    "application": ("name", "architecture"),
    "stack": ("region",),
    "component": ("kind", "identifier"),
}
TOP_LEVEL_KEYS = ("regions", "applications")

# The fields an audit event shows for each model (foreign keys by their natural key).
AUDIT_FIELDS = {
    Region: REGION_KEYS,
    Application: APPLICATION_FIELDS,
    Stack: ("application", "region", "health_url", "in_rotation"),
    Component: ("stack", "kind", "identifier", "name", "config"),
}
MODEL_LABELS = {Region: "region", Application: "application", Stack: "stack", Component: "component"}


# Nesting deeper than this is refused while parsing (the sample's deepest value, a
# component's config, is 10 levels down; PyYAML's composer recurses once per level).
MAX_DEPTH = 32
# Errors listed in an InventoryError's message; the rest are counted.
MAX_REPORTED_ERRORS = 100


class InventoryError(ValueError):
    """An inventory file that cannot be imported. Nothing was changed."""

    def __init__(self, source, errors):
        self.source = str(source)
        self.errors = list(errors)
        lines = [f"{self.source}: {e}" for e in self.errors[:MAX_REPORTED_ERRORS]]
        if len(self.errors) > MAX_REPORTED_ERRORS:
            lines.append(f"{self.source}: ... and {len(self.errors) - MAX_REPORTED_ERRORS} more errors")
        super().__init__("\n".join(lines))


# --- Reading and writing files ----------------------------------------------------


class _Refused(yaml.YAMLError):
    """Input an inventory never needs and an attacker does; refused while parsing."""

    def __init__(self, mark, message):
        self.mark = mark
        self.message = message
        super().__init__(message)


class _InventoryLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing aliases and deep nesting as it composes.

    Aliases (`*name`): a few hundred bytes of nested aliases stand for hundreds of
    millions of values once the data is walked (the "billion laughs"); an inventory spells
    its values out, and the export never writes aliases. Nesting: the composer recurses once per level, so
    100,000 levels overflow the stack; MAX_DEPTH is far above any real inventory."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Refused(
                event.start_mark,
                f"aliases (*{_short(event.anchor, 40)}) are not allowed in an inventory file; "
                "write the value out",
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(
                    self.peek_event().start_mark, f"nested more than {MAX_DEPTH} levels deep"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_yaml_int(self, node):
        # Python refuses to convert an integer of more than 4,300 digits (ValueError).
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            raise _Refused(node.start_mark, "a number with too many digits") from None


_InventoryLoader.add_constructor("tag:yaml.org,2002:int", _InventoryLoader.construct_yaml_int)


class _Dumper(yaml.SafeDumper):
    """Writes a value seen twice in full rather than as an alias the import refuses."""

    def ignore_aliases(self, data):
        return True


def _too_deep(data):
    """Whether parsed JSON nests more than MAX_DEPTH levels (walked without recursion)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                return True
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)
    return False


def _read_capped(path):
    """The file's bytes, refused above CONTROLPLANE_INVENTORY_MAX_BYTES before reading on
    (the size is checked again while reading: a pipe or a growing file has no honest size)."""
    limit = settings.CONTROLPLANE_INVENTORY_MAX_BYTES
    with path.open("rb") as f:
        size = path.stat().st_size
        data = f.read(limit + 1) if size <= limit else b""
    if size > limit or len(data) > limit:
        size_text = f"{size:,} bytes" if size > limit else f"more than {limit:,} bytes"
        raise InventoryError(
            path,
            [
                f"refused: the file is {size_text}; the limit is {limit:,} "
                "(CONTROLPLANE_INVENTORY_MAX_BYTES)"
            ],
        )
    return data


def load_file(path):
    """Parse a YAML or JSON file (by extension; YAML also reads JSON).

    Refused before anything is imported: a file over CONTROLPLANE_INVENTORY_MAX_BYTES
    (before parsing), YAML aliases, and nesting deeper than MAX_DEPTH."""
    path = Path(path)
    try:
        text = _read_capped(path).decode("utf-8")
    except FileNotFoundError:
        raise InventoryError(path, ["no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(path, [f"cannot read the file: {exc}"]) from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InventoryError(
                path, [f"line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}"]
            ) from None
        except ValueError:  # the only other one: Python's 4,300-digit limit on integers
            raise InventoryError(path, ["refused: a number with too many digits"]) from None
        except RecursionError:
            data = None
            too_deep = True
        else:
            too_deep = _too_deep(data)
        if too_deep:
            raise InventoryError(path, [f"refused: nested more than {MAX_DEPTH} levels deep"])
        return data
    try:
        return yaml.load(text, Loader=_InventoryLoader)  # noqa: S506 (a SafeLoader subclass)
    except _Refused as exc:
        mark = exc.mark
        raise InventoryError(
            path, [f"line {mark.line + 1}, column {mark.column + 1}: refused: {exc.message}"]
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise InventoryError(path, [f"{where}invalid YAML: {problem}"]) from None
    except yaml.YAMLError as exc:
        raise InventoryError(path, [f"invalid YAML: {exc}"]) from None


def dump(data, fmt):
    """Serialise an exported inventory as "yaml" or "json" text."""
    if fmt == "json":
        return json.dumps(data, indent=2, cls=DjangoJSONEncoder) + "\n"
    if fmt == "yaml":
        return yaml.dump(
            data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False
        )
    raise ValueError(f"unknown format {fmt!r}; use yaml or json")


# --- Validation -------------------------------------------------------------------


@dataclass
class _Plan:
    """A validated inventory: the provided fields of each entry, keyed naturally."""

    regions: dict = field(default_factory=dict)  # code -> {field: value}
    # name -> ({field: value}, {region code: ({field: value}, {(kind, id): {field: value}})})
    applications: dict = field(default_factory=dict)


def _short(value, limit=60):
    """`value` for an error message, cut to `limit` characters (a key or name may be huge)."""
    text = str(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def _label(value):
    return f" ({_short(value)})" if isinstance(value, str) and value else ""


class _Checker:
    def __init__(self):
        self.errors = []

    def error(self, where, message):
        self.errors.append(f"{where}: {message}" if where else message)

    def mapping(self, entry, where, allowed, required):
        if not isinstance(entry, dict):
            self.error(where, f"must be a mapping, not {type(entry).__name__}")
            return None
        for key in entry:
            if key not in allowed:
                self.error(
                    f"{where} > {_short(key)}", f"unknown key; allowed keys are {', '.join(allowed)}"
                )
        for key in required:
            if entry.get(key) in (None, ""):
                self.error(f"{where} > {key}", "is required")
        return entry

    def items(self, value, where):
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(where, f"must be a list, not {type(value).__name__}")
            return []
        return value

    def entries(self, value, where, label_key, allowed, required):
        """(entry, its label_key value, where) for each entry of the list `value` that is a
        mapping of allowed keys; what is not is reported and skipped."""
        for i, entry in enumerate(self.items(value, where)):
            label = entry.get(label_key) if isinstance(entry, dict) else None
            entry_where = f"{where}[{i}]{_label(label)}"
            if self.mapping(entry, entry_where, allowed, required) is not None:
                yield entry, label, entry_where

    def fields(self, model, entry, where, names):
        """The provided scalar fields of `entry`, checked by the model's validators."""
        values = {}
        for name in names:
            if name not in entry:
                continue
            value = entry[name]
            model_field = model._meta.get_field(name)
            internal = model_field.get_internal_type()
            if internal == "BooleanField":
                if not isinstance(value, bool):
                    self.error(f"{where} > {name}", "must be true or false")
                    continue
            elif internal == "JSONField":
                if value is None:
                    value = {}
                if not isinstance(value, dict):
                    self.error(f"{where} > {name}", "must be a mapping")
                    continue
                try:
                    value = json.loads(json.dumps(value))
                except (TypeError, ValueError) as exc:
                    self.error(f"{where} > {name}", f"must hold JSON values only ({exc})")
                    continue
            else:
                if value is None:
                    value = ""
                if not isinstance(value, str):
                    self.error(
                        f"{where} > {name}",
                        f"must be a string, not {type(value).__name__} (quote it)",
                    )
                    continue
                # Checked here, before the model's validators see a value of any size.
                if model_field.max_length is not None and len(value) > model_field.max_length:
                    self.error(
                        f"{where} > {name}",
                        f"too long: {len(value):,} characters; at most {model_field.max_length:,}",
                    )
                    continue
            values[name] = value
        if values:
            instance = model(**values)
            exclude = [f.name for f in model._meta.fields if f.name not in values]
            try:
                instance.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
            except ValidationError as exc:
                for name, messages in exc.message_dict.items():
                    for message in messages:
                        self.error(f"{where} > {name}", message)
                    values.pop(name, None)
        return values


class _KnownRegions:
    """Region codes listed in the file, else in the database (asked only when needed)."""

    def __init__(self, listed):
        self.listed = set(listed)
        self.stored = None

    def __contains__(self, code):
        if code in self.listed:
            return True
        if self.stored is None:
            self.stored = set(Region.objects.values_list("code", flat=True))
        return code in self.stored


def validate(data, source="<inventory>"):
    """Check a parsed inventory; raise InventoryError listing every problem.

    Returns the plan that `import_inventory` applies."""
    check = _Checker()
    plan = _Plan()
    if data is None:
        data = {}
    top = check.mapping(data, "", TOP_LEVEL_KEYS, ())
    if top is None:
        raise InventoryError(source, check.errors)

    for entry, code, where in check.entries(
        top.get("regions"), "regions", "code", REGION_KEYS, REQUIRED["region"]
    ):
        values = check.fields(Region, entry, where, REGION_KEYS)
        if isinstance(code, str) and code:
            if code in plan.regions:
                check.error(where, f"region {_short(code)} is listed twice")
            else:
                plan.regions[code] = values

    known_regions = _KnownRegions(plan.regions)
    kinds = set(ComponentKind.values)
    for entry, name, where in check.entries(
        top.get("applications"), "applications", "name", APPLICATION_KEYS, REQUIRED["application"]
    ):
        values = check.fields(Application, entry, where, APPLICATION_FIELDS)
        stacks = {}
        for stack, code, swhere in check.entries(
            entry.get("stacks"), f"{where} > stacks", "region", STACK_KEYS, REQUIRED["stack"]
        ):
            svalues = check.fields(Stack, stack, swhere, STACK_KEYS[1:3])
            if code not in (None, "") and not isinstance(code, str):
                check.error(f"{swhere} > region", "must be a string")
                code = None
            elif code and code not in known_regions:
                check.error(
                    f"{swhere} > region",
                    f"unknown region {_short(code)!r}: list it under regions (or use a region code "
                    "such as us-east-1)",
                )
            components = {}
            for component, _identifier, cwhere in check.entries(
                stack.get("components"), f"{swhere} > components", "identifier",
                COMPONENT_KEYS, REQUIRED["component"],
            ):
                cvalues = check.fields(Component, component, cwhere, COMPONENT_KEYS)
                kind = component.get("kind")
                if isinstance(kind, str) and kind and kind not in kinds:
                    continue  # full_clean reported it
                key = (cvalues.get("kind"), cvalues.get("identifier"))
                if None in key:
                    continue
                if key in components:
                    check.error(cwhere, f"component {key[0]} {_short(key[1])} is listed twice")
                else:
                    components[key] = cvalues
            if isinstance(code, str) and code:
                if code in stacks:
                    check.error(swhere, f"a stack in {_short(code)} is listed twice")
                else:
                    stacks[code] = (svalues, components)
        if isinstance(name, str) and name:
            if name in plan.applications:
                check.error(where, f"application {_short(name)} is listed twice")
            else:
                plan.applications[name] = (values, stacks)

    if check.errors:
        raise InventoryError(source, check.errors)
    return plan


# --- Writing, audited -------------------------------------------------------------


def _audit_value(obj, name):
    value = getattr(obj, name)
    if isinstance(value, Application):
        return value.name
    if isinstance(value, Region):
        return value.code
    if isinstance(value, Stack):
        return str(value)
    return value


def snapshot(obj, names=None):
    """The audited fields of `obj` (or just `names`) as a JSON-friendly dict."""
    return {name: _audit_value(obj, name) for name in names or AUDIT_FIELDS[type(obj)]}


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0

    def as_dict(self):
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
        }


@dataclass
class Summary:
    """Created/updated/unchanged/deleted counts per model."""

    counts: dict = field(default_factory=lambda: {label: Counts() for label in MODEL_LABELS.values()})
    changes: list = field(default_factory=list)  # one human-readable line per change

    @property
    def changed(self):
        return sum(c.created + c.updated + c.deleted for c in self.counts.values())

    def as_dict(self):
        return {label: counts.as_dict() for label, counts in self.counts.items()}

    def lines(self):
        out = []
        for label, c in self.counts.items():
            out.append(
                f"{label + 's':<13} {c.created} created, {c.updated} updated, "
                f"{c.unchanged} unchanged, {c.deleted} deleted"
            )
        return out

    def __str__(self):
        return "\n".join(self.lines())


class Writer:
    """Creates, updates and deletes inventory rows, one audit event each.

    Shared by the import and by discovery so that both count and audit the same way.
    Callers hold a transaction."""

    def __init__(self, actor, source, summary=None):
        self.actor = actor
        self.source = source
        self.summary = summary or Summary()
        self.changes = self.summary.changes

    def _counts(self, model):
        return self.summary.counts[MODEL_LABELS[model]]

    def save(self, model, obj, values, *, create=None, touch=None):
        """Create `model(**create, **values)` when `obj` is None, else set `values` on it.

        `touch` fields are written without counting as a change (e.g. discovered_at)."""
        counts = self._counts(model)
        if obj is None:
            obj = model(**(create or {}), **values, **(touch or {}))
            obj.save()
            counts.created += 1
            self.changes.append(f"created {MODEL_LABELS[model]} {obj}")
            audit.record(
                self.actor, "inventory.create", source=self.source, obj=obj, after=snapshot(obj)
            )
            return obj
        changed = [name for name, value in values.items() if getattr(obj, name) != value]
        for name, value in (touch or {}).items():
            setattr(obj, name, value)
        if not changed:
            if touch:
                model.objects.filter(pk=obj.pk).update(**touch)
            counts.unchanged += 1
            return obj
        before = snapshot(obj, changed)
        for name in changed:
            setattr(obj, name, values[name])
        update_fields = [*changed, *(touch or {})]
        if any(f.name == "updated_at" for f in model._meta.fields):
            update_fields.append("updated_at")
        obj.save(update_fields=update_fields)
        counts.updated += 1
        self.changes.append(f"updated {MODEL_LABELS[model]} {obj}: {', '.join(changed)}")
        audit.record(
            self.actor,
            "inventory.update",
            source=self.source,
            obj=obj,
            before=before,
            after=snapshot(obj, changed),
        )
        return obj

    def delete(self, obj):
        if isinstance(obj, Stack):
            for component in obj.components.all():
                self.delete(component)
        before = snapshot(obj)
        audit.record(self.actor, "inventory.delete", source=self.source, obj=obj, before=before)
        self.changes.append(f"deleted {MODEL_LABELS[type(obj)]} {obj}")
        obj.delete()
        self._counts(type(obj)).deleted += 1


def import_inventory(data, *, actor, source_name, prune=False, source=AuditSource.COMMAND):
    """Validate `data` (parsed YAML/JSON) and apply it in one transaction.

    Returns a Summary. Raises InventoryError (naming `source_name`) and changes nothing
    when the data is invalid."""
    plan = validate(data, source=source_name)
    writer = Writer(actor, source)
    with transaction.atomic():
        regions = {r.code: r for r in Region.objects.select_for_update()}
        for code, values in plan.regions.items():
            values = {k: v for k, v in values.items() if k != "code"}
            regions[code] = writer.save(Region, regions.get(code), values, create={"code": code})

        existing_apps = {
            a.name: a
            for a in Application.objects.select_for_update().filter(name__in=plan.applications)
        }
        for name, (values, stacks) in plan.applications.items():
            values = {k: v for k, v in values.items() if k != "name"}
            app = writer.save(
                Application, existing_apps.get(name), values, create={"name": name}
            )
            existing_stacks = {
                s.region.code: s
                for s in Stack.objects.select_for_update()
                .filter(application=app)
                .select_related("application", "region")
            }
            for code, (svalues, components) in stacks.items():
                stack = writer.save(
                    Stack,
                    existing_stacks.pop(code, None),
                    svalues,
                    create={"application": app, "region": regions[code]},
                )
                existing_components = {
                    (c.kind, c.identifier): c
                    for c in Component.objects.select_for_update().filter(stack=stack)
                }
                for key, cvalues in components.items():
                    cvalues = {k: v for k, v in cvalues.items() if k not in ("kind", "identifier")}
                    writer.save(
                        Component,
                        existing_components.pop(key, None),
                        cvalues,
                        create={"stack": stack, "kind": key[0], "identifier": key[1]},
                    )
                if prune:
                    for component in existing_components.values():
                        component.stack = stack
                        writer.delete(component)
            if prune:
                for stack in existing_stacks.values():
                    writer.delete(stack)
    return writer.summary


# --- Export -----------------------------------------------------------------------


def _optional(obj, names):
    return {name: getattr(obj, name) for name in names if getattr(obj, name) not in ("", None)}


def export_inventory(with_access=True):
    """The whole inventory, in exactly the format `import_inventory` reads. Without
    `with_access`, the regions leave out ACCESS_KEYS (for users without
    ACCESS_PERMISSION)."""
    region_keys = [k for k in REGION_KEYS[1:] if with_access or k not in ACCESS_KEYS]
    regions = [
        {"code": r.code, **_optional(r, region_keys)} for r in Region.objects.order_by("code")
    ]
    components_by_stack = {}
    for c in Component.objects.order_by("kind", "identifier"):
        entry = {"kind": c.kind, "identifier": c.identifier, **_optional(c, ("name",))}
        if c.config:
            entry["config"] = c.config
        components_by_stack.setdefault(c.stack_id, []).append(entry)
    stacks_by_app = {}
    for s in Stack.objects.select_related("region").order_by("region__code"):
        entry = {"region": s.region.code, **_optional(s, ("health_url",))}
        entry["in_rotation"] = s.in_rotation
        if s.pk in components_by_stack:
            entry["components"] = components_by_stack[s.pk]
        stacks_by_app.setdefault(s.application_id, []).append(entry)
    applications = []
    for a in Application.objects.order_by("name"):
        entry = {"name": a.name, "architecture": a.architecture}
        optional = [k for k in APPLICATION_KEYS if k not in ("name", "architecture", "stacks")]
        entry.update(_optional(a, optional))
        if a.pk in stacks_by_app:
            entry["stacks"] = stacks_by_app[a.pk]
        applications.append(entry)
    return {"regions": regions, "applications": applications}
