"""What a client remembers between runs: the domain it is pinned to and the highest state head it saw per domain.

Kept next to the credentials, in `<credentials dir>/state.json` (docs/api.md §5, "Pinning and freshness"):

    {"format": "enclave-kms client state v1",
     "domain_id": "<32 hex digits>" | null,
     "heads": {"<domain id, 32 hex>": {"seq": 42, "hash": "<64 hex digits>"}}}

Writes are atomic (a temporary file, fsync, rename, fsync of the directory) and merge under an exclusive
lock with what other processes using the same credentials wrote meanwhile: per domain the higher head wins.
A file that does not parse as exactly this format is an error (ClientStateError), never reset.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kms.client.errors import ClientStateError
from kms.proto.enclave.v1 import boundary_pb2 as pb

STATE_FILE = "state.json"
STATE_FORMAT = "enclave-kms client state v1"
DOMAIN_ID_LEN = 16
_LOCK_FILE = ".state.lock"
_MAX_SIZE = 1024 * 1024
_SEQ_MAX = 2**64 - 1


@dataclass(frozen=True)
class StateHead:
    """The head of a domain's state log: the sequence number of its last change and the hash of that entry."""

    seq: int
    hash: bytes

    @classmethod
    def from_pb(cls, head: pb.StateHead) -> StateHead:
        return cls(int(head.seq), bytes(head.hash))

    def to_pb(self) -> pb.StateHead:
        return pb.StateHead(seq=self.seq, hash=self.hash)

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash.hex()}"


def _domain_hex(value: Any, where: str) -> bytes:
    if not isinstance(value, str) or len(value) != 2 * DOMAIN_ID_LEN:
        raise ValueError(f"{where} is not {2 * DOMAIN_ID_LEN} hex digits")
    return bytes.fromhex(value)


def _head(value: Any, where: str) -> StateHead:
    if not isinstance(value, dict) or set(value) != {"seq", "hash"}:
        raise ValueError(f"{where} is not {{seq, hash}}")
    seq, digest = value["seq"], value["hash"]
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= _SEQ_MAX:
        raise ValueError(f"{where}.seq is not an unsigned 64-bit integer")
    if not isinstance(digest, str) or len(digest) != 64:
        raise ValueError(f"{where}.hash is not 64 hex digits")
    return StateHead(seq, bytes.fromhex(digest))


def parse_state(text: str) -> tuple[bytes | None, dict[bytes, StateHead]]:
    """(pinned domain, heads) from the file's text; ValueError names what is wrong."""
    doc = json.loads(text)
    if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT:
        raise ValueError(f"not an {STATE_FORMAT!r} document")
    if set(doc) != {"format", "domain_id", "heads"}:
        raise ValueError(f"unexpected fields {sorted(set(doc) - {'format', 'domain_id', 'heads'})}")
    pin = None if doc["domain_id"] is None else _domain_hex(doc["domain_id"], "domain_id")
    if not isinstance(doc["heads"], dict):
        raise ValueError("heads is not an object")
    heads = {_domain_hex(k, f"heads key {k!r}"): _head(v, f"heads[{k}]") for k, v in doc["heads"].items()}
    return pin, heads


def render_state(pin: bytes | None, heads: dict[bytes, StateHead]) -> str:
    doc = {"format": STATE_FORMAT, "domain_id": None if pin is None else pin.hex(),
           "heads": {d.hex(): {"seq": h.seq, "hash": h.hash.hex()} for d, h in sorted(heads.items())}}
    return json.dumps(doc, indent=2) + "\n"


class ClientState:
    """The pinned domain and the highest head seen per domain; in memory, or kept in a file (`path`).

    Thread-safe. Changes stay in memory until save(); KmsClient saves after every connection's checks, after
    init/recover, and on close."""

    def __init__(self, path: Path | None = None, *, domain_id: bytes | None = None,
                 heads: dict[bytes, StateHead] | None = None) -> None:
        if domain_id is not None and len(domain_id) != DOMAIN_ID_LEN:
            raise ValueError(f"a domain id is {DOMAIN_ID_LEN} bytes")
        self.path = path
        self._pin = domain_id
        self._heads: dict[bytes, StateHead] = dict(heads or {})
        self._pin_changed = False
        self._forgotten: set[bytes] = set()
        self._dirty = False  # something to write: a higher head, a pin, a forgotten head
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path | str) -> ClientState:
        """The state kept in `path` (a missing file is an empty state that save() creates)."""
        path = Path(path)
        text = _read(path)
        if text is None:
            return cls(path)
        pin, heads = _parse(text, path)
        return cls(path, domain_id=pin, heads=heads)

    @classmethod
    def for_credentials(cls, directory: Path | str | None) -> ClientState:
        """`<directory>/state.json`, or an in-memory state when the credentials have no directory."""
        return cls() if directory is None else cls.load(Path(directory) / STATE_FILE)

    @property
    def domain_id(self) -> bytes | None:
        """The pinned domain (None: not pinned)."""
        with self._lock:
            return self._pin

    def head(self, domain_id: bytes) -> StateHead | None:
        """The highest head seen for a domain."""
        with self._lock:
            return self._heads.get(domain_id)

    def heads(self) -> dict[bytes, StateHead]:
        with self._lock:
            return dict(self._heads)

    def observe(self, domain_id: bytes, head: StateHead) -> None:
        """Remember `head` if it is above the highest one seen for the domain."""
        with self._lock:
            known = self._heads.get(domain_id)
            if known is None or head.seq > known.seq:
                self._heads[domain_id] = head
                self._dirty = True

    def pin(self, domain_id: bytes) -> None:
        """Pin a domain (replacing any pin: callers decide whether they may)."""
        if len(domain_id) != DOMAIN_ID_LEN:
            raise ValueError(f"a domain id is {DOMAIN_ID_LEN} bytes")
        with self._lock:
            self._pin, self._pin_changed, self._dirty = domain_id, True, True

    def forget_head(self, domain_id: bytes) -> StateHead | None:
        """Drop the head of a domain (on save, also the one in the file): after a restore the admin accepts."""
        with self._lock:
            self._forgotten.add(domain_id)
            self._dirty = True
            return self._heads.pop(domain_id, None)

    def save(self) -> None:
        """Merge into the file under its lock (higher heads win; our pin only if we changed it) and write it
        atomically. No-op for an in-memory state, or when nothing changed since the last save (no fsync).
        ClientStateError when it cannot be read back or written."""
        if self.path is None:
            return
        with self._lock:
            if self._dirty:
                self._merge_and_write(self.path)

    def _merge_and_write(self, path: Path) -> None:
        with _locked(path):
            text = _read(path)
            pin, heads = _parse(text, path) if text is not None else (None, {})
            for domain in self._forgotten:
                heads.pop(domain, None)
            for domain, head in self._heads.items():
                if domain not in heads or head.seq > heads[domain].seq:
                    heads[domain] = head
            if self._pin_changed:
                pin = self._pin
            try:
                _write_atomic(path, render_state(pin, heads).encode())
            except OSError as exc:
                raise ClientStateError(f"cannot write the client state {path}: {exc.strerror or exc}") from exc
            self._pin, self._heads, self._forgotten, self._pin_changed, self._dirty = pin, heads, set(), False, False


def _read(path: Path) -> str | None:
    try:
        with path.open("rb") as f:
            data = f.read(_MAX_SIZE + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ClientStateError(f"cannot read the client state {path}: {exc.strerror or exc}") from exc
    if len(data) > _MAX_SIZE:
        raise ClientStateError(f"the client state {path} is larger than {_MAX_SIZE} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ClientStateError(f"the client state {path} is corrupt: not UTF-8") from exc


def _parse(text: str, path: Path) -> tuple[bytes | None, dict[bytes, StateHead]]:
    try:
        return parse_state(text)
    except ValueError as exc:
        raise ClientStateError(f"the client state {path} is corrupt ({exc}); it is not reset: restore it, or "
                               "remove it only knowing that the heads it held no longer protect you") from exc


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    try:
        fd = os.open(path.parent / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise ClientStateError(f"cannot lock the client state in {path.parent}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
