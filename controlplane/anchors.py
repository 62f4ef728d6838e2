"""Anchors: the audit chain's head written down outside the database.

The keyed chain (controlplane/audit.py) stops anyone without the key from rewriting
rows, but not from removing the newest rows and moving the head back with them: what
is left is a shorter chain that is consistent in itself. An anchor records the head
(seq, hash, MAC, kid, the time of that row) at a moment, with a MAC of its own;
`verify_audit --anchor FILE` fails when the chain no longer holds it: a different row
at that seq (rewritten or replaced), or no row there (truncated).

An anchor file is JSON Lines, one anchor per line, appended to (never rewritten), so
that it keeps every anchor taken; `verify_audit --anchor` checks them all. Beat appends
to AUDIT_ANCHOR_DIR/audit-anchors.jsonl every AUDIT_ANCHOR_INTERVAL seconds and, when
AUDIT_ANCHOR_S3_BUCKET is set, puts each anchor to S3 as an object of its own under
Object Lock, where nobody can change or remove it before its retention date.
"""

import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from controlplane import auditkeys, aws
from controlplane.models import GENESIS_HASH, AuditChainHead, AuditEvent

TYPE = "controlplane.audit.anchor"
VERSION = 1
FILE_NAME = "audit-anchors.jsonl"
_SIGNED_FIELDS = (
    "type", "version", "seq", "hash", "mac", "kid", "head_created_at", "anchored_at", "anchor_kid",
)


class AnchorError(Exception):
    """An anchor cannot be taken, read or trusted."""


@dataclass(frozen=True)
class Anchor:
    seq: int
    hash: str
    mac: str
    kid: str
    head_created_at: str | None
    anchored_at: str
    where: str  # "FILE line N", for messages

    def __str__(self):
        return f"the anchor taken at {self.anchored_at} ({self.where})"


def take():
    """The current head as a signed anchor (a dict, as written)."""
    head = AuditChainHead.objects.filter(pk=1).first()
    fields = {"type": TYPE, "version": VERSION, "seq": 0, "hash": GENESIS_HASH, "mac": "", "kid": "",
              "head_created_at": None}
    if head is not None and head.seq:
        event = AuditEvent.objects.filter(seq=head.seq).first()
        if event is None or (event.hash, event.mac, event.kid) != (head.hash, head.mac, head.kid):
            raise AnchorError(
                f"The audit chain head (seq {head.seq}) does not match the row with that seq: not "
                "anchoring it. Run `python manage.py verify_audit`."
            )
        fields.update(seq=event.seq, hash=event.hash, mac=event.mac, kid=event.kid,
                      head_created_at=event.created_at.isoformat())
    key = auditkeys.keyring().current
    fields.update(anchored_at=timezone.now().isoformat(), anchor_kid=key.kid)
    fields["anchor_mac"] = key.sign(auditkeys.anchor_message(fields))
    return fields


def line(anchor):
    return json.dumps(anchor, sort_keys=True) + "\n"


def append(path, anchor):
    """Append `anchor` to the JSON Lines file `path` (created with its folder if missing),
    flushed to disk before returning."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line(anchor))
        handle.flush()
        os.fsync(handle.fileno())
    return path


def default_path():
    return Path(settings.AUDIT_ANCHOR_DIR) / FILE_NAME


def s3_key(anchor):
    anchored = datetime.fromisoformat(anchor["anchored_at"])
    return f"{settings.AUDIT_ANCHOR_S3_PREFIX}{anchored:%Y/%m/%d/%H%M%S.%f}Z-seq{anchor['seq']}.json"


def put_s3(anchor):
    """Put `anchor` to the anchor bucket as its own object under Object Lock
    (AUDIT_ANCHOR_S3_LOCK_MODE until anchored_at + AUDIT_ANCHOR_S3_RETENTION_DAYS).
    Returns the object key. AWS errors propagate: a failed anchor is not a quiet one."""
    anchored = datetime.fromisoformat(anchor["anchored_at"])
    key = s3_key(anchor)
    client = aws.client("s3", settings.AUDIT_ANCHOR_S3_REGION)
    client.put_object(
        Bucket=settings.AUDIT_ANCHOR_S3_BUCKET,
        Key=key,
        Body=line(anchor).encode(),
        ContentType="application/json",
        # Object Lock requires an integrity checksum on PutObject.
        ChecksumAlgorithm="SHA256",
        ObjectLockMode=settings.AUDIT_ANCHOR_S3_LOCK_MODE,
        ObjectLockRetainUntilDate=anchored + timedelta(days=settings.AUDIT_ANCHOR_S3_RETENTION_DAYS),
    )
    return key


def _parse(data, where, ring):
    if not isinstance(data, dict) or data.get("type") != TYPE:
        raise AnchorError(f"{where} is not an audit anchor (no \"type\": \"{TYPE}\").")
    missing = [name for name in (*_SIGNED_FIELDS, "anchor_mac") if name not in data]
    if missing:
        raise AnchorError(f"{where}: the anchor lacks {', '.join(missing)}.")
    if data["version"] != VERSION:
        raise AnchorError(f"{where}: anchor version {data['version']!r} is not {VERSION}.")
    key = ring.get(data["anchor_kid"])
    if key is None:
        raise AnchorError(
            f"{where}: the anchor is signed with audit key {data['anchor_kid']!r}, which is not among "
            f"the keys here ({ring.describe()})."
        )
    fields = {name: data[name] for name in _SIGNED_FIELDS}
    if not isinstance(data["anchor_mac"], str) or not key.verifies(auditkeys.anchor_message(fields),
                                                                   data["anchor_mac"]):
        raise AnchorError(
            f"{where}: the anchor's MAC does not verify with key {data['anchor_kid']!r}: the anchor "
            "was edited, or it was written with a different secret under that id."
        )
    if not isinstance(data["seq"], int) or data["seq"] < 0:
        raise AnchorError(f"{where}: seq {data['seq']!r} is not a sequence number.")
    return Anchor(seq=data["seq"], hash=data["hash"], mac=data["mac"], kid=data["kid"],
                  head_created_at=data["head_created_at"], anchored_at=data["anchored_at"], where=where)


def read(path):
    """Every anchor in the JSON Lines file `path`, each checked against its MAC."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AnchorError(f"The anchor file {path} does not exist.") from None
    except OSError as exc:
        raise AnchorError(f"The anchor file {path} cannot be read: {exc.strerror}.") from None
    ring = auditkeys.keyring()
    anchors = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        where = f"{path} line {number}"
        try:
            data = json.loads(raw)
        except ValueError:
            raise AnchorError(f"{where} is not JSON.") from None
        anchors.append(_parse(data, where, ring))
    if not anchors:
        raise AnchorError(f"The anchor file {path} holds no anchors.")
    return anchors
