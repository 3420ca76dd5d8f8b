"""The embedded RecordStore: SQLite (WAL, synchronous=FULL) in the data directory; the sealed key as a file.

The store holds only what the enclave hands it (records encrypted under the domain key, with
key id and revision in the AAD), so it authenticates nothing itself: a damaged row is returned
as it is and the enclave refuses that key alone. Every put is one transaction, conditional on
the stored revision, and committed (fsync'd) before it returns; a record's commit carries the
state log entry that describes it, written in the same transaction.

The reserved record "sealed-domain-key" is node-local (seal keys are per CPU): it lives in
`domain-key.sealed` next to the database, written atomically, never in a table another node
could share. It has one revision: present (1) or absent (0).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from kms.enclave.bridge import RESERVED_RECORDS, StoreConflict
from kms.enclave.node import SEALED_DOMAIN_KEY, write_atomic

DB_NAME = "kms.sqlite3"
SEALED_RECORD = "sealed-domain-key"
SCHEMA_VERSION = 2
MAX_KEY_ID = 128
MAX_REVISION = 2**63 - 1
Observer = Callable[[str], None]  # called with "ok", "conflict" or "error" after every put

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    key_id   TEXT PRIMARY KEY NOT NULL,
    revision INTEGER NOT NULL CHECK (revision > 0),
    blob     BLOB NOT NULL
) WITHOUT ROWID
"""

# The audit chain: entries (encoded kms.enclave.v1.AuditEntry, signed inside the enclave) in
# sequence order; appends must be gap-free (last + 1), so a replayed or skipped seq is refused.
_AUDIT_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq   INTEGER PRIMARY KEY NOT NULL CHECK (seq > 0),
    entry BLOB NOT NULL
)
"""


# The state log (docs/security-model.md): one entry per change of a record, written in the same
# transaction as the record; gap-free like the audit chain. Version 1 stores had no state log:
# the enclave refuses their records (it cannot tell them from a rolled-back store).
_STATE_LOG_SCHEMA = """
CREATE TABLE IF NOT EXISTS state_log (
    seq   INTEGER PRIMARY KEY NOT NULL CHECK (seq > 0),
    entry BLOB NOT NULL
)
"""


class StoreError(Exception):
    """The store cannot be opened or used (reported to the enclave as a store failure)."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_name(key_id: str) -> None:
    if not key_id or len(key_id) > MAX_KEY_ID or not key_id.isascii() or not key_id.isprintable():
        raise StoreError("invalid record name")


class SqliteStore:
    """RecordStore on SQLite; thread-safe (OCALLs arrive from several ECALL worker threads)."""

    def __init__(self, data_dir: Path | str, *, observer: Observer | None = None,
                 db_dir: Path | str | None = None) -> None:
        """The database in db_dir (replicas share it; default data_dir), the sealed key in data_dir."""
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        db = Path(db_dir) if db_dir else self.data_dir
        db.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = db / DB_NAME
        self.sealed_path = self.data_dir / SEALED_DOMAIN_KEY
        self._observer = observer
        self._lock = threading.Lock()
        created = not self.path.exists()
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            self._setup()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the store {self.path}: {exc}") from exc
        if created:
            os.chmod(self.path, 0o600)
            _fsync_dir(self.path.parent)

    def _setup(self) -> None:
        db = self._db
        if db.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() != "wal":
            raise StoreError("SQLite refused WAL mode")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise StoreError(f"store schema version {version} is not {SCHEMA_VERSION}")
        db.execute(_SCHEMA)
        db.execute(_AUDIT_SCHEMA)
        db.execute(_STATE_LOG_SCHEMA)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def get(self, key_id: str) -> bytes | None:
        """The stored record for key_id, or None."""
        _check_name(key_id)
        if key_id == SEALED_RECORD:
            return self._sealed_get()
        with self._lock:
            row = self._db.execute("SELECT blob FROM records WHERE key_id = ?", (key_id,)).fetchone()
        return bytes(row[0]) if row else None

    def revision(self, key_id: str) -> int:
        """The stored revision of key_id (0: absent)."""
        if key_id == SEALED_RECORD:
            return 1 if self.sealed_path.exists() else 0
        with self._lock:
            row = self._db.execute("SELECT revision FROM records WHERE key_id = ?", (key_id,)).fetchone()
        return int(row[0]) if row else 0

    def put(self, key_id: str, expected_revision: int, revision: int, blob: bytes) -> None:
        """Store blob at revision if the stored revision is expected_revision; durable on return."""
        try:
            self._put(key_id, expected_revision, revision, bytes(blob))
        except StoreConflict:
            self._observe("conflict")
            raise
        except BaseException:
            self._observe("error")
            raise
        self._observe("ok")

    def _put(self, key_id: str, expected_revision: int, revision: int, blob: bytes) -> None:
        _check_name(key_id)
        if not 0 <= expected_revision < revision <= MAX_REVISION:
            raise StoreError("a new revision must be greater than the expected one")
        if key_id == SEALED_RECORD:
            self._sealed_put(expected_revision, revision, blob)
            return
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT revision FROM records WHERE key_id = ?", (key_id,)).fetchone()
                if (int(row[0]) if row else 0) != expected_revision:
                    raise StoreConflict(key_id)
                db.execute("INSERT INTO records (key_id, revision, blob) VALUES (?, ?, ?) ON CONFLICT (key_id) "
                           "DO UPDATE SET revision = excluded.revision, blob = excluded.blob",
                           (key_id, revision, blob))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def commit(self, key_id: str, expected_revision: int, revision: int, blob: bytes, seq: int, entry: bytes) -> None:
        """Store the record and append its state log entry in one transaction; durable on return."""
        try:
            self._commit(key_id, expected_revision, revision, bytes(blob), seq, bytes(entry))
        except StoreConflict:
            self._observe("conflict")
            raise
        except BaseException:
            self._observe("error")
            raise
        self._observe("ok")

    def _commit(self, key_id: str, expected_revision: int, revision: int, blob: bytes, seq: int, entry: bytes) -> None:
        _check_name(key_id)
        if key_id == SEALED_RECORD or not 0 <= expected_revision < revision <= MAX_REVISION:
            raise StoreError("a committed record needs a name of the store and a greater revision")
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT revision FROM records WHERE key_id = ?", (key_id,)).fetchone()
                last = db.execute("SELECT COALESCE(MAX(seq), 0) FROM state_log").fetchone()[0]
                if (int(row[0]) if row else 0) != expected_revision or seq != last + 1:
                    raise StoreConflict(key_id)
                db.execute("INSERT INTO records (key_id, revision, blob) VALUES (?, ?, ?) ON CONFLICT (key_id) "
                           "DO UPDATE SET revision = excluded.revision, blob = excluded.blob",
                           (key_id, revision, blob))
                db.execute("INSERT INTO state_log (seq, entry) VALUES (?, ?)", (seq, entry))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def state_log_get(self, seq: int) -> bytes | None:
        """State log entry seq (0: the last one), or None."""
        with self._lock:
            if seq == 0:
                row = self._db.execute("SELECT entry FROM state_log ORDER BY seq DESC LIMIT 1").fetchone()
            else:
                row = self._db.execute("SELECT entry FROM state_log WHERE seq = ?", (seq,)).fetchone()
        return bytes(row[0]) if row else None

    def _sealed_get(self) -> bytes | None:
        try:
            return self.sealed_path.read_bytes()
        except FileNotFoundError:
            return None

    def _sealed_put(self, expected_revision: int, revision: int, blob: bytes) -> None:
        if revision != 1:
            raise StoreError("the sealed domain key has a single revision")
        with self._lock:
            if (1 if self.sealed_path.exists() else 0) != expected_revision:
                raise StoreConflict(SEALED_RECORD)
            write_atomic(self.sealed_path, blob)

    def list(self, after: str, limit: int) -> list[str]:
        """Up to limit record names greater than after, in byte order, reserved names excluded."""
        if limit <= 0:
            return []
        reserved = sorted(RESERVED_RECORDS)
        marks = ",".join("?" * len(reserved))
        with self._lock:
            rows = self._db.execute(
                f"SELECT key_id FROM records WHERE key_id > ? AND key_id NOT IN ({marks}) "  # noqa: S608 - marks only
                "ORDER BY key_id LIMIT ?", (after, *reserved, limit)).fetchall()
        return [r[0] for r in rows]

    def audit_append(self, seq: int, entry: bytes) -> None:
        """Append audit entry seq (must be the last + 1), durably; StoreConflict otherwise."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                last = db.execute("SELECT COALESCE(MAX(seq), 0) FROM audit").fetchone()[0]
                if seq != last + 1:
                    raise StoreConflict(f"audit seq {seq} after {last}")
                db.execute("INSERT INTO audit (seq, entry) VALUES (?, ?)", (seq, bytes(entry)))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def audit_head(self) -> bytes | None:
        """The last audit entry, or None."""
        with self._lock:
            row = self._db.execute("SELECT entry FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return bytes(row[0]) if row else None

    def audit_entries(self, after: int = 0, limit: int = 1000) -> list[tuple[int, bytes]]:
        """Audit entries with seq > after, in order (for `kms audit export`)."""
        with self._lock:
            rows = self._db.execute("SELECT seq, entry FROM audit WHERE seq > ? ORDER BY seq LIMIT ?",
                                    (after, limit)).fetchall()
        return [(int(s), bytes(e)) for s, e in rows]

    def _observe(self, result: str) -> None:
        if self._observer is not None:
            self._observer(result)

    def close(self) -> None:
        """Checkpoint and close the database."""
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass
            self._db.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
