"""Replicas: what following the shared state log costs per request, and what 1, 2 and 3 processes serve.

Second table (docs/cluster.md, "Processes on one node"): Encrypt 1 KiB and Sign P-256 ops/s through the real
`kms serve --processes N` (N workers, each its own enclave, on one database: PostgreSQL when installed, else
SQLite), N = 1, 2, 3, group commit on and off, CLIENTS client threads each on its own connection (so the
kernel spreads them over the workers). Clients, workers and the database share this machine's CPUs.

First table, what following the log costs (docs/cluster.md, "Keeping current"):

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
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
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


CLIENTS = 8
PROCESSES = (1, 2, 3)


def _process_rates(flags: list[str], data: Path, processes: int, seconds: float) -> tuple[float, float, int]:
    """(Encrypt 1 KiB/s, Sign P-256/s, refused calls) through `kms serve --processes N` with CLIENTS clients
    (a refused call is not counted as served)."""
    from kms.client import Credentials, KmsClient
    from tests.auditor import auditor_public
    from tests.bench.bench_kms_ops import _phase
    from tests.e2e.conftest import client_for
    from tests.e2e.server import ServerProcess

    server = ServerProcess(data, f"--processes={processes}", "--housekeeping-interval-s=0", "--cluster-poll-s=0.2",
                           *flags, log_level="info")
    clients: list[KmsClient] = []
    own = [("grpc.use_local_subchannel_pool", 1)]
    try:
        creds = Credentials.generate("bench")
        with client_for(server, creds, new_domain=True) as admin:
            admin.init([os.urandom(32)], 1, auditor_public_keys=auditor_public())
            domain = admin.domain_id
            aes, p256 = admin.create_key().key_id, admin.create_key("ECC_NIST_P256").key_id
        time.sleep(1.0)  # the other workers load the domain key their sibling sealed (cluster_poll_s)
        clients = [client_for(server, creds, domain_id=domain, grpc_options=own) for _ in range(CLIENTS)]
        plaintext, digest = os.urandom(1024), os.urandom(32)
        errors: list[str] = []

        def counted(fn: Callable[[KmsClient], object]) -> Callable[[KmsClient], object]:
            def call(c: KmsClient) -> object:
                try:
                    return fn(c)
                except Exception as exc:  # counted and shown, not a dead client thread
                    errors.append(type(exc).__name__ + ": " + str(exc)[:60])
                    return None
            return call

        enc = _phase(clients, counted(lambda c: c.encrypt(aes, plaintext)), seconds, 0.5)[0]
        enc_errors = len(errors)
        sign = _phase(clients, counted(lambda c: c.sign(p256, digest=digest)), seconds, 0.5)[0]
        for what in sorted(set(errors)):
            print(f"    refused: {what}", flush=True)
        return enc - enc_errors / seconds, sign - (len(errors) - enc_errors) / seconds, len(errors)
    finally:
        for c in clients:
            c.close()
        server.stop()


def processes_table(seconds: float) -> None:
    from tests.pg import PgCluster, pg_bin

    bin_dir = pg_bin()
    cluster = PgCluster(bin_dir) if bin_dir else None
    backend = "PostgreSQL (local, fsync on)" if cluster else "SQLite (PostgreSQL not installed)"
    try:
        print(f"\n{os.cpu_count()} CPUs shared by {CLIENTS} client threads, the workers and the database; store: "
              f"{backend}; {seconds:g} s per cell")
        print(f"{'processes':>9} {'group commit':>12} {'Encrypt 1KiB/s':>15} {'Sign P-256/s':>13} {'refused':>8}")
        for group in (False, True):
            for n in PROCESSES:
                with tempfile.TemporaryDirectory() as tmp:
                    flags = ["--store-group-commit" if group else "--no-store-group-commit"]
                    if cluster:
                        flags += [f"--store-url={cluster.create_database()}",
                                  f"--store-password-file={cluster.password_file(Path(tmp))}"]
                    enc, sign, refused = _process_rates(flags, Path(tmp) / "node", n, seconds)
                print(f"{n:9d} {'on' if group else 'off':>12} {enc:15.0f} {sign:13.0f} {refused:8d}", flush=True)
    finally:
        if cluster:
            cluster.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per variant")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per processes cell")
    parser.add_argument("--only-processes", action="store_true", help="only the processes table")
    args = parser.parse_args(argv)
    if args.only_processes:
        processes_table(args.seconds)
        return 0
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
    processes_table(args.seconds)
    return 0


if __name__ == "__main__":
    from kms.enclave.runtime import ensure_static_tls

    ensure_static_tls()
    raise SystemExit(main())
