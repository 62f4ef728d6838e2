"""Anchors: `audit_anchor FILE`, the beat task (local file, and S3 with Object Lock on the
sandbox's moto), and what `verify_audit --anchor` does with good and tampered anchors."""

import json
import uuid
from datetime import datetime, timedelta

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command

from controlplane import anchors, audit, aws
from controlplane.models import AuditEvent, AuditSource
from controlplane.tasks import anchor_audit_chain

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _own_keys(audit_key_file):
    """Every test here signs with a key file of its own."""


def _events(n):
    return [audit.record("ada-admin", "region.updated", source=AuditSource.CONSOLE,
                         object_type="regions.region", object_id=i) for i in range(n)]


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_audit_anchor_appends_the_signed_head_and_verify_checks_every_anchor(tmp_path, capsys):
    path = tmp_path / "anchors.jsonl"
    call_command("audit_anchor", str(path))  # the empty chain anchors too
    events = _events(3)
    call_command("audit_anchor", str(path))
    assert "Anchored the audit chain at seq 3" in capsys.readouterr().out

    first, second = _lines(path)
    assert first["seq"] == 0
    head = events[-1]
    assert (second["seq"], second["hash"], second["mac"], second["kid"]) == (head.seq, head.hash, head.mac,
                                                                            head.kid)
    assert second["head_created_at"] == head.created_at.isoformat()
    assert second["anchor_kid"] == head.kid
    assert len(second["anchor_mac"]) == 64

    _events(1)
    call_command("verify_audit", anchor=[str(path)])
    assert "4 rows verified" in capsys.readouterr().out


def test_verify_audit_reports_that_the_chain_holds_the_anchors(tmp_path, capsys):
    _events(2)
    path = tmp_path / "anchors.jsonl"
    call_command("audit_anchor", str(path))
    call_command("audit_anchor", str(path))
    capsys.readouterr()
    call_command("verify_audit", anchor=[str(path)])
    out = capsys.readouterr().out
    assert "2 rows verified" in out
    assert "It holds all 2 anchors given." in out
    assert "No anchor given" not in out


def test_an_edited_anchor_is_refused(tmp_path):
    _events(3)
    path = tmp_path / "anchors.jsonl"
    call_command("audit_anchor", str(path))
    (anchor,) = _lines(path)
    anchor["seq"] = 2  # someone "corrects" the anchor to fit a truncated chain
    path.write_text(json.dumps(anchor) + "\n")
    with pytest.raises(CommandError, match=rf"{path} line 1: the anchor's MAC does not verify"):
        call_command("verify_audit", anchor=[str(path)])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("", "holds no anchors"),
        ("not json\n", "line 1 is not JSON"),
        ('{"seq": 3}\n', "line 1 is not an audit anchor"),
    ],
)
def test_an_unusable_anchor_file_is_refused_by_name(tmp_path, content, message):
    path = tmp_path / "anchors.jsonl"
    if content is not None:
        path.write_text(content)
    with pytest.raises(CommandError, match=message):
        call_command("verify_audit", anchor=[str(path)])


def test_the_beat_task_appends_to_the_anchor_dir(settings, tmp_path):
    settings.AUDIT_ANCHOR_DIR = tmp_path / "anchors"
    settings.AUDIT_ANCHOR_S3_BUCKET = ""
    _events(2)
    anchor_audit_chain()
    _events(1)
    anchor_audit_chain()
    path = tmp_path / "anchors" / "audit-anchors.jsonl"
    assert [a["seq"] for a in _lines(path)] == [2, 3]
    assert [a.seq for a in anchors.read(path)] == [2, 3]


def test_beat_runs_the_anchor_task_at_the_configured_interval():
    entry = django_settings.CELERY_BEAT_SCHEDULE["audit-anchor"]
    assert entry["task"] == anchor_audit_chain.name == "controlplane.tasks.anchor_audit_chain"
    assert entry["schedule"] == timedelta(seconds=django_settings.AUDIT_ANCHOR_INTERVAL)


@pytest.fixture
def lock_bucket(sandbox_settings, sandbox_aws, settings, tmp_path):
    """A bucket with Object Lock on the sandbox's moto S3, set as the anchor bucket."""
    bucket = f"audit-anchors-{uuid.uuid4().hex[:12]}"
    sandbox_aws("s3", "us-east-1").create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    settings.AUDIT_ANCHOR_S3_BUCKET = bucket
    settings.AUDIT_ANCHOR_S3_REGION = "us-east-1"
    settings.AUDIT_ANCHOR_DIR = tmp_path / "anchors"
    return bucket


@pytest.mark.sandbox
def test_the_beat_task_puts_each_anchor_to_s3_under_object_lock(lock_bucket, sandbox_aws, settings, tmp_path):
    """moto (5.2.5) stores the lock and refuses to delete a locked version, which is what
    is checked here; its GetObjectRetention answers 500, so the retention is read with
    HeadObject."""
    _events(3)
    anchor_audit_chain()
    s3 = sandbox_aws("s3", "us-east-1")
    (listed,) = s3.list_objects_v2(Bucket=lock_bucket, Prefix=settings.AUDIT_ANCHOR_S3_PREFIX)["Contents"]
    (local,) = _lines(tmp_path / "anchors" / "audit-anchors.jsonl")
    assert listed["Key"] == anchors.s3_key(local)
    assert listed["Key"].endswith("-seq3.json")

    head = s3.head_object(Bucket=lock_bucket, Key=listed["Key"])
    assert head["ObjectLockMode"] == "COMPLIANCE"
    retain_until = datetime.fromisoformat(local["anchored_at"]) + timedelta(days=400)
    assert abs(head["ObjectLockRetainUntilDate"] - retain_until) < timedelta(seconds=1)

    body = s3.get_object(Bucket=lock_bucket, Key=listed["Key"])["Body"].read()
    assert json.loads(body) == local
    downloaded = tmp_path / "from-s3.jsonl"
    downloaded.write_bytes(body)
    call_command("verify_audit", anchor=[str(downloaded)])  # an S3 object is an anchor file

    with pytest.raises(aws.ClientError) as excinfo:
        s3.delete_object(Bucket=lock_bucket, Key=listed["Key"], VersionId=head["VersionId"])
    assert excinfo.value.response["Error"]["Code"] == "AccessDenied"


@pytest.mark.sandbox
def test_an_s3_failure_fails_the_task_after_the_local_anchor_is_written(
    sandbox_settings, settings, tmp_path
):
    settings.AUDIT_ANCHOR_DIR = tmp_path / "anchors"
    settings.AUDIT_ANCHOR_S3_BUCKET = f"no-such-bucket-{uuid.uuid4().hex[:12]}"
    _events(1)
    with pytest.raises(aws.ClientError, match="NoSuchBucket"):
        anchor_audit_chain()
    assert [a["seq"] for a in _lines(tmp_path / "anchors" / "audit-anchors.jsonl")] == [1]


@pytest.mark.sandbox
def test_audit_anchor_s3_puts_the_same_anchor(lock_bucket, sandbox_aws, tmp_path, capsys):
    _events(2)
    path = tmp_path / "manual.jsonl"
    call_command("audit_anchor", str(path), "--s3")
    assert f"s3://{lock_bucket}/" in capsys.readouterr().out
    (anchor,) = _lines(path)
    body = sandbox_aws("s3", "us-east-1").get_object(Bucket=lock_bucket, Key=anchors.s3_key(anchor))["Body"]
    assert json.loads(body.read()) == anchor
    assert AuditEvent.objects.count() == 2
