"""The import contracts of pyproject.toml ([tool.importlinter]) hold: no import cycle
between the modules of experiments, regions and controlplane (imports inside functions
count too), and the drills' modules import only from the layers below them
(docs/DRILLS.md, "Layers")."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT = (
    "import sys; from importlinter.cli import lint_imports; "
    "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))"
)


def test_the_import_contracts_hold():
    result = subprocess.run(
        [sys.executable, "-c", LINT], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
