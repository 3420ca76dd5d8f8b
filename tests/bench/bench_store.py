"""Benchmark: the record stores and group commit, in one table.

- Store writes/s: N threads, each a durable conditional write of its own record (a put through the group
  committer, as OCALLs from N ECALL threads arrive), and the transactions that took them.
- Encrypt 1 KiB ops/s through the real `kms serve` with N client sessions (each call is one audited
  enclave operation: one audit entry made durable before the answer).

Each for SQLite and PostgreSQL (a throwaway local cluster, fsync and synchronous_commit on), with group
commit on and off, at 1, 4 and 16 concurrent clients. Run: `./dev bench` or
`.venv/bin/python -m tests.bench.bench_store [--seconds S]`. Figures depend on the machine and its load
(the CPUs are shared by clients, server and database): compare the lines of one run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

from kms.service.store import BaseStore, SqliteStore
from tests.pg import PgCluster, pg_bin

LEVELS = (1, 4, 16)


def store_rate(store: BaseStore, threads: int, seconds: float) -> tuple[float, float]:
    """(writes/s, writes per transaction)."""
    stop, counts = time.monotonic() + seconds, [0] * threads
    c = store.committer
    b0, o0 = c.batches, c.ops

    def run(n: int) -> None:
        rev = 0
        while time.monotonic() < stop:
            store.put(f"t{threads}-{n}", rev, rev + 1, b"x" * 600)
            rev += 1
        counts[n] = rev

    pool = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(counts) / seconds, (c.ops - o0) / max(1, c.batches - b0)


def _open(backend: str, group: bool, cluster: PgCluster | None, data: Path) -> BaseStore:
    if backend == "sqlite":
        return SqliteStore(data, group_commit=group)
    from kms.service.store.postgres import PostgresStore

    assert cluster is not None
    return PostgresStore(data, cluster.create_database(), password=cluster.password, pool_size=16,
                         group_commit=group)


def encrypt_rates(flags: list[str], data: Path, seconds: float) -> list[float]:
    """Encrypt 1 KiB calls/s at each level, through one real server."""
    from kms.client import Credentials, KmsClient
    from tests.auditor import auditor_public
    from tests.bench.bench_kms_ops import _phase
    from tests.e2e.conftest import client_for
    from tests.e2e.server import ServerProcess

    server = ServerProcess(data, "--housekeeping-interval-s=0", *flags, log_level="info")
    clients: list[KmsClient] = []
    try:
        creds = Credentials.generate("bench")
        clients.append(client_for(server, creds, new_domain=True))
        clients[0].init([os.urandom(32)], 1, auditor_public_keys=auditor_public())
        clients += [client_for(server, creds) for _ in range(max(LEVELS) - 1)]
        key, plaintext = clients[0].create_key().key_id, os.urandom(1024)
        return [_phase(clients[:n], lambda c: c.encrypt(key, plaintext), seconds, 0.3)[0] for n in LEVELS]
    finally:
        for c in clients:
            c.close()
        server.stop()


def _cells(backend: str, group: bool, cluster: PgCluster | None, tmp: Path,
           seconds: float) -> list[tuple[int, float, float, float]]:
    with _open(backend, group, cluster, tmp / "store") as store:
        writes = [store_rate(store, n, seconds) for n in LEVELS]
    flags = ["--store-group-commit" if group else "--no-store-group-commit"]
    if backend == "postgres":
        assert cluster is not None
        flags += [f"--store-url={cluster.create_database()}", f"--store-password-file={cluster.password_file(tmp)}"]
    enc = encrypt_rates(flags, tmp / "server", seconds)
    return [(n, w, per, e) for n, (w, per), e in zip(LEVELS, writes, enc, strict=True)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="measured seconds per cell (default 2)")
    args = parser.parse_args(argv)
    bin_dir = pg_bin()
    cluster = PgCluster(bin_dir) if bin_dir else None
    try:
        backends = ["sqlite"] + (["postgres"] if cluster else [])
        print(f"{os.cpu_count()} CPUs shared by clients, server and database; {args.seconds:g} s per cell"
              + ("" if cluster else "; PostgreSQL not installed: its rows are missing"))
        print(f"{'backend':9} {'group':6} {'clients':>7} {'writes/s':>9} {'w/txn':>6} {'Encrypt 1KiB/s':>15}")
        for backend in backends:
            for group in (False, True):
                with tempfile.TemporaryDirectory() as tmp:
                    rows = _cells(backend, group, cluster, Path(tmp), args.seconds)
                for clients, writes, per_txn, enc in rows:
                    print(f"{backend:9} {'on' if group else 'off':6} {clients:7d} {writes:9.0f} {per_txn:6.1f} "
                          f"{enc:15.0f}", flush=True)
        print("(writes: a durable conditional put each; Encrypt: one audit entry made durable per call; the enclave "
              "queues entries under its audit lock and waits outside it, so concurrent calls share flushes)")
    finally:
        if cluster:
            cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
