import json
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from controlplane import env
from tests.processes import BASE_DIR


@pytest.mark.parametrize(
    ("value", "expected"), [("1", True), ("true", True), ("Off", False), ("no", False)]
)
def test_env_bool_reads_common_spellings(monkeypatch, value, expected):
    monkeypatch.setenv("X_FLAG", value)
    assert env.env_bool("X_FLAG") is expected


def test_env_bool_fails_loudly_on_nonsense(monkeypatch):
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="X_FLAG"):
        env.env_bool("X_FLAG")


def test_env_int_checks_type_and_bounds(monkeypatch):
    monkeypatch.setenv("X_INT", "abc")
    with pytest.raises(ImproperlyConfigured, match="X_INT='abc' is not an integer"):
        env.env_int("X_INT", 1)
    monkeypatch.setenv("X_INT", "-5")
    with pytest.raises(ImproperlyConfigured, match="below the minimum"):
        env.env_int("X_INT", 1, minimum=0)
    monkeypatch.delenv("X_INT")
    assert env.env_int("X_INT", 7) == 7


def test_env_url_rejects_unknown_schemes(monkeypatch):
    monkeypatch.setenv("X_URL", "amqp://guest@localhost")
    with pytest.raises(ImproperlyConfigured, match="scheme must be one of"):
        env.env_url("X_URL", schemes={"redis"})
    monkeypatch.setenv("X_URL", "not a url")
    with pytest.raises(ImproperlyConfigured, match="is not a URL"):
        env.env_url("X_URL")


def test_env_list_splits_on_commas(monkeypatch):
    monkeypatch.setenv("X_LIST", "a.example, b.example,,")
    assert env.env_list("X_LIST") == ["a.example", "b.example"]


def _manage(args, tmp_path, **extra):
    environment = {
        "PATH": "/usr/bin:/bin",
        "CONTROLPLANE_VAR_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "controlplane.settings",
        **extra,
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR, env=environment, capture_output=True, text=True, timeout=120,
    )


PRODUCTION = {
    "CONTROLPLANE_PRODUCTION": "true",
    "SECRET_KEY": "x" * 64 + "-production-secret-key-for-the-deploy-check",
    "ALLOWED_HOSTS": "controlplane.example.com",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test",
    "CONTROLPLANE_BROKER_URL": "redis://127.0.0.1:6379/0",
    "CONTROLPLANE_CACHE_URL": "redis://127.0.0.1:6379/1",
    "CONTROLPLANE_AUDIT_KEY": "prod-1:" + "s" * 48,
}


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = _manage(["check", "--deploy", "--fail-level", "WARNING"], tmp_path, **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    settings = {k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"}
    result = _manage(["check"], tmp_path, **settings)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_refuses_to_start_without_a_shared_cache(tmp_path):
    """Sessions and roles are cached (controlplane/authcache.py): a cache of one machine
    would keep a signed-out session alive on the others."""
    settings = {k: v for k, v in PRODUCTION.items() if k != "CONTROLPLANE_CACHE_URL"}
    result = _manage(["check"], tmp_path, **settings)
    assert result.returncode != 0
    assert "CONTROLPLANE_CACHE_URL (redis://...) must be set" in result.stderr


def test_the_cache_is_redis_when_named_and_a_shared_folder_otherwise(tmp_path):
    show = ["shell", "-c", "from django.conf import settings; print(settings.CACHES['default'])"]
    named = _manage(show, tmp_path, CONTROLPLANE_CACHE_URL="redis://127.0.0.1:6379/3")
    assert "RedisCache" in named.stdout and "redis://127.0.0.1:6379/3" in named.stdout
    default = _manage(show, tmp_path)
    assert "FileBasedCache" in default.stdout and str(tmp_path / "cache") in default.stdout


def test_production_refuses_to_start_without_an_audit_key(tmp_path):
    settings = {k: v for k, v in PRODUCTION.items() if k != "CONTROLPLANE_AUDIT_KEY"}
    result = _manage(["check"], tmp_path, **settings)
    assert result.returncode != 0
    assert "CONTROLPLANE_AUDIT_KEY or CONTROLPLANE_AUDIT_KEY_FILE must be set" in result.stderr
    assert not (tmp_path / "audit_keys.json").exists()


def test_an_audit_key_file_that_does_not_exist_is_refused_by_name(tmp_path):
    missing = tmp_path / "keys" / "audit.json"
    result = _manage(["check"], tmp_path, CONTROLPLANE_AUDIT_KEY_FILE=str(missing))
    assert result.returncode != 0
    assert f"the audit key file {missing} does not exist" in result.stderr


def test_the_embedded_default_generates_and_keeps_an_audit_key_file(tmp_path):
    assert _manage(["check"], tmp_path).returncode == 0
    path = tmp_path / "audit_keys.json"
    keys = path.read_text()
    ring = json.loads(keys)
    assert len(ring["keys"][ring["current"]]) >= 32
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert _manage(["check"], tmp_path).returncode == 0
    assert path.read_text() == keys


def test_a_bad_broker_url_is_refused_with_its_variable_named(tmp_path):
    result = _manage(["check"], tmp_path, CONTROLPLANE_BROKER_URL="amqp://guest@localhost//")
    assert result.returncode != 0
    assert "CONTROLPLANE_BROKER_URL" in result.stderr


def test_the_embedded_default_generates_and_keeps_a_secret_key(tmp_path):
    assert _manage(["check"], tmp_path).returncode == 0
    key = (tmp_path / "secret_key").read_text()
    assert len(key) >= 50
    assert _manage(["check"], tmp_path).returncode == 0
    assert (tmp_path / "secret_key").read_text() == key
    assert oct((tmp_path / "secret_key").stat().st_mode & 0o777) == "0o600"


def test_a_heartbeat_timeout_within_two_heartbeats_is_refused(tmp_path):
    result = _manage(
        ["check"], tmp_path, CONTROLPLANE_HEARTBEAT_SECONDS="10", CONTROLPLANE_HEARTBEAT_TIMEOUT_SECONDS="15"
    )
    assert result.returncode != 0
    assert "CONTROLPLANE_HEARTBEAT_TIMEOUT_SECONDS=15.0 must be more than twice" in result.stderr


def test_an_extra_region_that_is_not_a_region_code_is_refused(tmp_path):
    result = _manage(["check"], tmp_path, CONTROLPLANE_EXTRA_REGIONS="xx-newplace-1,Mars")
    assert result.returncode != 0
    assert "CONTROLPLANE_EXTRA_REGIONS: 'Mars' is not a region code" in result.stderr
