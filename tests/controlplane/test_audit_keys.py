"""The audit keys: missing or wrong keys fail loudly, rotation keeps old rows
verifiable and is itself audited, and rows written before the keyed chain are sealed
and reported rather than passed silently."""

import json
import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from controlplane import audit, auditkeys
from controlplane.auditkeys import AuditKeyError
from controlplane.models import GENESIS_HASH, AuditChainHead, AuditEvent, AuditSource, audit_hash

pytestmark = pytest.mark.django_db

SECRET_A = "a" * 40
SECRET_B = "b" * 40


def _events(n, actor="otto-operator"):
    return [audit.record(actor, "stack.rotation_changed", source=AuditSource.CONSOLE,
                         object_type="regions.stack", object_id=i) for i in range(n)]


def _key_file(path, current, **keys):
    path.write_text(json.dumps({"current": current, "keys": keys}))
    return path


# --- missing and wrong keys ------------------------------------------------------------

def test_without_a_key_file_record_and_verify_stop_naming_the_file(settings, tmp_path):
    missing = tmp_path / "nowhere" / "audit_keys.json"
    settings.AUDIT_KEY, settings.AUDIT_KEY_FILE = None, missing
    with pytest.raises(AuditKeyError, match=f"the audit key file {missing} does not exist"):
        _events(1)
    assert not AuditEvent.objects.exists()
    with pytest.raises(CommandError, match="CONTROLPLANE_AUDIT_KEY_FILE"):
        call_command("verify_audit")


def test_without_any_key_configured_the_message_says_what_to_set(settings):
    settings.AUDIT_KEY, settings.AUDIT_KEY_FILE = None, None
    with pytest.raises(AuditKeyError, match="set CONTROLPLANE_AUDIT_KEY or CONTROLPLANE_AUDIT_KEY_FILE"):
        _events(1)


def test_a_different_secret_under_the_same_key_id_fails_verification(settings, tmp_path):
    settings.AUDIT_KEY, settings.AUDIT_KEY_FILE = None, _key_file(tmp_path / "k.json", "k1", k1=SECRET_A)
    _events(3)
    settings.AUDIT_KEY_FILE = _key_file(tmp_path / "wrong.json", "k1", k1=SECRET_B)
    with pytest.raises(CommandError) as excinfo:
        call_command("verify_audit")
    message = str(excinfo.value)
    assert "row seq=1" in message
    assert "MAC does not verify with key 'k1'" in message
    assert f"{tmp_path / 'wrong.json'} holds a different secret under that id" in message


def test_rows_signed_with_a_key_that_is_not_here_name_it(settings, tmp_path):
    settings.AUDIT_KEY, settings.AUDIT_KEY_FILE = None, _key_file(tmp_path / "k.json", "k1", k1=SECRET_A)
    _events(2)
    settings.AUDIT_KEY_FILE = _key_file(tmp_path / "other.json", "k2", k2=SECRET_B)
    with pytest.raises(CommandError, match=r"row seq=1 .*signed with audit key 'k1', which is not among "
                       r"the keys here \(k2 from "):
        call_command("verify_audit")
    with pytest.raises(AuditKeyError, match=r"seq 2\) is signed with key 'k1', which this process does "
                       "not know .* outdated audit keys"):
        _events(1)


def test_a_malformed_environment_key_is_refused_without_echoing_the_secret(settings):
    settings.AUDIT_KEY_FILE = None
    settings.AUDIT_KEY = "k1-without-a-colon-" + SECRET_A
    with pytest.raises(AuditKeyError, match="CONTROLPLANE_AUDIT_KEY must be 'kid:secret") as excinfo:
        _events(1)
    assert SECRET_A not in str(excinfo.value)
    settings.AUDIT_KEY = "k1:tiny-secret"
    with pytest.raises(AuditKeyError, match="secret of key 'k1' is shorter than 32 characters") as excinfo:
        _events(1)
    assert "tiny-secret" not in str(excinfo.value)


# --- rotation --------------------------------------------------------------------------

def test_rotating_the_key_file_keeps_old_rows_verifiable_and_is_audited(audit_key_file, capsys):
    old_kid = auditkeys.keyring().current.kid
    _events(3)
    call_command("audit_rotate_key")
    assert "Audit key rotated" in capsys.readouterr().out
    ring = auditkeys.keyring()
    new_kid = ring.current.kid
    assert new_kid != old_kid
    assert set(ring.keys) == {old_kid, new_kid}

    rotation = AuditEvent.objects.get(action="audit.key_rotated")
    assert rotation.seq == 4
    assert rotation.kid == new_kid
    assert rotation.source == AuditSource.COMMAND
    assert rotation.after == {"old_kid": old_kid, "new_kid": new_kid}
    later = _events(2)
    assert {e.kid for e in later} == {new_kid}

    call_command("verify_audit")
    out = capsys.readouterr().out
    assert "6 rows verified" in out
    assert f"3 with key {old_kid}" in out
    assert f"3 with key {new_kid}" in out


def test_a_row_signed_with_the_retired_key_after_the_rotation_fails(audit_key_file):
    """Why rotate after a suspected leak: whoever holds the old key can no longer add rows."""
    old_key = auditkeys.keyring().current
    _events(2)
    call_command("audit_rotate_key")
    head = AuditChainHead.objects.get(pk=1)
    forged = AuditEvent(seq=head.seq + 1, actor="mallory", source=AuditSource.CONSOLE,
                        action="drill.approved", prev_hash=head.hash, kid=old_key.kid)
    forged.hash = audit_hash(forged)
    forged.mac = old_key.sign(auditkeys.row_message(old_key.kid, forged.seq, forged.hash, head.mac))
    forged.save()
    AuditChainHead.objects.filter(pk=1).update(seq=forged.seq, hash=forged.hash, mac=forged.mac,
                                               kid=forged.kid)
    with pytest.raises(CommandError, match=rf"row seq=4 .*signed with key '{old_key.kid}', which the "
                       "rotation at seq 3 retired"):
        call_command("verify_audit")


def test_a_process_left_with_the_old_key_file_refuses_to_sign(audit_key_file, tmp_path, settings):
    stale = tmp_path / "stale.json"
    stale.write_text(audit_key_file.read_text())
    _events(1)
    call_command("audit_rotate_key")
    settings.AUDIT_KEY_FILE = stale
    with pytest.raises(AuditKeyError, match="outdated audit keys"):
        _events(1)
    assert AuditEvent.objects.count() == 2


def test_a_new_first_environment_key_records_the_rotation_on_its_first_event(settings, capsys):
    settings.AUDIT_KEY_FILE = None
    settings.AUDIT_KEY = f"k1:{SECRET_A}"
    _events(2)
    with pytest.raises(CommandError, match="already signs the chain: there is nothing to rotate to"):
        call_command("audit_rotate_key")

    settings.AUDIT_KEY = f"k2:{SECRET_B},k1:{SECRET_A}"  # the operator puts a new key first
    (event,) = _events(1)
    rotation = AuditEvent.objects.get(seq=3)
    assert (rotation.action, rotation.actor, rotation.kid) == ("audit.key_rotated", "system", "k2")
    assert rotation.after == {"old_kid": "k1", "new_kid": "k2"}
    assert event.seq == 4
    call_command("verify_audit")
    assert "4 rows verified (2 with key k1, 2 with key k2)" in capsys.readouterr().out

    settings.AUDIT_KEY = f"k1:{SECRET_A},k2:{SECRET_B}"  # a process started with the old order
    with pytest.raises(AuditKeyError, match="'k1', which was retired by the rotation at seq 3"):
        _events(1)


def test_generate_prints_a_key_for_the_environment_and_changes_nothing(audit_key_file, capsys):
    before = audit_key_file.read_text()
    call_command("audit_rotate_key", "--generate")
    kid, _, secret = capsys.readouterr().out.strip().partition(":")
    assert auditkeys.parse_env(f"{kid}:{secret}").current.kid == kid
    assert audit_key_file.read_text() == before
    assert not AuditEvent.objects.exists()


# --- rows written before the keyed chain -------------------------------------------------

def _legacy_rows(n):
    """Rows as the code before the keyed chain wrote them: hash-chained, no kid, no MAC."""
    prev = GENESIS_HASH
    rows = []
    for seq in range(1, n + 1):
        row = AuditEvent(seq=seq, actor="old-timer", source=AuditSource.CONSOLE, action="drill.requested",
                         object_type="experiments.drill", object_id=str(seq), prev_hash=prev)
        row.hash = audit_hash(row)
        row.save()
        rows.append(row)
        prev = row.hash
    AuditChainHead.objects.update_or_create(pk=1, defaults={"seq": n, "hash": prev, "mac": "", "kid": ""})
    return rows


def test_unsigned_rows_are_not_passed_until_sealed_and_then_reported(audit_key_file, capsys):
    _legacy_rows(3)
    with pytest.raises(CommandError, match=r"rows 1\.\.3 have no MAC and no signed row follows them.*"
                       "audit_seal"):
        call_command("verify_audit")
    with pytest.raises(audit.UnsealedChainError, match="audit_seal"):
        _events(1)

    call_command("audit_seal")
    assert "Sealed rows 1..3 with event seq 4" in capsys.readouterr().out
    seal = AuditEvent.objects.get(seq=4)
    assert seal.action == "audit.sealed"
    assert seal.after["unsigned_rows"] == [1, 3]
    _events(1)
    call_command("verify_audit")
    out = capsys.readouterr().out
    assert "5 rows verified" in out
    assert "Rows 1..3 carry no MAC: they were written before the keyed chain" in out
    call_command("audit_seal")
    assert "Nothing to seal" in capsys.readouterr().out


def test_sealed_rows_cannot_be_rewritten_even_with_every_later_hash_recomputed(audit_key_file):
    _legacy_rows(3)
    call_command("audit_seal")
    prev = AuditEvent.objects.get(seq=1).hash
    with connection.cursor() as cursor:
        for row in AuditEvent.objects.filter(seq__gte=2).order_by("seq"):
            row.actor = "mallory" if row.seq == 2 else row.actor
            row.prev_hash = prev
            row.hash = audit_hash(row)
            cursor.execute(f"UPDATE {AuditEvent._meta.db_table} SET actor=%s, prev_hash=%s, hash=%s "
                           "WHERE id=%s", [row.actor, row.prev_hash, row.hash, row.pk])
            prev = row.hash
    AuditChainHead.objects.filter(pk=1).update(hash=prev)
    with pytest.raises(CommandError, match=r"row seq=4 .*MAC does not verify"):
        call_command("verify_audit")


def test_seal_refuses_a_broken_chain(audit_key_file):
    rows = _legacy_rows(3)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {AuditEvent._meta.db_table} SET actor='mallory' WHERE id=%s", [rows[1].pk])
    with pytest.raises(CommandError, match=r"Not sealed: row seq=2 .*altered; not sealing it"):
        call_command("audit_seal")
    assert AuditEvent.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_the_migration_seals_rows_written_before_the_keyed_chain(audit_key_file):
    executor = MigrationExecutor(connection)
    executor.migrate([("controlplane", "0004_audit_keyed_chain")])
    _legacy_rows(2)
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    seal = AuditEvent.objects.get(seq=3)
    assert (seal.action, seal.kid) == ("audit.sealed", auditkeys.keyring().current.kid)
    report = audit.verify_chain()
    assert (report.checked, report.unsigned, report.problem) == (3, 2, None)


def test_creators_racing_for_the_key_file_end_up_with_one_key(tmp_path):
    path = tmp_path / "audit_keys.json"
    start = threading.Barrier(8)

    def create():
        start.wait()
        auditkeys.create_file(path)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ring = auditkeys.read_file(path)
    assert len(ring.keys) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["audit_keys.json"]  # no temporary files left
