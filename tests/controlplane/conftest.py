import pytest

from controlplane import auditkeys


@pytest.fixture
def audit_key_file(tmp_path, settings):
    """A key file of this test's own (one key), so that tests that rotate, replace or
    remove keys touch nobody else's; returns its path."""
    path = tmp_path / "audit_keys.json"
    auditkeys.create_file(path)
    settings.AUDIT_KEY = None
    settings.AUDIT_KEY_FILE = path
    return path
