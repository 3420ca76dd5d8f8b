"""Benchmark: in-process ECALLs (Encrypt 1 KiB AES-256-GCM, Sign/Verify Ed25519 and ECDSA P-256)
next to pyca/cryptography doing the same operations in the same process, with the ratio.

Run: `./dev bench` or `.venv/bin/python -m tests.bench.bench_enclave [--iterations N]`.
Prints ops/s, p50 and p99 latency per operation, and the process's peak RSS. Figures depend on
the machine; compare the two columns of one run, not runs on different machines.
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

from kms.enclave.bridge import MemoryStore
from kms.enclave.node import open_node
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, open_node(tmp, store=MemoryStore()) as enclave:
        ours, base = enclave_ops(enclave), pyca_ops()
        print(f"in-process ECALL vs pyca/cryptography, {args.iterations} iterations each, one thread")
        print(f"{'operation':26} {'enclave ops/s':>13} {'p50 µs':>8} {'p99 µs':>8}   "
              f"{'pyca ops/s':>11} {'p50 µs':>8} {'p99 µs':>8}   {'ratio':>6}")
        for name, fn in ours.items():
            e_ops, e50, e99 = measure(fn, args.iterations)
            b_ops, b50, b99 = measure(base[name], args.iterations)
            print(f"{name:26} {e_ops:13.0f} {e50:8.1f} {e99:8.1f}   {b_ops:11.0f} {b50:8.1f} {b99:8.1f}   "
                  f"{e_ops / b_ops:6.2f}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak RSS {rss / 1024:.1f} MiB (ratio = enclave ops/s / pyca ops/s; simulated platform)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
