"""What both record stores share: argument checks, the node-local sealed key file, the write
operations (backend-neutral, run through the group committer) and the read-back that settles a
commit whose outcome is unknown.

A backend supplies a transaction object with four primitives, each conditional and none raising
on a failed condition (so a refused op never aborts its batch): `record_revision`,
`write_record` (False: the stored revision is not the expected one), `append` (to "state_log" or
"audit"; False: seq is not the last + 1) and `entry` (read one log entry back); and `appended`, what
its append() stored in this transaction by (log, seq), which an audit entry that follows the one
before it in the same batch checks instead of reading it back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kms.enclave.bridge import StoreConflict
from kms.enclave.node import SEALED_DOMAIN_KEY, write_atomic
from kms.service.store.group import GroupCommitter, Ticket

SEALED_RECORD = "sealed-domain-key"
MAX_KEY_ID = 128
MAX_REVISION = 2**63 - 1
MAX_SEQ = 2**63 - 1
Observer = Callable[[str], None]  # called with "ok", "conflict" or "error" after every write


class StoreError(Exception):
    """The store cannot be opened or used (reported to the enclave as a store failure)."""


class OutcomeUnknown(StoreError):
    """A commit's outcome could not be settled by reading back: the write may or may not be stored."""


def check_name(key_id: str) -> None:
    if not key_id or len(key_id) > MAX_KEY_ID or not key_id.isascii() or not key_id.isprintable():
        raise StoreError("invalid record name")


def check_revisions(expected_revision: int, revision: int) -> None:
    if not 0 <= expected_revision < revision <= MAX_REVISION:
        raise StoreError("a new revision must be greater than the expected one")


def check_seq(seq: int) -> None:
    if not 0 < seq <= MAX_SEQ:
        raise StoreError("a log sequence number must be positive")


@dataclass(frozen=True)
class PutOp:
    key_id: str
    expected_revision: int
    revision: int
    blob: bytes

    def apply(self, tx: Any) -> None:
        if not tx.write_record(self.key_id, self.expected_revision, self.revision, self.blob):
            raise StoreConflict(self.key_id)

    def committed(self, reader: Any) -> bool:
        return reader.record(self.key_id) == (self.revision, self.blob)


@dataclass(frozen=True)
class CommitOp:
    """A record and the state log entry that describes it: both or neither (the op's savepoint)."""

    put: PutOp
    seq: int
    entry: bytes

    def apply(self, tx: Any) -> None:
        if not tx.append("state_log", self.seq, self.entry):
            raise StoreConflict(self.put.key_id)
        try:
            self.put.apply(tx)
        except StoreConflict:
            tx.unappend("state_log", self.seq)  # the entry goes with its record: neither is kept
            raise

    def committed(self, reader: Any) -> bool:
        return reader.entry("state_log", self.seq) == self.entry


@dataclass(frozen=True)
class AuditOp:
    """An audit entry; with prev, only if entry seq - 1 is exactly prev (it chains on that one)."""

    seq: int
    entry: bytes
    prev: bytes | None = None

    def apply(self, tx: Any) -> None:
        if self.prev is not None and (self.seq < 2 or self._before(tx) != self.prev):
            raise StoreConflict(f"audit seq {self.seq} follows an entry that is not stored")
        if not tx.append("audit", self.seq, self.entry):
            raise StoreConflict(f"audit seq {self.seq} is not the next")

    def _before(self, tx: Any) -> bytes | None:
        appended = tx.appended.get(("audit", self.seq - 1))  # the usual case: the batch's previous op stored it
        return appended if appended is not None else tx.entry("audit", self.seq - 1)

    def committed(self, reader: Any) -> bool:
        return reader.entry("audit", self.seq) == self.entry


class BaseStore:
    """The RecordStore protocol (kms.enclave.records) over a backend's transactions and reads."""

    data_dir: Path
    sealed_path: Path
    committer: GroupCommitter
    _observer: Observer | None

    def _init_common(self, data_dir: Path | str, observer: Observer | None, group_commit: bool) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.sealed_path = self.data_dir / SEALED_DOMAIN_KEY
        self._observer = observer
        self.committer = GroupCommitter(self._run_batch, max_batch=256 if group_commit else 1)

    # --- what a backend provides
    def _transact(self, ops: list[Any]) -> list[BaseException | None]:
        """All ops in one transaction, committed once: each op's StoreConflict (nothing of it kept),
        or None. A commit whose outcome is unknown is settled by reading back, never re-run blindly."""
        raise NotImplementedError

    def _run_batch(self, ops: list[Any]) -> list[BaseException | None]:
        try:
            return self._transact(ops)
        except OutcomeUnknown:
            raise
        except Exception:
            if len(ops) == 1:
                raise
        # nothing was committed (the failure came before COMMIT, or a failed COMMIT was read back as absent):
        # run each op alone, so that an op the database refuses fails only its own request
        results: list[BaseException | None] = []
        for op in ops:
            try:
                results.append(self._transact([op])[0])
            except Exception as exc:
                results.append(exc)
        return results

    @staticmethod
    def settled(ops: list[Any], results: list[BaseException | None], stored: list[bool]) -> bool:
        """After a failed COMMIT: True when the applied ops are all stored, False when none is (the
        transaction is gone); OutcomeUnknown when only some are, which one transaction cannot do."""
        if all(stored):
            return True
        if not any(stored):
            return False
        raise OutcomeUnknown("a failed commit's writes are partly visible")

    def _read(self, fn: Callable[[Any], Any]) -> Any:
        """fn(reader) on a consistent read-only view."""
        raise NotImplementedError

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """One autocommitted statement outside the record protocol (the cluster's join board, docs/cluster.md);
        placeholders %s. Never for records or logs: those go through the conditional writes."""
        return self._read(lambda tx: tx.execute(sql, params))

    # --- reads
    def get(self, key_id: str) -> bytes | None:
        """The stored record for key_id, or None."""
        check_name(key_id)
        if key_id == SEALED_RECORD:
            try:
                return self.sealed_path.read_bytes()
            except FileNotFoundError:
                return None
        row = self._read(lambda r: r.record(key_id))
        return row[1] if row else None

    def revision(self, key_id: str) -> int:
        """The stored revision of key_id (0: absent)."""
        if key_id == SEALED_RECORD:
            return 1 if self.sealed_path.exists() else 0
        row = self._read(lambda r: r.record(key_id))
        return row[0] if row else 0

    def state_log_get(self, seq: int) -> bytes | None:
        """State log entry seq (0: the last one), or None."""
        return self._read(lambda r: r.entry("state_log", seq))

    def audit_head(self) -> bytes | None:
        """The last audit entry, or None."""
        return self._read(lambda r: r.entry("audit", 0))

    def list(self, after: str, limit: int) -> list[str]:
        """Up to limit record names greater than after, in byte order, reserved names excluded."""
        return [] if limit <= 0 else self._read(lambda r: r.names(after, limit))

    def audit_entries(self, after: int = 0, limit: int = 1000) -> list[tuple[int, bytes]]:
        """Audit entries with seq > after, in order (for `kms audit export`)."""
        return self._read(lambda r: r.audit_entries(after, limit))

    # --- writes: durable on return
    def put(self, key_id: str, expected_revision: int, revision: int, blob: bytes) -> None:
        """Store blob at revision if the stored revision is expected_revision."""
        self._observed(lambda: self._put(key_id, expected_revision, revision, bytes(blob)))

    def _put(self, key_id: str, expected_revision: int, revision: int, blob: bytes) -> None:
        check_name(key_id)
        check_revisions(expected_revision, revision)
        if key_id == SEALED_RECORD:
            self._sealed_put(expected_revision, revision, blob)
        else:
            self.committer.submit(PutOp(key_id, expected_revision, revision, blob))

    def commit(self, key_id: str, expected_revision: int, revision: int, blob: bytes, seq: int, entry: bytes) -> None:
        """Store the record and append its state log entry in one transaction."""
        self._observed(lambda: self.committer.wait(self.commit_enqueue(key_id, expected_revision, revision, blob,
                                                                       seq, entry)))

    def commit_enqueue(self, key_id: str, expected_revision: int, revision: int, blob: bytes, seq: int,
                       entry: bytes) -> Ticket:
        """Queue a commit (the checks run now); commit_wait() makes it durable or raises."""
        check_name(key_id)
        if key_id == SEALED_RECORD:
            raise StoreError("the sealed domain key is not a committed record")
        check_revisions(expected_revision, revision)
        check_seq(seq)
        return self.committer.enqueue(CommitOp(PutOp(key_id, expected_revision, revision, bytes(blob)), seq,
                                               bytes(entry)))

    def commit_wait(self, ticket: Ticket) -> None:
        self._observed(lambda: self.committer.wait(ticket))

    def audit_append(self, seq: int, entry: bytes) -> None:
        """Append audit entry seq (must be the last + 1, else StoreConflict)."""
        self.committer.wait(self.audit_enqueue(seq, entry))

    def audit_enqueue(self, seq: int, entry: bytes, prev: bytes | None = None) -> Ticket:
        """Queue an audit append (ordered after everything queued before it; with prev, only after
        exactly that entry); audit_wait() settles it."""
        check_seq(seq)
        return self.committer.enqueue(AuditOp(seq, bytes(entry), None if prev is None else bytes(prev)))

    def audit_wait(self, ticket: Ticket) -> None:
        self.committer.wait(ticket)

    def _sealed_put(self, expected_revision: int, revision: int, blob: bytes) -> None:
        if revision != 1:
            raise StoreError("the sealed domain key has a single revision")
        with self.committer._lock:  # one writer of the file at a time
            if (1 if self.sealed_path.exists() else 0) != expected_revision:
                raise StoreConflict(SEALED_RECORD)
            write_atomic(self.sealed_path, blob)

    def _observed(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except StoreConflict:
            self._observe("conflict")
            raise
        except BaseException:
            self._observe("error")
            raise
        self._observe("ok")

    def _observe(self, result: str) -> None:
        if self._observer is not None:
            self._observer(result)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()  # type: ignore[attr-defined]
