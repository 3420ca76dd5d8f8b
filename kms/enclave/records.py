"""The host's record store as the enclave sees it: the protocol the OCALLs use, and an in-memory store."""

from __future__ import annotations

from typing import Protocol

# Records the host keeps out of listings: the node-local sealed domain key (seal keys are per
# CPU). Every other record, the domain state included, is listed: the enclave checks the whole
# store against its state log when it loads a domain.
RESERVED_RECORDS = frozenset({"sealed-domain-key"})


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

    def audit_append(self, seq: int, entry: bytes) -> None:
        """Durably append audit entry seq (must be the last + 1, else StoreConflict)."""

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

    def audit_append(self, seq: int, entry: bytes) -> None:
        if seq != len(self.audit) + 1:
            raise StoreConflict(f"audit seq {seq}")
        self.audit.append(bytes(entry))

    def audit_head(self) -> bytes | None:
        return self.audit[-1] if self.audit else None
