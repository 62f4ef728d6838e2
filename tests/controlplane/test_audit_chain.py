import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from controlplane import audit
from controlplane.models import AppendOnlyError, AuditEvent, AuditSource, audit_hash

pytestmark = pytest.mark.django_db


def _events(n):
    return [
        audit.record(f"user{i}", "test.action", source=AuditSource.COMMAND,
                     object_type="test.thing", object_id=i, before={"n": i}, after={"n": i + 1})
        for i in range(n)
    ]


def test_each_event_is_chained_to_the_previous_one():
    first, second, third = _events(3)
    assert first.prev_hash == "0" * 64
    assert second.prev_hash == first.hash
    assert third.prev_hash == second.hash
    assert [e.seq for e in (first, second, third)] == [1, 2, 3]
    report = audit.verify_chain()
    assert (report.checked, report.problem) == (3, None)


def test_events_cannot_be_updated_through_the_orm():
    (event,) = _events(1)
    event.action = "forged"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(action="forged")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.bulk_update([event], ["action"])
    assert AuditEvent.objects.get(pk=event.pk).action == "test.action"


def test_events_cannot_be_deleted_through_the_orm():
    (event,) = _events(1)
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.count() == 1


def test_verify_audit_passes_on_an_intact_chain(capsys):
    _events(5)
    call_command("verify_audit")
    assert "5 rows verified" in capsys.readouterr().out


def test_verify_audit_names_the_row_changed_with_raw_sql():
    events = _events(5)
    target = events[2]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {AuditEvent._meta.db_table} SET actor = %s WHERE id = %s",
            ["mallory", target.pk],
        )
    with pytest.raises(CommandError) as excinfo:
        call_command("verify_audit")
    message = str(excinfo.value)
    assert f"seq={target.seq}" in message
    assert f"id={target.pk}" in message
    assert "altered" in message


def test_verify_audit_names_the_gap_left_by_a_row_deleted_with_raw_sql():
    events = _events(5)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {AuditEvent._meta.db_table} WHERE id = %s", [events[1].pk])
    with pytest.raises(CommandError) as excinfo:
        call_command("verify_audit")
    assert "seq=3" in str(excinfo.value)
    assert "removed" in str(excinfo.value)


def test_verify_audit_notices_that_the_newest_rows_were_removed():
    events = _events(4)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {AuditEvent._meta.db_table} WHERE id = %s", [events[-1].pk])
    with pytest.raises(CommandError) as excinfo:
        call_command("verify_audit")
    assert "seq=4" in str(excinfo.value)


def test_verify_audit_catches_a_rehashed_forgery():
    """Recomputing the forged row's own hash is not enough: its MAC, made with a key
    the forger does not hold, no longer verifies (and the next row still points at the
    original)."""
    events = _events(3)
    forged = AuditEvent.objects.get(pk=events[1].pk)
    forged.actor = "mallory"
    new_hash = audit_hash(forged)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {AuditEvent._meta.db_table} SET actor = %s, hash = %s WHERE id = %s",
            ["mallory", new_hash, forged.pk],
        )
    report = audit.verify_chain()
    assert report.checked == 1
    assert report.problem.seq == 2
    assert "MAC does not verify" in report.problem.message


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_produce_one_unbroken_chain():
    errors = []

    def write(i):
        try:
            for j in range(5):
                audit.record(f"writer{i}", "test.concurrent", source=AuditSource.SYSTEM,
                             object_type="test", object_id=j)
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    report = audit.verify_chain()
    assert (report.checked, report.problem) == (20, None)
