"""The embedded broker: kombu's filesystem transport, made safe for several processes.

kombu's stock `filesystem://` transport crashed our probes worker on a busy machine with
`Unrecoverable error: JSONDecodeError: Expecting value: line 1 column 1 (char 0)`
(kombu issue #1551, https://github.com/celery/kombu/issues/1551). Its `_put` creates the
message file, then locks it, then writes, while `_get` moves and reads files without
taking that lock: a consumer can read a file that exists but is still empty, and one
undecodable message ends the consumer. It also moves claimed files into
`tempfile.gettempdir()`, which may be another filesystem (the move is then copy+delete,
and two consumers can both deliver the same message); creates an exchange table with
open("wb") before locking it (a reader sees an empty table, two creators lose a
binding); and lists and sorts the whole folder for every message (O(n^2) on a backlog).

This transport keeps its folders and its file names and changes how files move:

- publish: the message is written under a dot-prefixed temporary name in the queue
  folder, then renamed into place; a consumer never sees a partial file;
- claim: a consumer renames the file into `claimed_folder` (same filesystem) under a
  name prefixed with its owner id (pid and a random tag). The rename succeeds for one
  consumer; the others get FileNotFoundError and move on;
- a file that cannot be decoded into a kombu message is moved into `bad_folder` and
  logged; the consumer goes on with the next file;
- each channel keeps a sorted listing per queue and consumes it before listing again;
  FIFO follows the time stamp that starts each file name;
- every process holds an flock on `claimed_folder/.<owner>.owner` while it lives. Files
  claimed by an owner whose lock is free (the process died between claim and read) are
  put back into the queue, as are its unfinished temporary files removed, when a channel
  starts and then every `recover_interval` seconds. A lock, not a pid check: a restarted
  container reuses its pids;
- exchange tables are written under an flock on `<table>.lock`, to a temporary file
  renamed over the table; readers take no lock and always read a complete table.

The URL scheme is `localfs://` (registered below); transport options are the stock ones
plus `claimed_folder`, `bad_folder` (default: siblings of `data_folder_in`),
`recover_interval` (seconds, default 30) and `fsync` (default False). fsync makes a
published message survive a power cut but cut publishing from ~1,900 to ~750 messages/s
on our ext4 disk; without it a power cut can leave an empty message file, which a
consumer sets aside like any other undecodable one. Exchange tables (rarely written)
are always fsynced.
"""

import contextlib
import fcntl
import logging
import os
import secrets
import shutil
import threading
import time
import uuid
from collections import deque
from queue import Empty

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem, virtual
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads
from kombu.utils.objects import cached_property

logger = logging.getLogger(__name__)

SCHEME = "localfs"


class _Stamp:
    """Microseconds since the epoch, strictly increasing within this process, so one
    publisher's messages sort in the order it sent them."""

    def __init__(self):
        self._last = 0
        self._mutex = threading.Lock()

    def next(self):
        with self._mutex:
            self._last = max(time.time_ns() // 1000, self._last + 1)
            return self._last


class _Owner:
    """This process's identity in the claim folders, and the locks that show it alive."""

    def __init__(self):
        self.id = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._locks = {}
        self._mutex = threading.Lock()

    def hold(self, folder):
        """Hold `folder`/.<id>.owner locked for the life of this process. The file is
        locked before it gets its name, so nobody can find it unlocked."""
        with self._mutex:
            if folder not in self._locks:
                path = _owner_lock_path(folder, self.id)
                lock_file = open(f"{path}-new", "wb")  # noqa: SIM115 - held until exit
                fcntl.flock(lock_file, fcntl.LOCK_EX)
                os.rename(f"{path}-new", path)
                self._locks[folder] = lock_file
        return self.id

    def forget(self):
        """In a forked child: the parent's locks are the parent's (closing our copies of
        the descriptors leaves them held by the parent)."""
        for lock_file in self._locks.values():
            lock_file.close()
        self._locks = {}


_STAMP = _Stamp()
_OWNER = _Owner()


def _after_fork_in_child():
    global _OWNER
    _OWNER.forget()
    _OWNER = _Owner()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _owner_lock_path(folder, owner):
    return os.path.join(folder, f".{owner}.owner")


def _owner_is_gone(folder, owner):
    """True once the process `owner` has ended: its lock file is gone or unlocked."""
    try:
        lock_file = open(_owner_lock_path(folder, owner), "rb")  # noqa: SIM115
    except FileNotFoundError:
        return True
    with lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


def _sort_key(name):
    stamp = name.partition("_")[0]
    return (int(stamp) if stamp.isdigit() else 0, name)


class Channel(filesystem.Channel):
    """A filesystem channel safe for concurrent publishers and consumers."""

    def __init__(self, connection, **kwargs):
        super().__init__(connection, **kwargs)
        self._listings = {}  # queue name -> deque of file names not yet tried
        folders = [self.data_folder_in, self.data_folder_out, self.claimed_folder, self.bad_folder]
        if self.store_processed:
            folders.append(self.processed_folder)
        for folder in folders:
            os.makedirs(folder, exist_ok=True)
        self._recover()

    # --- options ---------------------------------------------------------------------

    def _sibling_of_queue_folder(self, name):
        return os.path.join(os.path.dirname(os.path.abspath(self.data_folder_in)), name)

    @cached_property
    def claimed_folder(self):
        return self.transport_options.get("claimed_folder") or self._sibling_of_queue_folder("claimed")

    @cached_property
    def bad_folder(self):
        return self.transport_options.get("bad_folder") or self._sibling_of_queue_folder("bad")

    @cached_property
    def fsync(self):
        return bool(self.transport_options.get("fsync", False))

    @cached_property
    def recover_interval(self):
        return float(self.transport_options.get("recover_interval", 30.0))

    # --- messages --------------------------------------------------------------------

    def _put(self, queue, payload, **kwargs):
        """Write the message under a temporary name, then rename it into the queue."""
        owner = _OWNER.hold(self.claimed_folder)
        name = f"{_STAMP.next():017d}_{uuid.uuid4()}.{queue}.msg"
        path = os.path.join(self.data_folder_out, name)
        temp = os.path.join(self.data_folder_out, f".{owner}_{uuid.uuid4().hex}.tmp")
        try:
            with open(temp, "xb") as f:
                f.write(str_to_bytes(dumps(payload)))
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
            os.rename(temp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise ChannelError(f"Cannot add {path!r} to the queue folder") from exc

    def _get(self, queue):
        """Claim, read and remove the oldest message of `queue`; raise Empty if none."""
        listing = self._listings.get(queue)
        listed = False
        while True:
            if not listing:
                if listed:
                    raise Empty()
                listing = self._listings[queue] = self._list(queue)
                listed = True
                continue
            name = listing.popleft()
            claimed = self._claim(name)
            if claimed is not None:
                payload = self._read_claimed(claimed, name)
                if payload is not None:
                    return payload

    def _list(self, queue):
        if time.monotonic() - self._recovered_at > self.recover_interval:
            self._recover()
        wanted = f"{queue}.msg"
        names = [
            name for name in os.listdir(self.data_folder_in)
            if not name.startswith(".") and name.partition(".")[2] == wanted
        ]
        names.sort(key=_sort_key)
        return deque(names)

    def _claim(self, name):
        """Rename the file into the claim folder: None if another consumer got it first."""
        owner = _OWNER.hold(self.claimed_folder)
        claimed = os.path.join(self.claimed_folder, f"{owner}_{name}")
        try:
            os.rename(os.path.join(self.data_folder_in, name), claimed)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ChannelError(
                f"Cannot claim {name!r}: the claim folder {self.claimed_folder!r} must be on "
                f"the filesystem of the queue folder {self.data_folder_in!r}"
            ) from exc
        return claimed

    def _read_claimed(self, claimed, name):
        """The message in `claimed`, or None when it is not one (the file is set aside)."""
        try:
            with open(claimed, "rb") as f:
                payload = loads(bytes_to_str(f.read()))
            properties = payload["properties"]
            if not isinstance(properties.get("delivery_info"), dict):
                raise ValueError("no delivery_info")
            self.Message(payload, channel=self)  # what the consumer will do with it
        except Exception as exc:  # anything that stops it becoming a message
            self._set_aside(claimed, name, exc)
            return None
        try:
            if self.store_processed:
                shutil.move(claimed, os.path.join(self.processed_folder, name))
            else:
                os.remove(claimed)
        except OSError:
            # Delivered anyway; the file stays claimed by this process (and is put back,
            # so delivered again, only after this process has ended).
            logger.exception("Cannot remove the delivered message %s", claimed)
        return payload

    def _set_aside(self, claimed, name, exc):
        original = os.path.join(self.data_folder_in, name)
        bad = os.path.join(self.bad_folder, name)
        try:
            os.rename(claimed, bad)
        except OSError:
            logger.exception("Message file %s cannot be decoded (%r) nor moved to %s; it stays "
                             "at %s", original, exc, bad, claimed)
            return
        logger.error("Message file %s cannot be decoded (%r); moved to %s", original, exc, bad)

    def _purge(self, queue):
        self._listings.pop(queue, None)
        return super()._purge(queue)

    def _recover(self):
        """Put back the messages claimed by processes that have ended, and remove their
        unfinished temporary files."""
        self._recovered_at = time.monotonic()
        own = _OWNER.id
        gone = {}

        def is_gone(owner):
            if owner not in gone:
                gone[owner] = owner != own and _owner_is_gone(self.claimed_folder, owner)
            return gone[owner]

        for entry in os.listdir(self.claimed_folder):
            owner, sep, name = entry.partition("_")
            if entry.startswith(".") or not sep or not is_gone(owner):
                continue
            with contextlib.suppress(FileNotFoundError):  # another channel put it back
                os.rename(os.path.join(self.claimed_folder, entry),
                          os.path.join(self.data_folder_in, name))
                logger.warning("Put back %s, claimed by %s which has ended", name, owner)
        for entry in os.listdir(self.data_folder_out):
            owner, sep, _ = entry[1:].partition("_")
            if entry.startswith(".") and entry.endswith(".tmp") and sep and is_gone(owner):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.data_folder_out, entry))
        for entry in os.listdir(self.claimed_folder):
            owner = entry[1:].removesuffix(".owner")
            if entry.startswith(".") and entry.endswith(".owner") and is_gone(owner):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.claimed_folder, entry))

    # --- exchange tables -------------------------------------------------------------

    def get_table(self, exchange):
        path = self._exchange_file(exchange)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ChannelError(f"Cannot read the exchange table {path}") from exc
        try:
            return [filesystem.exchange_queue_t(*row) for row in loads(bytes_to_str(data))]
        except (ValueError, TypeError) as exc:
            raise ChannelError(
                f"The exchange table {path} is damaged; delete it (workers declare their "
                f"bindings again when they start)"
            ) from exc

    def _update_table(self, exchange, change):
        """Apply `change` (table -> new table) under the table's lock; write the result to
        a temporary file and rename it over the table."""
        path = self._exchange_file(exchange)
        self.control_folder.mkdir(parents=True, exist_ok=True)
        try:
            with open(f"{path}.lock", "ab") as lock_file:
                fcntl.flock(lock_file, fcntl.LOCK_EX)
                table = self.get_table(exchange)
                new_table = change(list(table))
                if new_table == table:
                    return
                temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
                try:
                    with open(temp, "xb") as f:
                        f.write(str_to_bytes(dumps(new_table)))
                        f.flush()
                        os.fsync(f.fileno())
                    os.replace(temp, path)
                finally:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(temp)
        except OSError as exc:
            raise ChannelError(f"Cannot update the exchange table {path}") from exc

    def _queue_bind(self, exchange, routing_key, pattern, queue):
        row = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")

        def add(table):
            return table if row in table else [row, *table]

        self._update_table(exchange, add)

    def _delete(self, queue, exchange, routing_key, pattern, *args, **kwargs):
        row = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        self._update_table(exchange, lambda table: [r for r in table if r != row])


class Transport(filesystem.Transport):
    """The `localfs://` transport (see the module docstring)."""

    Channel = Channel
    driver_name = SCHEME
    # The declared exchanges and bindings this process remembers, one state per set of
    # folders (kombu's filesystem transport keeps one per process: a second set of
    # folders in the same process then had no binding written, and every message
    # published to it was dropped).
    _states = {}
    _states_lock = threading.Lock()

    def __init__(self, client, **kwargs):
        super().__init__(client, **kwargs)
        options = client.transport_options
        key = os.path.abspath(options.get("control_folder") or options.get("data_folder_out") or ".")
        with self._states_lock:
            self.state = self._states.setdefault(key, virtual.BrokerState())


TRANSPORT_ALIASES[SCHEME] = f"{__name__}:Transport"
