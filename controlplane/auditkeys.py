"""The audit log's signing keys, which live outside the database.

Each audit row carries an HMAC-SHA256 (`mac`) made with one of these keys and the key's
id (`kid`); someone who can write the database but does not hold a key cannot append,
rewrite or re-chain rows without `verify_audit` noticing (docs/SECURITY.md "Audit log").

Where the keys come from (controlplane/settings.py reads the variables):

- `CONTROLPLANE_AUDIT_KEY="kid:secret[,kid:secret...]"`: the first key signs, the
  others (old keys) only verify.
- `CONTROLPLANE_AUDIT_KEY_FILE=/path/keys.json`: a key file,
  `{"current": "<kid>", "keys": {"<kid>": "<secret>", ...}}`. `audit_rotate_key` adds
  a key to it. The embedded default (./run.sh, the tests) creates `VAR_DIR/audit_keys.json`
  once, as it does `VAR_DIR/secret_key`.

Processes re-read a key file when it changes (its inode, size or mtime), so a rotation
with `audit_rotate_key` reaches the processes of the same host without a restart.
"""

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

ENV_VAR = "CONTROLPLANE_AUDIT_KEY"
FILE_VAR = "CONTROLPLANE_AUDIT_KEY_FILE"
KID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,32}$")
MIN_SECRET_LENGTH = 32
ROW_DOMAIN = "controlplane-audit-row/v1"
ANCHOR_DOMAIN = "controlplane-audit-anchor/v1"


class AuditKeyError(ImproperlyConfigured):
    """The audit keys are missing, unreadable or malformed, or do not fit the chain."""


@dataclass(frozen=True)
class AuditKey:
    kid: str
    secret: bytes = field(repr=False)

    def sign(self, message: bytes) -> str:
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def verifies(self, message: bytes, mac: str) -> bool:
        return hmac.compare_digest(self.sign(message), mac)


@dataclass(frozen=True)
class Keyring:
    current: AuditKey
    keys: dict
    source: str  # where the keys came from, for messages (never the secrets)
    path: Path | None = None  # a key file, which audit_rotate_key can extend

    def get(self, kid):
        return self.keys.get(kid)

    def describe(self):
        return f"{', '.join(sorted(self.keys))} from {self.source}"


def row_message(kid, seq, row_hash, prev_mac):
    """What a row's MAC covers: its key id, seq, its hash (which covers its content and
    the previous row's hash) and the previous row's MAC."""
    return f"{ROW_DOMAIN}\n{kid}\n{seq}\n{row_hash}\n{prev_mac}".encode()


def anchor_message(fields):
    payload = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return f"{ANCHOR_DOMAIN}\n{payload}".encode()


def _key(kid, secret, where):
    if not KID_PATTERN.match(kid or ""):
        raise AuditKeyError(
            f"{where}: key id {kid!r} is not valid (1-32 of letters, digits, '.', '_', '-')."
        )
    if len(secret or "") < MIN_SECRET_LENGTH:
        raise AuditKeyError(
            f"{where}: the secret of key {kid!r} is shorter than {MIN_SECRET_LENGTH} characters."
        )
    return AuditKey(kid, secret.encode())


def parse_env(value):
    """`kid:secret[,kid:secret...]` -> Keyring (the first key signs)."""
    keys = []
    for item in value.split(","):
        kid, sep, secret = item.strip().partition(":")
        if not sep:
            raise AuditKeyError(
                f"{ENV_VAR} must be 'kid:secret[,kid:secret...]' (the first key signs, the "
                "others only verify); an item has no ':'."
            )
        keys.append(_key(kid.strip(), secret.strip(), ENV_VAR))
    by_kid = {key.kid: key for key in keys}
    if len(by_kid) != len(keys):
        raise AuditKeyError(f"{ENV_VAR} names a key id twice.")
    return Keyring(current=keys[0], keys=by_kid, source=ENV_VAR)


def read_file(path):
    path = Path(path)
    where = f"the audit key file {path}"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise AuditKeyError(
            f"{where} does not exist. Set {FILE_VAR} to the key file (or {ENV_VAR}); without "
            "the key that signed the audit log, it can neither be extended nor verified."
        ) from None
    except OSError as exc:
        raise AuditKeyError(f"{where} cannot be read: {exc.strerror}.") from None
    except ValueError:
        raise AuditKeyError(f"{where} is not JSON.") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), dict) or not data["keys"]:
        raise AuditKeyError(f'{where} must hold {{"current": "<kid>", "keys": {{"<kid>": "<secret>"}}}}.')
    keys = {}
    for kid, secret in data["keys"].items():
        keys[kid] = _key(kid, secret if isinstance(secret, str) else "", where)
    current = data.get("current")
    if current not in keys:
        raise AuditKeyError(f"{where}: 'current' names {current!r}, which is not one of its keys.")
    return Keyring(current=keys[current], keys=keys, source=str(path), path=path)


def new_key():
    """A fresh (kid, secret): the kid says when it was made."""
    kid = f"{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(3)}"
    return kid, secrets.token_urlsafe(32)


def _serialise(current, keys):
    return json.dumps({"current": current, "keys": keys}, indent=2, sort_keys=True) + "\n"


def _write_private(path, text):
    """Write `text` to a new file next to `path`, readable by its owner only; return it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return tmp


def create_file(path):
    """Create a key file with one key unless it exists. Safe when several processes
    start at once (./run.sh): the file appears complete, and only one of them wins."""
    path = Path(path)
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    kid, secret = new_key()
    tmp = _write_private(path, _serialise(kid, {kid: secret}))
    try:
        os.link(tmp, path)  # fails if another process created it first
    except FileExistsError:
        pass  # the other process's key is the one; ours was never used
    finally:
        tmp.unlink()


def add_to_file(path):
    """Add a new key to a key file and make it current (old keys stay, to verify the
    rows they signed). Returns the new kid."""
    path = Path(path)
    ring = read_file(path)
    data = json.loads(path.read_text())
    kid, secret = new_key()
    while kid in ring.keys:
        kid, secret = new_key()
    data["keys"][kid] = secret
    tmp = None
    try:
        tmp = _write_private(path, _serialise(kid, data["keys"]))
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise AuditKeyError(
            f"Cannot write the audit key file {path} ({exc.strerror}): rotate where it is writable "
            f"and copy it to every host, or use {ENV_VAR}."
        ) from None
    return kid


_cache_lock = threading.Lock()
_cache = {}


def keyring():
    """The keys this process signs and verifies with (settings.AUDIT_KEY or
    settings.AUDIT_KEY_FILE). Raises AuditKeyError, saying what to set, when there are none."""
    raw, path = settings.AUDIT_KEY, settings.AUDIT_KEY_FILE
    if raw:
        cache_key = ("env", raw)
    elif path:
        try:
            stat = os.stat(path)
        except OSError:
            return read_file(path)  # raises AuditKeyError, naming the file and the variable
        cache_key = ("file", str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    else:
        raise AuditKeyError(
            f"No audit key is configured: set {ENV_VAR} or {FILE_VAR} (docs/OPERATIONS.md)."
        )
    with _cache_lock:
        ring = _cache.get(cache_key)
        if ring is None:
            ring = parse_env(raw) if raw else read_file(path)
            _cache.clear()
            _cache[cache_key] = ring
        return ring
