"""Benchmark: in-process ECALLs (Encrypt 1 KiB AES-256-GCM, Sign/Verify Ed25519 and ECDSA P-256),
the enclave as built (static OpenSSL, jemalloc heap arena inside ELRANGE, TCS stacks) next to the
baseline variant in the same process (build/baseline/: dynamic Debian OpenSSL, glibc malloc, the
enclave on the host thread's stack; `make baseline`), and pyca/cryptography doing the same.

Run: `./dev bench` or `.venv/bin/python -m tests.bench.bench_enclave [--iterations N] [--rounds R]`.
The two enclave variants are measured in alternating rounds (before, after, before, ...) and each
figure is the median of its rounds, so drift on a shared machine hits both alike. Prints ops/s and
p50 latency per operation and the change of `after` against `before` in p50 latency (the median
is robust to the scheduler's outliers on a shared machine; ops/s moves with them), and the
process's peak RSS.
Figures depend on the machine; compare the columns of one run, not runs on different machines.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kms import paths
from kms.enclave.bridge import MemoryStore
from kms.enclave.node import open_node
from kms.enclave.runtime import ensure_static_tls
from kms.proto.enclave.v1 import boundary_pb2 as pb


def measure(fn: Callable[[], object], iterations: int) -> tuple[float, float, float]:
    """(ops/s, p50 µs, p99 µs) over `iterations` calls after a short warm-up."""
    for _ in range(min(200, iterations)):
        fn()
    lat = []
    start = time.perf_counter()
    for _ in range(iterations):
        t = time.perf_counter_ns()
        fn()
        lat.append(time.perf_counter_ns() - t)
    total = time.perf_counter() - start
    q = statistics.quantiles(lat, n=100)
    return iterations / total, q[49] / 1000, q[98] / 1000


def enclave_ops(enclave) -> dict[str, Callable[[], object]]:
    def create(spec: int, usage: int) -> str:
        return enclave.call(pb.Request(create_key=pb.CreateKeyRequest(spec=spec, usage=usage))).key_metadata.key_id

    aes, ed, p256 = (create(pb.SYMMETRIC_DEFAULT, pb.ENCRYPT_DECRYPT), create(pb.ED25519, pb.SIGN_VERIFY),
                     create(pb.ECC_NIST_P256, pb.SIGN_VERIFY))
    data, msg = os.urandom(1024), b"a 32-byte message to be signed!!"
    enc = pb.Request(encrypt=pb.EncryptRequest(key_id=aes, plaintext=data))
    s_ed = pb.Request(sign=pb.SignRequest(key_id=ed, message=msg, algorithm=pb.ED25519_PURE))
    s_p = pb.Request(sign=pb.SignRequest(key_id=p256, message=msg, algorithm=pb.ECDSA_SHA_256))
    sig_ed = enclave.call(s_ed).sign.signature
    sig_p = enclave.call(s_p).sign.signature
    v_ed = pb.Request(verify=pb.VerifyRequest(key_id=ed, message=msg, algorithm=pb.ED25519_PURE, signature=sig_ed))
    v_p = pb.Request(verify=pb.VerifyRequest(key_id=p256, message=msg, algorithm=pb.ECDSA_SHA_256, signature=sig_p))

    def call(req: pb.Request) -> Callable[[], object]:
        return lambda: enclave.call(req)

    return {"encrypt 1KiB AES-256-GCM": call(enc), "sign Ed25519": call(s_ed), "sign ECDSA P-256": call(s_p),
            "verify Ed25519": call(v_ed), "verify ECDSA P-256": call(v_p)}


def pyca_ops() -> dict[str, Callable[[], object]]:
    aes = AESGCM(AESGCM.generate_key(256))
    ed, p256 = ed25519.Ed25519PrivateKey.generate(), ec.generate_private_key(ec.SECP256R1())
    data, msg = os.urandom(1024), b"a 32-byte message to be signed!!"
    sig_ed, sig_p = ed.sign(msg), p256.sign(msg, ec.ECDSA(hashes.SHA256()))
    ed_pub, p_pub = ed.public_key(), p256.public_key()
    return {
        "encrypt 1KiB AES-256-GCM": lambda: aes.encrypt(os.urandom(12), data, None),
        "sign Ed25519": lambda: ed.sign(msg),
        "sign ECDSA P-256": lambda: p256.sign(msg, ec.ECDSA(hashes.SHA256())),
        "verify Ed25519": lambda: ed_pub.verify(sig_ed, msg),
        "verify ECDSA P-256": lambda: p_pub.verify(sig_p, msg, ec.ECDSA(hashes.SHA256())),
    }


def rounds(fn_a: Callable[[], object], fn_b: Callable[[], object], iterations: int,
           count: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """Alternate a and b for `count` rounds; ((ops/s, p50 µs) median of a's rounds, the same for b)."""
    a, b = [], []
    for _ in range(count):
        a.append(measure(fn_a, iterations))
        b.append(measure(fn_b, iterations))
    med = statistics.median
    return (med(r[0] for r in a), med(r[1] for r in a)), (med(r[0] for r in b), med(r[1] for r in b))


def main(argv: list[str] | None = None) -> int:
    ensure_static_tls()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds per variant")
    args = parser.parse_args(argv)
    base = paths.build_dir() / "baseline"
    if not (base / "kms_enclave.sigstruct").exists():
        print(f"the baseline variant is missing: run `make baseline` (expected {base})")
        return 1
    with tempfile.TemporaryDirectory() as tmp, open_node(f"{tmp}/after", store=MemoryStore()) as after, \
            open_node(f"{tmp}/before", store=MemoryStore(), image=base / "kms_enclave.so",
                      simcpu=base / "libkms_simcpu_baseline.so") as before:
        ours, old, pyca = enclave_ops(after), enclave_ops(before), pyca_ops()
        print(f"in-process ECALLs, one thread: before = build/baseline (dynamic OpenSSL, glibc malloc, host stack), "
              f"after = build (static OpenSSL, jemalloc arena in ELRANGE, TCS stacks); median of {args.rounds} "
              f"alternating rounds of {args.iterations} calls")
        print(f"{'operation':26} {'before ops/s':>12} {'after ops/s':>12}   "
              f"{'before p50 µs':>13} {'after p50 µs':>12} {'change':>8}   {'pyca ops/s':>10}")
        worst = 0.0
        for name, fn in ours.items():
            (b_ops, b50), (a_ops, a50) = rounds(old[name], fn, args.iterations, args.rounds)
            p_ops, _, _ = measure(pyca[name], args.iterations)
            change = (a50 / b50 - 1) * 100
            worst = max(worst, change)
            print(f"{name:26} {b_ops:12.0f} {a_ops:12.0f}   {b50:13.1f} {a50:12.1f} {change:+7.1f}%   {p_ops:10.0f}")
        print(f"change = after p50 / before p50 - 1 (positive: slower); largest: {worst:+.1f}% (budget: +10%)")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak RSS {rss / 1024:.1f} MiB (both enclaves and pyca in one process; simulated platform)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
