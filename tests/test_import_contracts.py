"""The import contracts of pyproject.toml ([tool.importlinter]) hold: no import cycle
between the modules of experiments, regions and controlplane (imports inside functions
count too); the project in layers (experiments over regions and the sandbox, which do
not import each other, over controlplane; docs/ARCHITECTURE.md); the fault library
imports no models; and the drills' modules import only from the layers below them
(docs/DRILLS.md, "Layers"). Each contract is also shown to fail when one import breaks
it, on a copy of the tree."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("controlplane", "regions", "experiments", "sandbox", "notifications")
LINT = (
    "import sys; from importlinter.cli import lint_imports; "
    "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))"
)


def _lint(root):
    return subprocess.run(
        [sys.executable, "-c", LINT], cwd=root, capture_output=True, text=True, timeout=120
    )


def test_the_import_contracts_hold():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "bad_import", "contract"),
    [
        ("regions/drift.py", "import experiments.models", "The project in layers"),
        ("sandbox/world.py", "import regions.status", "The project in layers"),
        ("controlplane/audit.py", "import regions.models", "The project in layers"),
        ("experiments/faults.py", "import experiments.models", "The fault library is pure"),
        ("experiments/models.py", "import experiments.services", "Drills in layers"),
        ("regions/status.py", "import regions.views", "No import cycles"),
    ],
)
def test_one_bad_import_breaks_its_contract(tmp_path, module, bad_import, contract):
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    path = tmp_path / module
    path.write_text(path.read_text() + f"\n\ndef _broken():\n    {bad_import}\n")
    result = _lint(tmp_path)
    assert result.returncode != 0, result.stdout
    assert " broken." in result.stdout and "0 broken." not in result.stdout, result.stdout
    assert contract in result.stdout.split("Broken contracts", 1)[1], result.stdout
