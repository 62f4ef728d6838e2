"""The four ways someone who can write the database (raw SQL, ORM .update()) but does
not hold the audit key used to rewrite the audit log unnoticed. Each test takes what an
honest `record()` wrote, attacks it, and shows that `verify_audit` fails naming where.
The truncation attacks leave a chain that is consistent in itself: only an anchor taken
before the attack (`audit_anchor`) reveals them, and the tests show both halves."""

import hashlib
import hmac

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from controlplane import audit, auditkeys
from controlplane.models import GENESIS_HASH, AuditChainHead, AuditEvent, AuditSource, audit_hash

pytestmark = pytest.mark.django_db

TABLE = AuditEvent._meta.db_table


@pytest.fixture(autouse=True)
def _own_keys(audit_key_file):
    """Every test here signs with a key file of its own."""


def _events(n):
    return [
        audit.record(f"user{i}", "drill.requested", source=AuditSource.CONSOLE,
                     object_type="experiments.drill", object_id=i, after={"state": "requested"})
        for i in range(1, n + 1)
    ]


def _anchor(tmp_path):
    path = tmp_path / "anchors.jsonl"
    call_command("audit_anchor", str(path))
    return path


def _reset_head_to(event):
    AuditChainHead.objects.filter(pk=1).update(
        seq=event.seq if event else 0,
        hash=event.hash if event else GENESIS_HASH,
        mac=event.mac if event else "",
        kid=event.kid if event else "",
    )


def test_removing_the_newest_rows_and_resetting_the_head_fails_against_an_anchor(tmp_path, capsys):
    events = _events(5)
    anchor = _anchor(tmp_path)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE seq > %s", [3])
    _reset_head_to(events[2])

    call_command("verify_audit")  # what is left is a consistent chain of 3 rows ...
    assert "No anchor given" in capsys.readouterr().out
    with pytest.raises(CommandError) as excinfo:  # ... but the anchor remembers 5
        call_command("verify_audit", anchor=[str(anchor)])
    message = str(excinfo.value)
    assert "the chain ends at seq 3" in message
    assert "records seq 5: rows 4..5 were removed" in message
    assert str(anchor) in message

    # New honest rows after the attack refill seq 4 and 5, with other hashes.
    _events(2)
    with pytest.raises(CommandError, match=r"row seq=5 \(id=\d+\): differs from the anchor taken at "):
        call_command("verify_audit", anchor=[str(anchor)])


def test_deleting_every_row_and_resetting_the_head_fails_against_an_anchor(tmp_path, capsys):
    _events(5)
    anchor = _anchor(tmp_path)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TABLE}")
    _reset_head_to(None)

    call_command("verify_audit")
    assert "0 rows verified" in capsys.readouterr().out
    with pytest.raises(CommandError) as excinfo:
        call_command("verify_audit", anchor=[str(anchor)])
    assert "the chain ends at seq 0" in str(excinfo.value)
    assert "rows 1..5 were removed" in str(excinfo.value)


def test_editing_a_middle_row_and_rehashing_every_later_row_fails(tmp_path):
    events = _events(5)
    prev_hash = events[1].hash
    with connection.cursor() as cursor:
        for event in AuditEvent.objects.filter(seq__gte=3).order_by("seq"):
            if event.seq == 3:
                event.actor = "mallory"
            event.prev_hash = prev_hash
            event.hash = audit_hash(event)
            cursor.execute(
                f"UPDATE {TABLE} SET actor = %s, prev_hash = %s, hash = %s WHERE id = %s",
                [event.actor, event.prev_hash, event.hash, event.pk],
            )
            prev_hash = event.hash
    AuditChainHead.objects.filter(pk=1).update(hash=prev_hash)

    with pytest.raises(CommandError) as excinfo:
        call_command("verify_audit")
    message = str(excinfo.value)
    assert f"row seq=3 (id={events[2].pk})" in message
    assert "MAC does not verify" in message
    assert "2 rows verified before it" in message


@pytest.mark.parametrize("mac", ["none", "own key"])
def test_an_appended_forged_drill_approval_fails(mac):
    events = _events(5)
    last = events[-1]
    forged = AuditEvent(
        seq=last.seq + 1, actor="anna-approver", source=AuditSource.CONSOLE, action="drill.approved",
        object_type="experiments.drill", object_id="5", object_repr="drill #5",
        after={"state": "approved"}, prev_hash=last.hash,
    )
    forged.hash = audit_hash(forged)
    if mac == "own key":  # a key of the forger's own, under the real key id
        forged.kid = last.kid
        message = auditkeys.row_message(forged.kid, forged.seq, forged.hash, last.mac)
        forged.mac = hmac.new(b"mallory-guessed-this-key-0123456789", message, hashlib.sha256).hexdigest()
    forged.save()  # a plain INSERT
    AuditChainHead.objects.filter(pk=1).update(seq=forged.seq, hash=forged.hash, mac=forged.mac,
                                               kid=forged.kid)

    with pytest.raises(CommandError) as excinfo:
        call_command("verify_audit")
    message = str(excinfo.value)
    assert f"row seq=6 (id={forged.pk})" in message
    if mac == "none":
        assert "no MAC but follows signed rows" in message
    else:
        assert "MAC does not verify" in message
