"""Writing and verifying the append-only, hash-chained audit log.

Every service function that changes state calls `record()` explicitly, inside the
same transaction as the change, so an action and its audit row commit together.
"""

import json
from dataclasses import dataclass

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from controlplane.models import GENESIS_HASH, AuditChainHead, AuditEvent, AuditSource


def _json_safe(value):
    if value is None:
        return None
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def actor_name(actor):
    if actor is None:
        return "system"
    if isinstance(actor, str):
        return actor
    return actor.get_username() or "anonymous"


def record(
    actor,
    action,
    *,
    source,
    obj=None,
    object_type="",
    object_id="",
    object_repr="",
    before=None,
    after=None,
    request_id="",
):
    """Append one event to the chain and return it."""
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(obj.pk)
        object_repr = object_repr or str(obj)[:200]
    if source not in AuditSource.values:
        raise ValueError(f"unknown audit source {source!r}")
    with transaction.atomic():
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(pk=1)
        event = AuditEvent(
            seq=head.seq + 1,
            actor=actor_name(actor),
            source=source,
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            object_repr=object_repr[:200],
            before=_json_safe(before),
            after=_json_safe(after),
            request_id=request_id or "",
            prev_hash=head.hash,
        )
        event.hash = event.compute_hash()
        event.save()
        AuditChainHead.objects.filter(pk=1).update(seq=event.seq, hash=event.hash)
    return event


def record_request(request, action, **kwargs):
    """`record()` for a console or API request: actor and request id come from it."""
    source = kwargs.pop("source", AuditSource.CONSOLE)
    return record(
        request.user,
        action,
        source=source,
        request_id=getattr(request, "request_id", ""),
        **kwargs,
    )


@dataclass
class ChainProblem:
    seq: int | None
    pk: int | None
    message: str

    def __str__(self):
        where = f"row seq={self.seq} (id={self.pk})" if self.seq is not None else "chain head"
        return f"{where}: {self.message}"


def verify_chain(batch_size=2000):
    """Walk the whole chain in order. Return (rows checked, first problem or None)."""
    prev_hash = GENESIS_HASH
    expected_seq = 1
    checked = 0
    for event in AuditEvent.objects.order_by("seq").iterator(chunk_size=batch_size):
        if event.seq != expected_seq:
            return checked, ChainProblem(
                event.seq,
                event.pk,
                f"expected seq {expected_seq}: rows {expected_seq}..{event.seq - 1} were removed",
            )
        if event.prev_hash != prev_hash:
            return checked, ChainProblem(
                event.seq, event.pk, "prev_hash does not match the previous row's hash"
            )
        if event.compute_hash() != event.hash:
            return checked, ChainProblem(
                event.seq, event.pk, "content does not match its hash: the row was altered"
            )
        prev_hash = event.hash
        expected_seq += 1
        checked += 1
    head = AuditChainHead.objects.filter(pk=1).first()
    head_seq = head.seq if head else 0
    head_hash = head.hash if head else GENESIS_HASH
    if head_seq != checked or head_hash != prev_hash:
        if head_seq > checked:
            return checked, ChainProblem(
                checked + 1,
                None,
                f"the chain head records {head_seq} rows but only {checked} exist: "
                f"rows {checked + 1}..{head_seq} were removed",
            )
        return checked, ChainProblem(None, None, "the chain head does not match the last row")
    return checked, None
