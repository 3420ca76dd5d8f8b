"""The embedded RecordStore: SQLite (WAL, synchronous=FULL) in the data directory; the sealed key as a file.

The store holds only what the enclave hands it (records encrypted under the domain key, with
key id and revision in the AAD), so it authenticates nothing itself: a damaged row is returned
as it is and the enclave refuses that key alone. Writes are conditional (on the stored revision,
on the log's last seq) and durable (fsync'd) before they return; a record's commit carries the
state log entry that describes it, in the same transaction. Concurrent writes share one
transaction (kms.service.store.group).

The reserved record "sealed-domain-key" is node-local (seal keys are per CPU): it lives in
`domain-key.sealed` next to the database, written atomically, never in a table another node
could share. It has one revision: present (1) or absent (0).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kms.enclave.bridge import RESERVED_RECORDS, StoreConflict
from kms.service.store import migrations
from kms.service.store.base import BaseStore, Observer, OutcomeUnknown, StoreError

DB_NAME = "kms.sqlite3"
SCHEMA_VERSION = migrations.LATEST
_RESERVED = tuple(sorted(RESERVED_RECORDS))
_LOGS = {"state_log": "state_log", "audit": "audit"}  # the only tables append/entry name


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Tx:
    """The primitives on one SQLite connection (the caller holds the store's lock)."""

    dialect = "sqlite"

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.appended: dict[tuple[str, int], bytes] = {}  # what this transaction appended (base.AuditOp)

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self.db.execute(sql.replace("%s", "?"), params).fetchall()

    def record(self, key_id: str) -> tuple[int, bytes] | None:
        row = self.db.execute("SELECT revision, blob FROM records WHERE key_id = ?", (key_id,)).fetchone()
        return (int(row[0]), bytes(row[1])) if row else None

    def write_record(self, key_id: str, expected: int, revision: int, blob: bytes) -> bool:
        if expected == 0:
            cur = self.db.execute("INSERT INTO records (key_id, revision, blob) VALUES (?, ?, ?) "
                                  "ON CONFLICT (key_id) DO NOTHING", (key_id, revision, blob))
        else:
            cur = self.db.execute("UPDATE records SET revision = ?, blob = ? WHERE key_id = ? AND revision = ?",
                                  (revision, blob, key_id, expected))
        return cur.rowcount == 1

    def append(self, log: str, seq: int, entry: bytes) -> bool:
        table = _LOGS[log]
        cur = self.db.execute(f"INSERT INTO {table} (seq, entry) SELECT ?, ? "  # noqa: S608 - fixed names
                              f"WHERE ? = (SELECT COALESCE(MAX(seq), 0) + 1 FROM {table})", (seq, entry, seq))
        if cur.rowcount == 1:
            self.appended[log, seq] = entry
        return cur.rowcount == 1

    def unappend(self, log: str, seq: int) -> None:
        self.appended.pop((log, seq), None)
        self.db.execute(f"DELETE FROM {_LOGS[log]} WHERE seq = ?", (seq,))  # noqa: S608 - fixed names

    def entry(self, log: str, seq: int) -> bytes | None:
        table = _LOGS[log]
        if seq == 0:
            row = self.db.execute(f"SELECT entry FROM {table} ORDER BY seq DESC LIMIT 1").fetchone()  # noqa: S608
        else:
            row = self.db.execute(f"SELECT entry FROM {table} WHERE seq = ?", (seq,)).fetchone()  # noqa: S608
        return bytes(row[0]) if row else None

    def names(self, after: str, limit: int) -> list[str]:
        marks = ",".join("?" * len(_RESERVED))
        return [r[0] for r in self.db.execute(
            f"SELECT key_id FROM records WHERE key_id > ? AND key_id NOT IN ({marks}) "  # noqa: S608 - marks only
            "ORDER BY key_id LIMIT ?", (after, *_RESERVED, limit))]

    def audit_entries(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        rows = self.db.execute("SELECT seq, entry FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit))
        return [(int(s), bytes(e)) for s, e in rows]

    # --- the migrations' Target
    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    def legacy_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def set_legacy_version(self, version: int) -> None:
        self.db.execute(f"PRAGMA user_version={int(version)}")


class SqliteStore(BaseStore):
    """RecordStore on SQLite; thread-safe (OCALLs arrive from several ECALL worker threads)."""

    def __init__(self, data_dir: Path | str, *, observer: Observer | None = None, group_commit: bool = True,
                 db_dir: Path | str | None = None) -> None:
        """The database in db_dir (replicas on one machine share it: docs/cluster.md; default data_dir); the
        sealed domain key always in data_dir, this node's own."""
        self._init_common(data_dir, observer, group_commit)
        self.path = Path(db_dir or self.data_dir) / DB_NAME
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
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
        migrations.migrate(_Tx(db))

    def _read(self, fn: Callable[[Any], Any]) -> Any:
        with self._lock:
            return fn(_Tx(self._db))

    def _transact(self, ops: list[Any]) -> list[BaseException | None]:
        """One BEGIN IMMEDIATE .. COMMIT (one fsync) for the batch."""
        results: list[BaseException | None] = []
        with self._lock:
            db, tx = self._db, _Tx(self._db)
            try:
                db.execute("BEGIN IMMEDIATE")
                for op in ops:
                    try:
                        op.apply(tx)
                        results.append(None)
                    except StoreConflict as exc:
                        results.append(exc)
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            try:
                db.execute("COMMIT")
            except sqlite3.Error as exc:  # settled by reading back, never by re-running
                if db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                try:
                    stored = [op.committed(tx) for op, r in zip(ops, results, strict=True) if r is None]
                except sqlite3.Error:
                    raise OutcomeUnknown(f"commit failed and cannot be read back: {exc}") from exc
                if not self.settled(ops, results, stored):
                    raise StoreError(f"commit failed, nothing was stored: {exc}") from exc
        return results

    def state_log_file(self) -> Path | None:
        """The database the enclave bridge reads state log entries from itself, in C (kms.enclave.bridge: the
        same rows state_log_get returns, without Python per request), or None when a subclass reads them its own
        way."""
        return self.path if type(self).state_log_get is SqliteStore.state_log_get else None

    def close(self) -> None:
        """Checkpoint and close the database."""
        with self._lock:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()
