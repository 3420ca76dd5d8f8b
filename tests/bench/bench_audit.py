"""Benchmark: the cost of sealing audit bodies to the auditors, per audited operation, in one run.

In process, one thread, the enclave as built: a 32-byte Encrypt on the host's call path, audited (one signed
record appended per call to an in-memory store, so the figures are the enclave's own work, not an fsync),
in domains that differ only in their audit bodies:
- not audited: an enclave with a domain key but no initialized domain (no audit key: no record at all);
- clear bodies: a domain initialized with `audit_bodies_in_clear_insecure` (the record as before bodies were
  sealed: encode, Ed25519 sign, append);
- sealed, 1 auditor and sealed, 8 auditors: the epoch design (AES-256-GCM per record under the epoch key;
  the epoch key HPKE-sealed to every auditor once per KMS_AUDIT_EPOCH_RECORDS = 1024 records).
The variants are measured in alternating rounds and each figure is the median of its rounds' p50.
For the design not taken (HPKE per record per auditor: an ephemeral X25519 key and a DH, eight HKDF calls),
the line below the table estimates it with pyca/cryptography's HPKE sealing one body (same suite; pyca's
own OpenSSL, not the enclave's): per auditor, per record.

Run: `./dev bench` or `.venv/bin/python -m tests.bench.bench_audit [--iterations N] [--rounds R]`.
Figures depend on the machine: compare the rows of one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import x25519

from kms.audit import SUITE, AuditorKey
from kms.client.channel import SessionChannel
from kms.client.credentials import Credentials
from kms.client.recovery import raw_public
from kms.enclave.bridge import Enclave, MemoryStore
from kms.enclave.node import open_node
from kms.enclave.runtime import ensure_static_tls
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.service.evidence import install_evidence
from kms.sim.qe import SimQuotingEnclave

BODY = 240  # about the largest encoded AuditBody (operation, two key ids, principal, two hashes)


def p50_us(fn: Callable[[], object], iterations: int) -> float:
    lat = []
    for _ in range(iterations):
        t = time.perf_counter_ns()
        fn()
        lat.append(time.perf_counter_ns() - t)
    return statistics.median(lat) / 1000


def _domain(data: Path, **init: object) -> Enclave:
    """An enclave whose domain was initialized in an attested session (init_kw: its auditors)."""
    enclave = Enclave(data, store=MemoryStore())
    cert = install_evidence(enclave, SimQuotingEnclave.open(data)).certificate
    sid = enclave.session_open()
    admin = SessionChannel(lambda d: enclave.session_feed(sid, d)[0], Credentials.generate("bench"), cert)
    admin.call(pb.Request(init=pb.InitRequest(admin_name="bench", threshold=1, recovery_public_keys=[
        raw_public(x25519.X25519PrivateKey.generate())], **init)))
    enclave.session_close(sid)
    return enclave


def _encrypt_call(enclave: Enclave) -> Callable[[], object]:
    kid = enclave.call(pb.Request(create_key=pb.CreateKeyRequest(spec=pb.SYMMETRIC_DEFAULT, usage=pb.ENCRYPT_DECRYPT))
                       ).key_metadata.key_id
    req = pb.Request(encrypt=pb.EncryptRequest(key_id=kid, plaintext=os.urandom(32)))
    return lambda: enclave.call(req)


def _auditors(n: int) -> list[bytes]:
    return [AuditorKey(x25519.X25519PrivateKey.generate()).public for _ in range(n)]


def main(argv: list[str] | None = None) -> int:
    ensure_static_tls()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds per variant")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        enclaves = {
            "not audited (no domain)": open_node(Path(tmp) / "none", store=MemoryStore()),
            "clear bodies (no encryption)": _domain(Path(tmp) / "clear", audit_bodies_in_clear_insecure=True),
            "sealed, 1 auditor": _domain(Path(tmp) / "one", auditor_public_keys=_auditors(1)),
            "sealed, 8 auditors": _domain(Path(tmp) / "eight", auditor_public_keys=_auditors(8)),
        }
        try:
            calls = {name: _encrypt_call(e) for name, e in enclaves.items()}
            for fn in calls.values():  # warm up (and open the first epochs)
                for _ in range(200):
                    fn()
            figures: dict[str, list[float]] = {name: [] for name in calls}
            for _ in range(args.rounds):
                for name, fn in calls.items():
                    figures[name].append(p50_us(fn, args.iterations))
        finally:
            for e in enclaves.values():
                e.close()
    p50 = {name: statistics.median(v) for name, v in figures.items()}
    clear = p50["clear bodies (no encryption)"]
    print(f"audited Encrypt (32 B) on the host path, in process, one thread, in-memory store: median of "
          f"{args.rounds} alternating rounds of the p50 of {args.iterations} calls")
    print(f"{'audit bodies':32} {'p50 µs':>8} {'vs clear':>10}")
    for name, value in p50.items():
        delta = "" if name == "clear bodies (no encryption)" else f"{value - clear:+8.1f} µs"
        print(f"{name:32} {value:8.1f} {delta:>10}")
    auditor = x25519.X25519PrivateKey.generate().public_key()
    body = os.urandom(BODY)
    hpke = p50_us(lambda: SUITE.encrypt(body, auditor, info=b"enclave-kms audit epoch v1" + bytes(24)),
                  args.iterations)
    print(f"per-record HPKE instead (estimate: pyca's HPKE seal of a {BODY}-byte body): +{hpke:.1f} µs per "
          f"auditor per record; the epoch design pays it once per auditor per 1024 records")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
