"""What following the shared state log costs a replica per request (docs/cluster.md, "Keeping current").

Two enclaves of one domain on one SQLite store in this process (two replicas of one node: they load the same
sealed domain key). Every audited request first reads the log's head (one OCALL, a SELECT of the last entry):
when it is the enclave's own head nothing more happens; when another replica appended, the new entries are read,
authenticated, chained and applied, and the changed records are dropped from the cache. Measured, in alternating
rounds, for Encrypt (32 bytes, host path) on replica B: the head unchanged; one entry appended by replica A
before each request (an UpdateKey of the very key B uses, so B also reloads that record); and, as the baseline,
the time B's host spends answering the head read itself (the SELECT), summed over the same requests.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from kms import paths
from kms.enclave.bridge import Enclave
from kms.enclave.node import open_node
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.service.store import SqliteStore


class TimedStore(SqliteStore):
    """The real store, timing the head reads (state_log_get(0)) the enclave makes."""

    head_reads = 0
    head_ns = 0

    def state_log_get(self, seq: int) -> bytes | None:
        if seq != 0:
            return super().state_log_get(seq)
        t = time.perf_counter_ns()
        try:
            return super().state_log_get(seq)
        finally:
            self.head_ns += time.perf_counter_ns() - t
            self.head_reads += 1


def _replica(root: Path, name: str, data: Path) -> tuple[Enclave, TimedStore]:
    image = root / f"{name}.so"
    shutil.copy(paths.build_dir() / "kms_enclave.so", image)
    shutil.copy(paths.build_dir() / "kms_enclave.sigstruct", image.with_suffix(".sigstruct"))
    store = TimedStore(data)
    return open_node(data, store=store, image=image), store


def _round(b: Enclave, store: TimedStore, encrypt: pb.Request, n: int, before=None) -> tuple[float, float]:
    """Median µs per Encrypt on b, and the mean µs of b's head reads per request."""
    lat = []
    store.head_reads = store.head_ns = 0
    for _ in range(n):
        if before is not None:
            before()
        t = time.perf_counter_ns()
        b.call(encrypt)
        lat.append(time.perf_counter_ns() - t)
    return statistics.median(lat) / 1000, store.head_ns / max(n, 1) / 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per variant")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        a, _ = _replica(root, "a", root / "data")
        b, b_store = _replica(root, "b", root / "data")
        try:
            kid = a.call(pb.Request(create_key=pb.CreateKeyRequest(spec=pb.SYMMETRIC_DEFAULT,
                                                                   usage=pb.ENCRYPT_DECRYPT))).key_metadata.key_id
            encrypt = pb.Request(encrypt=pb.EncryptRequest(key_id=kid, plaintext=b"x" * 32))
            touch = pb.Request(update_key=pb.UpdateKeyRequest(key_id=kid, set_description=True, description="t"))
            b.call(encrypt)  # b follows a's create_key once
            results: dict[str, list[tuple[float, float]]] = {"head unchanged": [], "1 entry from A per request": []}
            for _ in range(args.rounds):
                results["head unchanged"].append(_round(b, b_store, encrypt, args.iterations))
                results["1 entry from A per request"].append(
                    _round(b, b_store, encrypt, args.iterations, before=lambda: a.call(touch)))
        finally:
            a.close()
            b.close()
    print(f"Encrypt 32 B on replica B, host path, SQLite store; median of {args.rounds} rounds x {args.iterations}")
    print(f"{'variant':<30} {'µs/request':>11} {'of which the head read (host) µs':>34}")
    for name, rows in results.items():
        print(f"{name:<30} {statistics.median(r[0] for r in rows):>11.1f} "
              f"{statistics.median(r[1] for r in rows):>34.1f}")
    return 0


if __name__ == "__main__":
    from kms.enclave.runtime import ensure_static_tls

    ensure_static_tls()
    raise SystemExit(main())
