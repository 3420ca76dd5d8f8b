"""A hostile host of an in-process enclave: it owns the record store and restarts the enclave on it at will.

Two rollbacks: `roll_back(rows)` puts older authentic rows back into an otherwise current store (the enclave's
state log and index refuse them: StaleRecord when read, and the restart stops); `restore(snapshot())` puts the
whole store back as it was, records, state log and audit chain together: a consistent older prefix, which the
enclave alone cannot tell from the latest (clients that saw a newer head refuse it; a validator's watermark
refuses to sign below it)."""

from __future__ import annotations

import shutil
from pathlib import Path

from kms.enclave.bridge import Enclave, MemoryStore
from kms.proto.enclave.v1 import boundary_pb2 as pb

Snapshot = tuple[dict[str, tuple[int, bytes]], list[bytes], list[bytes]]


class Host:
    """A hostile host: it owns the store and restarts the enclave on it whenever it likes."""

    def __init__(self, build: Path, tmp: Path) -> None:
        self.build, self.tmp, self.store, self.starts = build, tmp, MemoryStore(), 0
        self.enclave = Enclave(tmp / "data", store=self.store)
        sealed = self.enclave.call(pb.Request(generate_domain_key=pb.GenerateDomainKeyRequest()))
        self.sealed = sealed.generate_domain_key.sealed_domain_key

    def restart(self) -> None:
        """A fresh enclave instance on the same store and platform: nothing survives but the store."""
        self.enclave.close()
        self.starts += 1
        image = self.tmp / f"restart-{self.starts}.so"  # a fresh image file: a fresh load, no leftover memory
        shutil.copy(self.build / "kms_enclave.so", image)
        shutil.copy(self.build / "kms_enclave.sigstruct", image.with_suffix(".sigstruct"))
        self.enclave = Enclave(self.tmp / "data", store=self.store, image=image)
        self.enclave.call(pb.Request(load_domain_key=pb.LoadDomainKeyRequest(sealed_domain_key=self.sealed)))

    def roll_back(self, saved: dict[str, tuple[int, bytes]]) -> None:
        """Put saved (authentic, older) rows back and restart: the enclave's memory of them is gone, its state
        log is not (the restart raises StaleRecord)."""
        self.store.update(saved)
        self.restart()

    def snapshot(self) -> Snapshot:
        """A copy of the whole store as it is now."""
        return dict(self.store), list(self.store.state_log), list(self.store.audit)

    def restore(self, snap: Snapshot) -> None:
        """Put the whole store back as it was at snapshot() and restart on it: a consistent older prefix."""
        records, log, audit = snap
        self.store.clear()
        self.store.update(records)
        self.store.state_log[:] = log
        self.store.audit[:] = audit
        self.restart()

    def close(self) -> None:
        self.enclave.close()
