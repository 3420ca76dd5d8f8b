"""The join board: how the hosts relay a replica's join through the shared store (docs/cluster.md).

A joining replica's host posts its enclave's join request (an encoded ReplicaAdmitRequest: its quote and
join key); a running replica's host hands it to its enclave and posts back the grant its enclave made (an
encoded ReplicaGrant, with the sponsor's quote); the joiner's host takes it to its own enclave. Nothing
here is trusted: both enclaves verify what the other wrote, and a host that drops or alters rows only
delays or stops a join. One table next to the records, in its own connection (SQLite WAL: several
processes share the file).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS replica_joins (
    replica_id BLOB PRIMARY KEY NOT NULL CHECK (length(replica_id) = 32),
    request    BLOB NOT NULL,
    grant_blob BLOB,
    posted     REAL NOT NULL
)
"""
MAX_BLOB = 64 * 1024


class JoinBoard:
    """The replica_joins table of the store at db_path; thread-safe."""

    def __init__(self, db_path: Path | str) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)

    def post(self, replica_id: bytes, request: bytes) -> None:
        """Post (or replace) a join request; any earlier grant for it is dropped."""
        if len(request) > MAX_BLOB:
            raise ValueError("join request too large")
        with self._lock:
            self._db.execute("INSERT INTO replica_joins (replica_id, request, grant_blob, posted) "
                             "VALUES (?, ?, NULL, ?) ON CONFLICT (replica_id) DO UPDATE SET "
                             "request = excluded.request, grant_blob = NULL, posted = excluded.posted",
                             (replica_id, request, time.time()))

    def requests(self) -> list[tuple[bytes, bytes]]:
        """(replica id, request) of every join that has no grant yet."""
        with self._lock:
            rows = self._db.execute("SELECT replica_id, request FROM replica_joins WHERE grant_blob IS NULL "
                                    "ORDER BY posted LIMIT 64").fetchall()
        return [(bytes(r), bytes(q)) for r, q in rows]

    def grant(self, replica_id: bytes, grant: bytes) -> None:
        with self._lock:
            self._db.execute("UPDATE replica_joins SET grant_blob = ? WHERE replica_id = ?", (grant, replica_id))

    def granted(self, replica_id: bytes) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT grant_blob FROM replica_joins WHERE replica_id = ?",
                                   (replica_id,)).fetchone()
        return bytes(row[0]) if row and row[0] is not None else None

    def done(self, replica_id: bytes) -> None:
        with self._lock:
            self._db.execute("DELETE FROM replica_joins WHERE replica_id = ?", (replica_id,))

    def close(self) -> None:
        with self._lock:
            self._db.close()
