"""The host's record store as the enclave sees it: the protocol the OCALLs use, and an in-memory store."""

from __future__ import annotations

import logging
from typing import Any, Protocol

# Records the host keeps out of listings: the node-local sealed domain key (seal keys are per
# CPU). Every other record, the domain state included, is listed: the enclave checks the whole
# store against its state log when it loads a domain.
RESERVED_RECORDS = frozenset({"sealed-domain-key"})
_log = logging.getLogger("kms.enclave")


class StoreConflict(Exception):
    """Raised by a RecordStore.put when the stored revision is not the expected one."""


class RecordStore(Protocol):
    """The host's store of encrypted key records, as the enclave's OCALLs use it."""

    def get(self, key_id: str) -> bytes | None:
        """The current record for key_id, or None."""

    def put(self, key_id: str, expected_revision: int, revision: int, blob: bytes) -> None:
        """Durably store blob as key_id's record at revision, only if the current revision is
        expected_revision (0: absent); raise StoreConflict otherwise. Return only once durable."""

    def commit(self, key_id: str, expected_revision: int, revision: int, blob: bytes, seq: int, entry: bytes) -> None:
        """In ONE durable transaction: put blob as key_id's record (as put) and append state log
        entry seq (must be the last + 1); StoreConflict if either check fails, and then nothing
        is written."""

    def state_log_get(self, seq: int) -> bytes | None:
        """State log entry seq (0: the last one), or None."""

    def list(self, after: str, limit: int) -> list[str]:
        """Up to limit stored record names greater than after, in byte order (the sealed key excluded)."""

    def audit_enqueue(self, seq: int, entry: bytes, prev: bytes | None = None) -> Any:
        """Queue audit entry seq for the next flush and return a ticket for audit_wait. When it is
        applied it must be the last + 1 and, if prev is given, entry seq - 1 must be exactly prev;
        else it is refused (StoreConflict from audit_wait) and nothing of it is kept."""

    def audit_wait(self, ticket: Any) -> None:
        """Return once the ticket's entry is durable; raise its StoreConflict or store failure."""

    def audit_head(self) -> bytes | None:
        """The last audit entry, or None."""


class MemoryStore(dict[str, tuple[int, bytes]]):
    """A RecordStore in memory (tests, benchmarks, the start-up self-check)."""

    def get(self, key_id: str) -> bytes | None:  # type: ignore[override]
        entry = dict.get(self, key_id)
        return entry[1] if entry else None

    def put(self, key_id: str, expected_revision: int, revision: int, blob: bytes) -> None:
        current = dict.get(self, key_id, (0, b""))[0]
        if current != expected_revision:
            raise StoreConflict(key_id)
        self[key_id] = (revision, bytes(blob))

    def list(self, after: str, limit: int) -> list[str]:  # type: ignore[override]
        return sorted(k for k in self if k > after and k not in RESERVED_RECORDS)[:limit]

    @property
    def state_log(self) -> list[bytes]:
        """The state log entries, in order (seq = index + 1)."""
        return self.__dict__.setdefault("_state_log", [])

    def commit(self, key_id: str, expected_revision: int, revision: int, blob: bytes, seq: int, entry: bytes) -> None:
        if dict.get(self, key_id, (0, b""))[0] != expected_revision or seq != len(self.state_log) + 1:
            raise StoreConflict(key_id)
        self[key_id] = (revision, bytes(blob))
        self.state_log.append(bytes(entry))

    def state_log_get(self, seq: int) -> bytes | None:
        log = self.state_log
        if seq == 0:
            return log[-1] if log else None
        return log[seq - 1] if 0 < seq <= len(log) else None

    @property
    def audit(self) -> list[bytes]:
        """The audit entries, in order (seq = index + 1)."""
        return self.__dict__.setdefault("_audit", [])

    def audit_enqueue(self, seq: int, entry: bytes, prev: bytes | None = None) -> Exception | None:
        """Applied at once (nothing here is durable anyway): the ticket is the outcome."""
        if seq != len(self.audit) + 1 or (prev is not None and (seq < 2 or self.audit[seq - 2] != prev)):
            return StoreConflict(f"audit seq {seq}")
        self.audit.append(bytes(entry))
        return None

    def audit_wait(self, ticket: Exception | None) -> None:
        if ticket is not None:
            raise ticket

    def audit_head(self) -> bytes | None:
        return self.audit[-1] if self.audit else None


class AuditQueue:
    """The host side of the audit_enqueue / audit_wait OCALLs for one enclave: what the bridge's queue
    (enclave/bridge/audit_queue.c) hands over, appended in queue order through the store.

    The enclave queues entries one at a time (under its audit lock, so queue order is chain order). An
    entry that "follows" is tied to the bytes of the entry queued just before it, so the store refuses it
    when that one was not stored (the chain never skips a failed entry). One thread (the flusher) calls it.
    """

    CONFLICT, FAILED = 1, -1

    def __init__(self, store: RecordStore) -> None:
        self._store = store
        self._last: bytes | None = None

    def flush(self, entries: list[tuple[int, bool, bytes]]) -> list[int]:
        """Append (seq, follows, entry) in order, durably: each one's outcome, 0 (durable), CONFLICT (refused
        out of sequence) or FAILED (the store failed: the outcome is unknown to the enclave)."""
        pending: list[tuple[int | None, Any]] = []  # (an outcome already known, or the store's ticket)
        for seq, follows, entry in entries:
            prev = self._last if follows else None
            if follows and prev is None:  # it follows an entry this host did not queue
                pending.append((self.CONFLICT, None))
                continue
            try:
                pending.append((None, self._store.audit_enqueue(seq, entry, prev)))
            except StoreConflict:
                pending.append((self.CONFLICT, None))
                continue
            except Exception as exc:
                _log.error("audit enqueue failed: %s", type(exc).__name__)
                pending.append((self.FAILED, None))
                continue
            self._last = entry
        return [self._wait(ticket) if known is None else known for known, ticket in pending]

    def _wait(self, ticket: Any) -> int:
        try:
            self._store.audit_wait(ticket)
        except StoreConflict:
            return self.CONFLICT
        except Exception as exc:
            _log.error("audit append failed: %s", type(exc).__name__)
            return self.FAILED
        return 0
