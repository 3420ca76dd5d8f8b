"""The RecordStore on PostgreSQL (psycopg 3, a psycopg_pool connection pool): one database that
several `kms serve` processes can share. Same semantics as the SQLite store (kms.service.store.base);
the sealed domain key stays a node-local file in the data directory.

Failures: a statement that fails before COMMIT is sent leaves nothing behind, so the batch is
retried on a fresh connection (bounded). A COMMIT whose answer is lost (the connection broke, the
server restarted) has an unknown outcome: the store waits until the server has ended that session
(so its transaction is settled, committed or rolled back), ending it itself if it lingers, then reads
the writes back. Stored: success. Absent: the batch is run again, now that it cannot also land.
Unreadable: OutcomeUnknown, and the enclave fails the request closed (its own read-back of the state
log decides what it adopts).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import psycopg_pool

from kms.enclave.bridge import RESERVED_RECORDS, StoreConflict
from kms.service.store import migrations
from kms.service.store.base import BaseStore, Observer, OutcomeUnknown, StoreError

RETRIES = 3
SCHEMA_LOCK = 0x6B6D735F736368  # pg_advisory_xact_lock key of the migrations ("kms_sch")
_LOGS = {"state_log": "state_log", "audit": "audit"}
_RESERVED = sorted(RESERVED_RECORDS)


class _CommitLost(Exception):
    def __init__(self, pid: int, results: list[BaseException | None], cause: BaseException) -> None:
        super().__init__(str(cause))
        self.pid, self.results = pid, results


class _Tx:
    dialect = "postgresql"

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.appended: dict[tuple[str, int], bytes] = {}  # what this transaction appended (base.AuditOp)

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        cur = self.conn.execute(sql, params)  # constants and placeholders only
        return cur.fetchall() if cur.description else []

    def record(self, key_id: str) -> tuple[int, bytes] | None:
        row = self.conn.execute("SELECT revision, blob FROM records WHERE key_id = %s", (key_id,)).fetchone()
        return (int(row[0]), bytes(row[1])) if row else None

    def write_record(self, key_id: str, expected: int, revision: int, blob: bytes) -> bool:
        if expected == 0:
            cur = self.conn.execute("INSERT INTO records (key_id, revision, blob) VALUES (%s, %s, %s) "
                                    "ON CONFLICT (key_id) DO NOTHING", (key_id, revision, blob))
        else:
            cur = self.conn.execute("UPDATE records SET revision = %s, blob = %s WHERE key_id = %s AND revision = %s",
                                    (revision, blob, key_id, expected))
        return cur.rowcount == 1

    def append(self, log: str, seq: int, entry: bytes) -> bool:
        # a concurrent writer of the same seq (another process) makes this one insert nothing
        table = _LOGS[log]
        cur = self.conn.execute(f"INSERT INTO {table} (seq, entry) SELECT %s, %s WHERE %s = "  # noqa: S608
                                f"(SELECT COALESCE(MAX(seq), 0) + 1 FROM {table}) ON CONFLICT (seq) DO NOTHING",
                                (seq, entry, seq))
        if cur.rowcount == 1:
            self.appended[log, seq] = entry
        return cur.rowcount == 1

    def unappend(self, log: str, seq: int) -> None:
        self.appended.pop((log, seq), None)
        self.conn.execute(f"DELETE FROM {_LOGS[log]} WHERE seq = %s", (seq,))  # noqa: S608 - fixed names

    def entry(self, log: str, seq: int) -> bytes | None:
        table = _LOGS[log]
        if seq == 0:
            row = self.conn.execute(f"SELECT entry FROM {table} ORDER BY seq DESC LIMIT 1").fetchone()  # noqa: S608 - fixed names
        else:
            row = self.conn.execute(f"SELECT entry FROM {table} WHERE seq = %s", (seq,)).fetchone()  # noqa: S608 - fixed names
        return bytes(row[0]) if row else None

    def names(self, after: str, limit: int) -> list[str]:
        rows = self.conn.execute("SELECT key_id FROM records WHERE key_id > %s AND NOT key_id = ANY(%s) "
                                 "ORDER BY key_id LIMIT %s", (after, _RESERVED, limit)).fetchall()
        return [r[0] for r in rows]

    def audit_entries(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        rows = self.conn.execute("SELECT seq, entry FROM audit WHERE seq > %s ORDER BY seq LIMIT %s",
                                 (after, limit)).fetchall()
        return [(int(s), bytes(e)) for s, e in rows]

    # --- the migrations' Target
    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            yield

    def legacy_version(self) -> int:
        return 0

    def set_legacy_version(self, version: int) -> None:
        pass


class PostgresStore(BaseStore):
    """RecordStore on PostgreSQL; thread-safe, connections from a pool."""

    def __init__(self, data_dir: Path | str, url: str, *, password: str | None = None, pool_size: int = 4,
                 timeout_s: float = 10.0, observer: Observer | None = None, group_commit: bool = True) -> None:
        self._init_common(data_dir, observer, group_commit)
        self.timeout_s = timeout_s
        ms = int(timeout_s * 1000)
        kwargs: dict[str, Any] = {
            "autocommit": True, "connect_timeout": max(1, int(timeout_s)), "application_name": "kms",
            "options": f"-c statement_timeout={ms} -c lock_timeout={ms} -c idle_in_transaction_session_timeout={ms}",
            "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3}
        if password is not None:
            kwargs["password"] = password
        self._pool = psycopg_pool.ConnectionPool(url, kwargs=kwargs, min_size=1, max_size=pool_size,
                                                 timeout=timeout_s, open=False, name="kms-store")
        try:
            self._pool.open(wait=True, timeout=timeout_s)
            with self._pool.connection() as conn:
                migrations.migrate(_Tx(conn))
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            self._pool.close()
            raise StoreError(f"cannot open the PostgreSQL store: {exc}") from exc
        except BaseException:
            self._pool.close()
            raise

    def _read(self, fn: Callable[[Any], Any]) -> Any:
        for attempt in range(RETRIES + 1):  # reads are idempotent: retried on a fresh connection
            try:
                with self._pool.connection() as conn:
                    return fn(_Tx(conn))
            except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
                if attempt == RETRIES:
                    raise StoreError(f"the store cannot be read: {exc}") from exc
                time.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")

    def _transact(self, ops: list[Any]) -> list[BaseException | None]:
        for attempt in range(RETRIES + 1):
            try:
                with self._pool.connection() as conn:
                    return self._once(conn, ops)
            except _CommitLost as lost:
                if self._settle(ops, lost):
                    return lost.results
                failure: Exception = lost  # definitely not stored: running it again cannot duplicate it
            except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
                failure = exc  # before COMMIT: the server rolled the transaction back
            if attempt == RETRIES:
                raise StoreError(f"the store cannot be written: {failure}") from failure
            time.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")

    @staticmethod
    def _once(conn: psycopg.Connection, ops: list[Any]) -> list[BaseException | None]:
        tx, results = _Tx(conn), []
        conn.execute("BEGIN")
        for op in ops:
            try:
                op.apply(tx)
                results.append(None)
            except StoreConflict as exc:
                results.append(exc)
        pid = conn.info.backend_pid
        try:
            conn.execute("COMMIT")
        except psycopg.Error as exc:
            raise _CommitLost(pid, results, exc) from exc
        return results

    def _settle(self, ops: list[Any], lost: _CommitLost) -> bool:
        """Whether the lost COMMIT's writes are stored, once the session that sent it is gone."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                with self._pool.connection() as conn:
                    self._wait_gone(conn, lost.pid)
                    tx = _Tx(conn)
                    stored = [op.committed(tx) for op, r in zip(ops, lost.results, strict=True) if r is None]
                return self.settled(ops, lost.results, stored)
            except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
                if time.monotonic() > deadline:
                    raise OutcomeUnknown(f"a commit's outcome is unknown and cannot be read back: {exc}") from exc
                time.sleep(0.1)

    def _wait_gone(self, conn: psycopg.Connection, pid: int) -> None:
        start, ended = time.monotonic(), False
        while conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
            waited = time.monotonic() - start
            if waited > self.timeout_s / 2 and not ended:  # lingering: end it, and its transaction with it
                conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
                ended = True
            if waited > self.timeout_s:
                raise OutcomeUnknown(f"the session {pid} that sent a lost COMMIT has not ended")
            time.sleep(0.02)

    def close(self) -> None:
        """Close the pool (connections in use are closed when returned)."""
        self._pool.close()
