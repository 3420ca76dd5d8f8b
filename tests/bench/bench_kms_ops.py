"""Benchmark: batch Encrypt and batch Sign (items/s at batch sizes 1, 16, 256) next to single-item Encrypt and
Sign calls, and GenerateDataKey next to Encrypt, through the real `kms serve` over loopback.

Run: `./dev bench` or `.venv/bin/python -m tests.bench.bench_kms_ops [--seconds S] [--concurrency C]`.
C client threads, one KmsClient (one attested session) each, one call in flight per session; every
phase runs for --seconds after a short warm-up, so the whole run is bounded. Items are 32 bytes
(plaintexts, SHA-256 digests for ECDSA P-256). Figures depend on the machine: compare the rows of one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from kms.attestation import AttestationPolicy, TrustAnchor
from kms.client import Credentials, KmsClient
from tests.auditor import auditor_public

ITEM = 32


def _phase(clients: list[KmsClient], fn: Callable[[KmsClient], object], seconds: float,
           warmup: float) -> tuple[float, float, float]:
    """(calls/s, p50 ms, p99 ms) with one thread per client."""
    barrier = threading.Barrier(len(clients))
    latencies: list[list[int]] = [[] for _ in clients]

    def run(i: int) -> None:
        barrier.wait()
        start = time.monotonic()
        warm_end, end = start + warmup, start + warmup + seconds
        while (now := time.monotonic()) < end:
            t = time.perf_counter_ns()
            fn(clients[i])
            if now >= warm_end:
                latencies[i].append(time.perf_counter_ns() - t)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lat = [x for per in latencies for x in per]
    q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [lat[0] if lat else 0] * 99
    return len(lat) / seconds, q[49] / 1e6, q[98] / 1e6


def main(argv: list[str] | None = None) -> int:
    from tests.e2e.server import ServerProcess

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per phase (default 3)")
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--concurrency", type=int, default=4, help="sessions, one thread each (default 4)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp) / "data", "--housekeeping-interval-s=0", log_level="info")
        try:
            creds = Credentials.generate("bench")
            policy = AttestationPolicy.build(mrsigner=server.mrsigner, allow_simulation_insecure=True)
            anchor = TrustAnchor.load(server.root_pem.read_bytes(), simulated=True)
            clients = [KmsClient(server.api, credentials=creds, policy=policy, trust_anchor=anchor, new_domain=True)]
            try:
                admin = clients[0]
                admin.init([os.urandom(32)], 1, auditor_public_keys=auditor_public())
                clients += [KmsClient(server.api, credentials=creds, policy=policy, trust_anchor=anchor)
                            for _ in range(args.concurrency - 1)]
                aes, p256 = admin.create_key().key_id, admin.create_key("ECC_NIST_P256").key_id
                data = os.urandom(ITEM)
                digest = admin.digest_for("ECDSA_SHA_256", data)
                phases: list[tuple[str, int, Callable[[KmsClient], object]]] = [
                    ("Encrypt (single)", 1, lambda c: c.encrypt(aes, data)),
                    *((f"batch Encrypt x{n}", n, lambda c, n=n: c.batch_encrypt(aes, [data] * n))
                      for n in (1, 16, 256)),
                    ("Sign P-256 digest (single)", 1, lambda c: c.sign(p256, digest=digest)),
                    *((f"batch Sign P-256 x{n}", n, lambda c, n=n: c.batch_sign(p256, digests=[digest] * n))
                      for n in (1, 16, 256)),
                    ("GenerateDataKey 32 B", 1, lambda c: c.generate_data_key(aes, ITEM)),
                    ("GenerateDataKey no plaintext", 1, lambda c: c.generate_data_key(aes, ITEM,
                                                                                       with_plaintext=False)),
                ]
                print(f"kms serve over loopback, {args.concurrency} sessions (one thread and one call in flight "
                      f"each), {args.seconds:g} s per phase, {ITEM}-byte items, {os.cpu_count()} CPUs shared by "
                      "clients and server")
                print(f"{'operation':30} {'items/call':>10} {'calls/s':>9} {'items/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
                for name, items, fn in phases:
                    calls, p50, p99 = _phase(clients, fn, args.seconds, args.warmup)
                    print(f"{name:30} {items:10d} {calls:9.0f} {calls * items:9.0f} {p50:8.2f} {p99:8.2f}",
                          flush=True)
                print("(each call is also one audited enclave operation: one signed audit record and one fsync)")
            finally:
                for c in clients:
                    c.close()
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
