import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command

from controlplane.models import AuditEvent
from regions import inventory
from regions.models import Application, Component, Region, Stack

from .conftest import SAMPLE

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


def _state():
    """Everything an import may touch, to prove a failed one changed nothing."""
    return {
        "regions": list(Region.objects.order_by("pk").values()),
        "applications": list(Application.objects.order_by("pk").values()),
        "stacks": list(Stack.objects.order_by("pk").values()),
        "components": list(Component.objects.order_by("pk").values()),
        "audit": list(AuditEvent.objects.order_by("seq").values_list("seq", "hash")),
    }


def _import(data, name="inventory.yaml", **kwargs):
    return inventory.import_inventory(data, actor="ada-admin", source_name=name, **kwargs)


def _sample():
    return inventory.load_file(SAMPLE)


def _write(tmp_path, data, name="inventory.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# --- a valid file -----------------------------------------------------------------


def test_the_sample_inventory_imports_every_application_stack_and_component():
    summary = _import(_sample())

    assert set(Application.objects.values_list("name", "architecture")) == {
        ("orders", "A"),
        ("payments", "B"),
    }
    assert set(Stack.objects.values_list("application__name", "region__code")) == {
        ("orders", "us-east-1"),
        ("orders", "us-west-2"),
        ("payments", "eu-central-1"),
        ("payments", "us-west-2"),
    }
    assert Region.objects.get(code="us-east-1").external_id == "controlplane-us-east-1"
    stack = Stack.objects.get(application__name="orders", region__code="us-east-1")
    assert stack.health_url == "https://api.us-east-1.orders.example.com/health"
    assert stack.components.filter(kind="route53_health_check").count() == 1
    param = Component.objects.filter(kind="ssm_fault_parameter").first()
    assert param.config["Value"]["fault_type"] in {"latency", "status_code"}
    counts = summary.as_dict()
    assert counts["application"]["created"] == 2
    assert counts["region"]["created"] == 3
    assert counts["stack"]["created"] == 4
    assert counts["component"]["created"] == Component.objects.count()


def test_each_created_object_gets_an_audit_event_in_the_same_import():
    _import(_sample())

    creates = AuditEvent.objects.filter(action="inventory.create")
    total = (
        Region.objects.count()
        + Application.objects.count()
        + Stack.objects.count()
        + Component.objects.count()
    )
    assert creates.count() == total
    event = creates.get(object_type="regions.application", object_repr="orders")
    assert event.actor == "ada-admin"
    assert event.source == "command"
    assert event.after["architecture"] == "A"
    assert event.before is None


def test_importing_the_same_file_twice_changes_nothing_the_second_time():
    _import(_sample())
    before = _state()

    summary = _import(_sample())

    assert summary.changed == 0
    assert summary.as_dict()["component"]["unchanged"] == Component.objects.count()
    assert summary.as_dict()["application"]["unchanged"] == 2
    assert _state() == before


def test_a_changed_field_is_updated_and_audited_with_before_and_after():
    _import(_sample())
    data = _sample()
    data["applications"][0]["owner_team"] = "fulfilment"
    data["applications"][0]["stacks"][0]["in_rotation"] = False

    summary = _import(data)

    assert summary.as_dict()["application"]["updated"] == 1
    assert summary.as_dict()["stack"]["updated"] == 1
    assert summary.changed == 2
    event = AuditEvent.objects.get(action="inventory.update", object_type="regions.application")
    assert event.before == {"owner_team": "checkout"}
    assert event.after == {"owner_team": "fulfilment"}
    stack_event = AuditEvent.objects.get(action="inventory.update", object_type="regions.stack")
    assert stack_event.before == {"in_rotation": True}
    assert stack_event.after == {"in_rotation": False}


def test_stacks_and_components_absent_from_the_file_are_left_alone_without_prune():
    _import(_sample())
    data = _sample()
    data["applications"][0]["stacks"] = data["applications"][0]["stacks"][:1]
    data["applications"][0]["stacks"][0]["components"] = []

    summary = _import(data)

    assert summary.changed == 0
    assert Stack.objects.filter(application__name="orders").count() == 2


def test_prune_removes_absent_stacks_and_components_and_audits_each_deletion():
    _import(_sample())
    data = _sample()
    orders = data["applications"][0]
    orders["stacks"] = orders["stacks"][:1]
    orders["stacks"][0]["components"] = orders["stacks"][0]["components"][:2]
    removed_stack = Stack.objects.get(application__name="orders", region__code="us-west-2")
    removed_components = removed_stack.components.count()
    kept_components = Component.objects.filter(stack__application__name="payments").count()

    summary = _import(data, prune=True)

    assert not Stack.objects.filter(pk=removed_stack.pk).exists()
    assert Component.objects.filter(stack__application__name="orders").count() == 2
    assert Component.objects.filter(stack__application__name="payments").count() == kept_components
    counts = summary.as_dict()
    assert counts["stack"]["deleted"] == 1
    assert counts["component"]["deleted"] == removed_components + 5
    deletes = AuditEvent.objects.filter(action="inventory.delete")
    assert deletes.count() == 1 + removed_components + 5
    assert deletes.get(object_type="regions.stack").before["region"] == "us-west-2"


def test_an_absent_optional_key_leaves_the_field_as_it_is():
    _import(_sample())
    data = _sample()
    del data["applications"][0]["owner_team"]

    assert _import(data).changed == 0
    assert Application.objects.get(name="orders").owner_team == "checkout"


def test_a_stack_may_name_a_region_already_in_the_inventory():
    Region.objects.create(code="ap-southeast-2")
    data = {
        "applications": [
            {"name": "search", "architecture": "A", "stacks": [{"region": "ap-southeast-2"}]}
        ]
    }

    _import(data)

    assert Stack.objects.get(application__name="search").region.code == "ap-southeast-2"


def test_json_files_import_like_yaml_files(tmp_path):
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(_sample()))

    _import(inventory.load_file(path))

    assert Application.objects.count() == 2


# --- invalid input: the message names file, entry and field; nothing changes -------


BAD_INPUTS = {
    "bad region code": (
        lambda d: d["regions"][0].update(code="eu-centrl-one"),
        ["regions[0] (eu-centrl-one) > code: Use an AWS region code such as us-east-1."],
    ),
    "unknown architecture": (
        lambda d: d["applications"][1].update(architecture="C"),
        ["applications[1] (payments) > architecture: Value 'C' is not a valid choice."],
    ),
    "unknown key": (
        lambda d: d["applications"][1]["stacks"][0].update(heath_url="https://x.example.com/"),
        ["applications[1] (payments) > stacks[0] (eu-central-1) > heath_url: unknown key"],
    ),
    "duplicate stack": (
        lambda d: d["applications"][1]["stacks"].append({"region": "us-west-2"}),
        ["applications[1] (payments) > stacks[2] (us-west-2): a stack in us-west-2 is listed twice"],
    ),
    "missing required field": (
        lambda d: d["applications"][0].pop("architecture"),
        ["applications[0] (orders) > architecture: is required"],
    ),
    "bad health url": (
        lambda d: d["applications"][1]["stacks"][1].update(health_url="not a url"),
        ["applications[1] (payments) > stacks[1] (us-west-2) > health_url: Enter a valid URL."],
    ),
    "unknown component kind": (
        lambda d: d["applications"][0]["stacks"][0]["components"][0].update(kind="route53_zone"),
        [
            "applications[0] (orders) > stacks[0] (us-east-1) > components[0] "
            "(3f9c2a6e-1b7d-4c5e-9a0f-6d2e8b4c1a01) > kind: Value 'route53_zone' is not a valid choice."
        ],
    ),
    "stack in an unknown region": (
        lambda d: d["applications"][0]["stacks"][0].update(region="ap-south-1"),
        ["applications[0] (orders) > stacks[0] (ap-south-1) > region: unknown region 'ap-south-1'"],
    ),
    "unquoted account id": (
        lambda d: d["regions"][1].update(account_id=123456789012),
        ["regions[1] (us-east-1) > account_id: must be a string, not int (quote it)"],
    ),
    "a region code that AWS does not have": (
        lambda d: d["regions"][0].update(code="zz-mars-1"),
        [
            "regions[0] (zz-mars-1) > code: zz-mars-1 is not an AWS region known to botocore "
            "1.44.8; if AWS opened it since, add it to CONTROLPLANE_EXTRA_REGIONS."
        ],
    ),
    "a name longer than the model allows": (
        lambda d: d["applications"][0].update(display_name="O" * 101),
        ["applications[0] (orders) > display_name: too long: 101 characters; at most 100"],
    ),
    "in_rotation not a boolean": (
        lambda d: d["applications"][0]["stacks"][1].update(in_rotation="sometimes"),
        ["applications[0] (orders) > stacks[1] (us-west-2) > in_rotation: must be true or false"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_an_invalid_file_is_rejected_with_file_entry_and_field_and_changes_nothing(case, tmp_path):
    _import(_sample())  # a populated inventory, so "nothing changed" means something
    before = _state()
    mutate, expected = BAD_INPUTS[case]
    data = _sample()
    mutate(data)
    path = _write(tmp_path, data)

    with pytest.raises(inventory.InventoryError) as caught:
        _import(inventory.load_file(path), name=str(path))

    message = str(caught.value)
    for fragment in expected:
        assert f"{path}: {fragment}" in message
    assert _state() == before


def test_every_error_is_reported_one_per_line():
    data = _sample()
    data["regions"][0]["code"] = "nowhere"
    data["applications"][0]["architecture"] = "Z"
    data["applications"][1]["colour"] = "blue"

    with pytest.raises(inventory.InventoryError) as caught:
        _import(data, name="many.yaml")

    lines = str(caught.value).splitlines()
    assert len(caught.value.errors) >= 3
    assert all(line.startswith("many.yaml: ") for line in lines)
    assert any("regions[0] (nowhere) > code" in line for line in lines)
    assert any("applications[0] (orders) > architecture" in line for line in lines)
    assert any("applications[1] (payments) > colour: unknown key" in line for line in lines)


def test_a_new_file_with_an_error_creates_nothing_at_all():
    data = _sample()
    data["applications"][1]["stacks"][0]["components"][0]["config"] = "not a mapping"

    with pytest.raises(inventory.InventoryError, match=r"components\[0\].* > config: must be a mapping"):
        _import(data)

    assert not Region.objects.exists()
    assert not Application.objects.exists()
    assert not AuditEvent.objects.exists()


def test_malformed_yaml_names_the_file_and_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("regions:\n  - code: us-east-1\n applications: [\n")

    with pytest.raises(inventory.InventoryError) as caught:
        inventory.load_file(path)

    assert str(caught.value).startswith(f"{path}: line ")
    assert "invalid YAML" in str(caught.value)


def test_malformed_json_names_the_file_and_the_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"regions": [\n  {"code": "us-east-1",}\n]}')

    with pytest.raises(inventory.InventoryError, match=r"broken.json: line 2, column \d+: invalid JSON"):
        inventory.load_file(path)


def test_a_missing_file_is_reported_as_such(tmp_path):
    path = tmp_path / "nope.yaml"

    with pytest.raises(inventory.InventoryError, match=r"nope.yaml: no such file"):
        inventory.load_file(path)


def test_a_file_that_is_not_a_mapping_is_rejected():
    with pytest.raises(inventory.InventoryError, match="must be a mapping, not list"):
        _import(["orders"])


# --- the management command ---------------------------------------------------------


def test_import_command_prints_a_summary(capsys):
    call_command("import_inventory", str(SAMPLE), "--actor", "ada-admin")

    out = capsys.readouterr().out
    assert f"{SAMPLE}: imported" in out
    assert "applications  2 created, 0 updated, 0 unchanged, 0 deleted" in out
    assert AuditEvent.objects.filter(actor="ada-admin").exists()


def test_import_command_says_so_when_nothing_changed(capsys):
    call_command("import_inventory", str(SAMPLE))
    capsys.readouterr()

    call_command("import_inventory", str(SAMPLE))

    assert "nothing to change" in capsys.readouterr().out


def test_import_command_fails_with_the_errors_and_changes_nothing(tmp_path):
    data = _sample()
    data["applications"][0]["architecture"] = "C"
    path = _write(tmp_path, data)

    with pytest.raises(CommandError) as caught:
        call_command("import_inventory", str(path))

    assert "not imported, nothing changed (1 error)" in str(caught.value)
    assert f"{path}: applications[0] (orders) > architecture" in str(caught.value)
    assert not Application.objects.exists()


def test_import_command_fails_on_a_missing_file(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_inventory", str(tmp_path / "missing.yaml"))


def test_import_command_exits_non_zero_without_a_traceback(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("applications:\n  - name: Orders!\n    architecture: A\n")

    result = subprocess.run(
        [sys.executable, "manage.py", "import_inventory", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{path}: applications[0] (Orders!) > name: Use lowercase letters" in result.stderr


# --- hostile input: refused before anything is parsed in full or written -------------

# 9 levels of 9 aliases: ~900 bytes that stand for 387,420,489 strings once walked
# (converting the config to JSON took 1.16 GB before the loader refused aliases).
BILLION_LAUGHS = """\
regions:
  - code: us-east-1
applications:
  - name: orders
    architecture: A
    stacks:
      - region: us-east-1
        components:
          - kind: lambda_function
            identifier: arn:aws:lambda:us-east-1:123456789012:function:orders-api
            config:
              a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
              b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
              c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
              d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
              e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
              f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
              g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
              h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
              i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def test_a_billion_laughs_file_is_refused_at_its_first_alias_in_little_memory(tmp_path):
    _import(_sample())
    before = _state()
    path = tmp_path / "laughs.yaml"
    path.write_text(BILLION_LAUGHS)

    tracemalloc.start()
    try:
        with pytest.raises(CommandError) as caught:
            call_command("import_inventory", str(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert (
        f"{path}: line 13, column 22: refused: aliases (*a) are not allowed in an inventory file"
        in str(caught.value)
    )
    assert peak < 20 * 1024 * 1024
    assert _state() == before


def test_the_export_writes_a_value_seen_twice_in_full_not_as_an_alias():
    shared = {"MemorySize": 512}
    text = inventory.dump({"regions": [], "applications": [{"config": shared}, {"config": shared}]}, "yaml")

    assert "&" not in text
    assert "*" not in text


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_deep_nesting_is_refused_with_a_message_not_a_recursion_error(suffix, tmp_path):
    path = tmp_path / f"deep{suffix}"
    path.write_text("[" * 100_000 + "]" * 100_000)

    with pytest.raises(CommandError) as caught:
        call_command("import_inventory", str(path))

    assert f"refused: nested more than {inventory.MAX_DEPTH} levels deep" in str(caught.value)
    assert not Region.objects.exists()


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_nesting_up_to_the_limit_is_read_and_one_level_more_is_not(suffix, tmp_path):
    depth = inventory.MAX_DEPTH
    path = tmp_path / f"nested{suffix}"
    path.write_text("[" * depth + "]" * depth)
    value = inventory.load_file(path)
    for _ in range(depth - 1):
        value = value[0]
    assert value == []

    path.write_text("[" * (depth + 1) + "]" * (depth + 1))
    with pytest.raises(inventory.InventoryError, match="nested more than"):
        inventory.load_file(path)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_number_with_thousands_of_digits_is_refused_without_a_traceback(suffix, tmp_path):
    path = tmp_path / f"digits{suffix}"
    path.write_text('{"regions": ' + "1" * 5000 + "}")

    with pytest.raises(inventory.InventoryError, match="refused: a number with too many digits"):
        inventory.load_file(path)


def test_a_file_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    path = tmp_path / "huge.yaml"
    path.write_text("applications:\n  - name: orders\n    architecture: A\n    description: "
                    + "x" * 10_000_000 + "\n")
    parsed = []
    monkeypatch.setattr(inventory.yaml, "load", lambda *a, **k: parsed.append(1))

    with pytest.raises(CommandError) as caught:
        call_command("import_inventory", str(path))

    assert (
        f"{path}: refused: the file is {path.stat().st_size:,} bytes; the limit is 5,242,880 "
        "(CONTROLPLANE_INVENTORY_MAX_BYTES)" in str(caught.value)
    )
    assert parsed == []
    assert not Application.objects.exists()


def test_the_size_limit_is_a_setting(tmp_path, settings):
    path = _write(tmp_path, _sample())
    settings.CONTROLPLANE_INVENTORY_MAX_BYTES = 1024

    with pytest.raises(inventory.InventoryError, match="the limit is 1,024"):
        inventory.load_file(path)


def test_a_10_mb_description_under_the_file_limit_is_refused_naming_the_field(settings):
    data = _sample()
    data["applications"][0]["description"] = "x" * 10_000_000

    with pytest.raises(inventory.InventoryError) as caught:
        _import(data)

    assert (
        "inventory.yaml: applications[0] (orders) > description: too long: 10,000,000 characters; "
        "at most 4,000" in str(caught.value)
    )
    assert not Application.objects.exists()


def test_a_huge_key_or_name_is_cut_short_in_the_message():
    data = _sample()
    data["applications"][0]["name"] = "n" * 100_000
    data["applications"][0]["k" * 100_000] = 1

    with pytest.raises(inventory.InventoryError) as caught:
        _import(data)

    assert len(str(caught.value)) < 2000
    assert "too long: 100,000 characters; at most 63" in str(caught.value)


def test_at_most_a_hundred_errors_are_listed_and_the_rest_counted():
    data = {"regions": [{"code": f"bad-{i}"} for i in range(250)]}

    with pytest.raises(inventory.InventoryError) as caught:
        _import(data, name="many.yaml")

    lines = str(caught.value).splitlines()
    assert len(caught.value.errors) == 250
    assert len(lines) == 101
    assert lines[-1] == "many.yaml: ... and 150 more errors"


def test_a_region_newer_than_botocore_is_accepted_once_listed_in_the_setting(settings):
    settings.CONTROLPLANE_EXTRA_REGIONS = ["zz-mars-1"]
    data = _sample()
    data["regions"].append({"code": "zz-mars-1"})

    _import(data)

    assert Region.objects.filter(code="zz-mars-1").exists()


def test_every_region_botocore_knows_is_accepted():
    from controlplane import aws

    data = {"regions": [{"code": code} for code in sorted(aws.known_region_codes())]}

    _import(data)

    assert {"us-east-1", "us-gov-west-1", "cn-north-1", "us-isob-east-1"} <= set(
        Region.objects.values_list("code", flat=True)
    )
