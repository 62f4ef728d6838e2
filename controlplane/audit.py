"""Writing and verifying the append-only, hash-chained and keyed audit log.

Every service function that changes state calls `record()` explicitly, inside the
same transaction as the change, so an action and its audit row commit together.

Each row stores `hash` (SHA-256 of its content and the previous row's hash) and `mac`
(HMAC-SHA256, with the key named by `kid`, of kid, seq, hash and the previous row's
MAC; controlplane/auditkeys.py). The keys live outside the database, so whoever can
write the database but holds no key cannot append, rewrite or re-chain rows without
`verify_chain()` noticing. Removing rows from the end *and* resetting the head leaves
a shorter chain that is consistent in itself; anchors (controlplane/anchors.py) are
what catch that.

Rows written before the keyed chain have no MAC. They are accepted only as the
chain's first rows and only when a signed row follows them (the `audit.sealed` event
that migration 0005 or `manage.py audit_seal` writes): that row's MAC covers their
hashes through its prev_hash. `verify_chain()` reports them by number.
"""

from collections import Counter
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Q

from controlplane import auditkeys
from controlplane.auditkeys import AuditKeyError
from controlplane.jsonvalues import json_safe
from controlplane.models import GENESIS_HASH, AuditChainHead, AuditEvent, AuditSource, audit_hash

# Actions renamed after rows were written under the old name, old -> new. The rows keep
# the name they were written with (the log is append-only); `action_starts_with` finds
# them under the new one. Actions are named `<thing>.<what happened>`: `drill.*` for a
# drill's (its states, its AWS calls), `halt.*` for the halt switch's.
RENAMED_ACTIONS = {"drills.halt": "halt.halted", "drills.clear_halt": "halt.cleared"}

KEY_ROTATED = "audit.key_rotated"
SEALED = "audit.sealed"
KEY_OBJECT_TYPE = "controlplane.auditkey"
CHAIN_OBJECT_TYPE = "controlplane.auditchain"


class UnsealedChainError(AuditKeyError):
    """The chain ends in rows without a MAC: nothing may be signed on top of them
    until `audit_seal` has vouched for them (or found them broken)."""


def actor_name(actor):
    if actor is None:
        return "system"
    if isinstance(actor, str):
        return actor
    return actor.get_username() or "anonymous"


def _locked_head(head_model):
    head, _ = head_model.objects.select_for_update().get_or_create(pk=1)
    return head


def _append(event_model, head_model, head, key, **fields):
    """Chain and sign one row after `head` (locked by the caller, in its transaction);
    move the head. Works on the historical models of a migration too."""
    event = event_model(seq=head.seq + 1, prev_hash=head.hash, kid=key.kid, **fields)
    event.hash = audit_hash(event)
    event.mac = key.sign(auditkeys.row_message(key.kid, event.seq, event.hash, head.mac))
    event.save()
    head_model.objects.filter(pk=1).update(seq=event.seq, hash=event.hash, mac=event.mac, kid=event.kid)
    head.seq, head.hash, head.mac, head.kid = event.seq, event.hash, event.mac, event.kid
    return event


def _retired_kids(event_model):
    """{kid: seq of the rotation that retired it}, from the rotation events (few rows,
    found through the object_type index)."""
    retired = {}
    rotations = event_model.objects.filter(object_type=KEY_OBJECT_TYPE, action=KEY_ROTATED)
    for seq, after in rotations.order_by("seq").values_list("seq", "after"):
        old = (after or {}).get("old_kid")
        if old:
            retired.setdefault(old, seq)
    return retired


def _rotation_fields(old_kid, new_kid, actor, source, request_id=""):
    return {
        "actor": actor_name(actor),
        "source": source,
        "action": KEY_ROTATED,
        "object_type": KEY_OBJECT_TYPE,
        "object_id": new_kid,
        "object_repr": f"audit key {old_kid or '(none)'} -> {new_kid}",
        "before": {"kid": old_kid},
        "after": {"old_kid": old_kid, "new_kid": new_kid},
        "request_id": request_id,
    }


def _signing_key(head):
    """The key this process signs with next, after checking that it fits the chain:
    raises when the chain ends in unsigned rows, or when this process's keys are older
    than the chain's (a process left running with an old CONTROLPLANE_AUDIT_KEY)."""
    ring = auditkeys.keyring()
    if head.seq and not head.mac:
        raise UnsealedChainError(
            f"The audit chain ends in rows without a MAC (its head is at seq {head.seq}, unsigned): "
            "rows written before the keyed chain, or rows someone without the audit key wrote. "
            "Nothing is signed on top of them until `python manage.py audit_seal` has checked their "
            "hash chain and sealed them (run `python manage.py verify_audit` first)."
        )
    key = ring.current
    if head.kid and head.kid != key.kid:
        if ring.get(head.kid) is None:
            raise AuditKeyError(
                f"The newest audit row (seq {head.seq}) is signed with key {head.kid!r}, which this "
                f"process does not know (it has {ring.describe()}): it runs with outdated audit keys. "
                "Give it the current keys and restart it."
            )
        retired_at = _retired_kids(AuditEvent).get(key.kid)
        if retired_at is not None:
            raise AuditKeyError(
                f"This process would sign with audit key {key.kid!r}, which was retired by the rotation "
                f"at seq {retired_at} (the chain is now signed with {head.kid!r}): it runs with "
                "outdated audit keys. Give it the current keys and restart it."
            )
    return key


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
    """Append one event to the chain and return it.

    The first event signed with a new current key that `audit_rotate_key` did not record
    (a new first key in CONTROLPLANE_AUDIT_KEY, or a key file given a new current key by
    hand) is preceded by an `audit.key_rotated` event naming the old and the new key id,
    so that every change of key is on record.
    """
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(obj.pk)
        object_repr = object_repr or str(obj)[:200]
    if source not in AuditSource.values:
        raise ValueError(f"unknown audit source {source!r}")
    with transaction.atomic():
        head = _locked_head(AuditChainHead)
        key = _signing_key(head)
        if head.kid and head.kid != key.kid:
            _append(AuditEvent, AuditChainHead, head, key,
                    **_rotation_fields(head.kid, key.kid, "system", AuditSource.SYSTEM))
        event = _append(
            AuditEvent,
            AuditChainHead,
            head,
            key,
            actor=actor_name(actor),
            source=source,
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            object_repr=object_repr[:200],
            before=json_safe(before),
            after=json_safe(after),
            request_id=request_id or "",
        )
    return event


def action_starts_with(prefix):
    """A Q for the events whose action starts with `prefix`, by its current name: also
    the rows written under an old name (RENAMED_ACTIONS) whose new name starts with it."""
    renamed = [old for old, new in RENAMED_ACTIONS.items() if new.startswith(prefix)]
    return Q(action__startswith=prefix) | Q(action__in=renamed)


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


def rotate_key(actor, *, source=AuditSource.COMMAND):
    """Make a new key current and record `audit.key_rotated` (old and new kid), signed
    with the new key, in one transaction under the head lock.

    With a key file, a new key is added to it (old keys stay, to verify what they
    signed). With CONTROLPLANE_AUDIT_KEY the operator has already put the new key
    first; this records the change, or raises if the chain is already signed with it.
    """
    with transaction.atomic():
        head = _locked_head(AuditChainHead)
        _signing_key(head)  # the chain and this process's keys fit together before anything changes
        ring = auditkeys.keyring()
        old_kid = head.kid or ""
        if ring.path is not None:
            # Before the row, which needs the new key. Should the transaction fail after
            # this, the next record() signs with the new key and records the rotation itself.
            auditkeys.add_to_file(ring.path)
        elif ring.current.kid == old_kid:
            raise AuditKeyError(
                f"The audit keys come from {auditkeys.ENV_VAR}, and its first key ({old_kid!r}) already "
                "signs the chain: there is nothing to rotate to. Put a new 'kid:secret' first "
                "(`audit_rotate_key --generate` prints one), keep the old key after it, restart every "
                "process, then run this again (or let the first event signed with the new key record "
                "the rotation)."
            )
        key = _signing_key(head)
        return _append(AuditEvent, AuditChainHead, head, key,
                       **_rotation_fields(old_kid, key.kid, actor, source))


def _hash_problem(event, expected_seq, prev_hash):
    """What is wrong with `event` as the row after one whose hash is `prev_hash`."""
    if event.seq != expected_seq:
        return f"expected seq {expected_seq}: rows {expected_seq}..{event.seq - 1} were removed"
    if event.prev_hash != prev_hash:
        return "prev_hash does not match the previous row's hash"
    if audit_hash(event) != event.hash:
        return "content does not match its hash: the row was altered"
    return None


def seal_unsigned(event_model=AuditEvent, head_model=AuditChainHead, *, actor="system",
                  source=AuditSource.COMMAND):
    """Sign an `audit.sealed` event over the rows written before the keyed chain, after
    checking their hash chain. Returns the event, or None when there is nothing to seal.
    Raises ChainBroken rather than vouch for a broken chain. Used by `audit_seal` and by
    migration 0005 (with its historical models)."""
    with transaction.atomic():
        head = _locked_head(head_model)
        if head.mac or head.seq == 0:
            return None
        if event_model.objects.exclude(mac="").exists():
            raise ChainBroken(ChainProblem(
                head.seq, None,
                "the chain head is unsigned but signed rows exist: rows were appended without the "
                "audit key after signed ones. Not sealing; run `python manage.py verify_audit`.",
            ))
        prev_hash, expected = GENESIS_HASH, 1
        for event in event_model.objects.order_by("seq").iterator(chunk_size=2000):
            problem = _hash_problem(event, expected, prev_hash)
            if problem:
                raise ChainBroken(ChainProblem(event.seq, event.pk, problem + "; not sealing it"))
            prev_hash, expected = event.hash, expected + 1
        if expected - 1 != head.seq or prev_hash != head.hash:
            raise ChainBroken(ChainProblem(
                None, None, f"the chain head (seq {head.seq}) does not match the last row "
                f"(seq {expected - 1}); not sealing it",
            ))
        key = auditkeys.keyring().current
        return _append(
            event_model, head_model, head, key,
            actor=actor, source=source, action=SEALED, object_type=CHAIN_OBJECT_TYPE,
            object_id="", object_repr=f"rows 1..{head.seq} written before the keyed chain",
            before=None, after={"unsigned_rows": [1, head.seq], "tip_hash": head.hash, "kid": key.kid},
            request_id="",
        )


@dataclass
class ChainProblem:
    seq: int | None
    pk: int | None
    message: str

    def __str__(self):
        where = f"row seq={self.seq} (id={self.pk})" if self.seq is not None else "chain head"
        if self.seq is not None and self.pk is None:
            where = f"seq={self.seq}"
        return f"{where}: {self.message}"


class ChainBroken(Exception):
    def __init__(self, problem):
        super().__init__(str(problem))
        self.problem = problem


@dataclass
class ChainReport:
    checked: int = 0
    unsigned: int = 0  # rows 1..unsigned carry no MAC (written before the keyed chain)
    kids: Counter = field(default_factory=Counter)  # rows signed per key id
    anchors: int = 0  # anchors that held
    problem: ChainProblem | None = None


def _mac_problem(event, ring, prev_mac, last_kid, retired):
    """What is wrong with a signed row's key or MAC, or None."""
    key = ring.get(event.kid)
    if key is None:
        return (
            f"signed with audit key {event.kid!r}, which is not among the keys here "
            f"({ring.describe()}). Add that key (old keys stay, for verifying)."
        )
    if not key.verifies(auditkeys.row_message(event.kid, event.seq, event.hash, prev_mac), event.mac):
        return (
            f"its MAC does not verify with key {event.kid!r}: the row was written or rewritten by "
            f"someone without the audit key (or {ring.source} holds a different secret under that id)"
        )
    if event.kid in retired:
        return f"signed with key {event.kid!r}, which the rotation at seq {retired[event.kid]} retired"
    if last_kid is not None and event.kid != last_kid:
        after = event.after if isinstance(event.after, dict) else {}
        if not (event.action == KEY_ROTATED and after.get("old_kid") == last_kid
                and after.get("new_kid") == event.kid):
            return (
                f"the signing key changes from {last_kid!r} to {event.kid!r} here without an "
                f"{KEY_ROTATED} event naming the change"
            )
    return None


def verify_chain(anchors=(), batch_size=2000):
    """Walk the whole chain in order; check each row's seq, hash chain, key and MAC, the
    head, and that the chain still holds every anchor (controlplane.anchors.Anchor).
    Returns a ChainReport naming the first problem, if any. Raises AuditKeyError when
    this process has no audit keys."""
    ring = auditkeys.keyring()
    report = ChainReport()
    by_seq = {}
    for anchor in anchors:
        by_seq.setdefault(anchor.seq, []).append(anchor)
    prev_hash, prev_mac, last_kid, retired = GENESIS_HASH, "", None, {}

    def fail(seq, pk, message):
        report.problem = ChainProblem(seq, pk, message)
        return report

    for event in AuditEvent.objects.order_by("seq").iterator(chunk_size=batch_size):
        problem = _hash_problem(event, report.checked + 1, prev_hash)
        if problem:
            return fail(event.seq, event.pk, problem)
        if not event.mac:
            if last_kid is not None:
                return fail(event.seq, event.pk, "it has no MAC but follows signed rows: it was appended "
                            "or stripped by someone without the audit key")
            report.unsigned += 1
        else:
            problem = _mac_problem(event, ring, prev_mac, last_kid, retired)
            if problem:
                return fail(event.seq, event.pk, problem)
            if event.action == KEY_ROTATED and last_kid not in (None, event.kid):
                retired.setdefault(last_kid, event.seq)
            last_kid = event.kid
            report.kids[event.kid] += 1
        for anchor in by_seq.pop(event.seq, ()):
            if (event.hash, event.mac) != (anchor.hash, anchor.mac):
                return fail(event.seq, event.pk, f"differs from {anchor}: the chain was rewritten "
                            "or replaced at or before this row")
            report.anchors += 1
        prev_hash, prev_mac = event.hash, event.mac
        report.checked += 1
    if report.unsigned and last_kid is None:
        return fail(1, None, f"rows 1..{report.unsigned} have no MAC and no signed row follows them: "
                    "nothing protects them. Run `python manage.py audit_seal` once.")
    head = AuditChainHead.objects.filter(pk=1).first()
    head_state = (head.seq, head.hash, head.mac) if head else (0, GENESIS_HASH, "")
    if head_state[0] > report.checked:
        return fail(report.checked + 1, None, f"the chain head records {head_state[0]} rows but only "
                    f"{report.checked} exist: rows {report.checked + 1}..{head_state[0]} were removed")
    if head_state != (report.checked, prev_hash, prev_mac):
        return fail(None, None, "the chain head does not match the last row")
    for seq in sorted(by_seq):
        if seq == 0:
            report.anchors += len(by_seq[seq])
            continue
        anchor = by_seq[seq][0]
        return fail(seq, None, f"the chain ends at seq {report.checked} but {anchor} records seq {seq}: "
                    f"rows {report.checked + 1}..{seq} were removed (or the chain was replaced)")
    return report
