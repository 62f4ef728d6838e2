import json

import pytest
import yaml
from django.core.management import call_command

from controlplane.models import AuditEvent
from regions import inventory
from regions.models import Application, Component, Region, Stack

from .conftest import SAMPLE

pytestmark = pytest.mark.django_db


def _import_sample():
    inventory.import_inventory(
        inventory.load_file(SAMPLE), actor="ada-admin", source_name=str(SAMPLE)
    )


def test_export_then_import_into_an_empty_inventory_round_trips():
    _import_sample()
    exported = inventory.export_inventory()
    for model in (Component, Stack, Application, Region):
        model.objects.all().delete()

    inventory.import_inventory(exported, actor="ada-admin", source_name="export.yaml")

    assert inventory.export_inventory() == exported


def test_importing_an_export_of_the_same_inventory_changes_nothing():
    _import_sample()
    audit_rows = AuditEvent.objects.count()

    summary = inventory.import_inventory(
        inventory.export_inventory(), actor="ada-admin", source_name="export.yaml"
    )

    assert summary.changed == 0
    assert AuditEvent.objects.count() == audit_rows


def test_the_export_of_the_sample_matches_the_sample_file_content():
    _import_sample()
    exported = inventory.export_inventory()
    sample = inventory.load_file(SAMPLE)

    def by_name(entries, key):
        return {e[key]: e for e in entries}

    assert by_name(exported["regions"], "code") == by_name(sample["regions"], "code")
    orders = by_name(exported["applications"], "name")["orders"]
    assert orders["architecture"] == "A"
    assert orders["global_endpoint_url"] == "https://api.orders.example.com/"
    assert [s["region"] for s in orders["stacks"]] == ["us-east-1", "us-west-2"]


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_dumped_text_reads_back_as_the_same_data(fmt, tmp_path):
    _import_sample()
    exported = inventory.export_inventory()
    path = tmp_path / f"inventory.{fmt}"
    path.write_text(inventory.dump(exported, fmt))

    assert inventory.load_file(path) == exported


def test_an_empty_inventory_exports_empty_lists():
    assert inventory.export_inventory() == {"regions": [], "applications": []}


def test_export_command_writes_yaml_to_standard_output(capsys):
    _import_sample()

    call_command("export_inventory")

    data = yaml.safe_load(capsys.readouterr().out)
    assert data == inventory.export_inventory()


def test_export_command_writes_json_to_a_file(tmp_path):
    _import_sample()
    path = tmp_path / "out.json"

    call_command("export_inventory", "--format", "json", "-o", str(path))

    assert json.loads(path.read_text()) == inventory.export_inventory()


def test_export_command_output_imports_back_with_the_import_command(tmp_path, capsys):
    _import_sample()
    path = tmp_path / "inventory.yaml"
    call_command("export_inventory", "-o", str(path))
    capsys.readouterr()

    call_command("import_inventory", str(path))

    assert "nothing to change" in capsys.readouterr().out
