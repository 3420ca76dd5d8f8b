"""Benchmark: in-process ECALLs (Encrypt 1 KiB AES-256-GCM, Sign/Verify Ed25519 and ECDSA P-256),
the enclave as built next to a `before` image in the same process, and pyca/cryptography and SoftHSM2
(through PKCS#11, tests/bench/softhsm.py) doing the same. `before` is build/reference/ (`make reference`:
another revision, by default where this branch left main, built; its image on this tree's simulated CPU) or, with
--before baseline, the baseline variant (build/baseline/: dynamic Debian OpenSSL, glibc malloc, the
enclave on the host thread's stack; `make baseline`).

Run: `./dev bench` or `.venv/bin/python -m tests.bench.bench_enclave [--iterations N] [--rounds R] [--before B]`.
The two enclave variants, pyca and SoftHSM2 are measured in alternating rounds (before, after, pyca,
SoftHSM2, before, ...) and each figure is the median of its rounds, so drift on a shared machine hits all
alike. Prints ops/s and
p50 latency per operation, the change of `after` against `before` in p50 latency (the median
is robust to the scheduler's outliers on a shared machine; ops/s moves with them), the ratios of
both to pyca and of `after` to SoftHSM2 with the issue's goals, and the process's peak RSS.
Figures depend on the machine; compare the columns of one run, not runs on different machines.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kms import paths
from kms.enclave.bridge import MemoryStore
from kms.enclave.node import open_node
from kms.enclave.runtime import ensure_static_tls
from kms.proto.enclave.v1 import boundary_pb2 as pb
from tests.bench import softhsm


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


def rounds(fns: list[Callable[[], object]], iterations: int, count: int) -> list[tuple[float, float]]:
    """Alternate the fns for `count` rounds (a, b, c, a, b, c, ...); (ops/s, p50 µs), medians of each one's rounds."""
    results: list[list[tuple[float, float, float]]] = [[] for _ in fns]
    for _ in range(count):
        for fn, out in zip(fns, results, strict=True):
            out.append(measure(fn, iterations))
    med = statistics.median
    return [(med(r[0] for r in out), med(r[1] for r in out)) for out in results]


VARIANTS = {  # --before: (description, image under build/, its simulated CPU or None: this tree's)
    "reference": ("the revision `make reference` built (default: where this branch left main)",
                  "reference/src/build/kms_enclave.so", None),
    "baseline": ("build/baseline (dynamic OpenSSL, glibc malloc, host stack)", "baseline/kms_enclave.so",
                 "baseline/libkms_simcpu_baseline.so"),
}
# The in-process goals: the build's ops/s against pyca's, in one run.
GOALS = {"encrypt 1KiB AES-256-GCM": 0.5, "sign Ed25519": 0.85, "sign ECDSA P-256": 0.85}


def main(argv: list[str] | None = None) -> int:
    ensure_static_tls()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds per variant")
    parser.add_argument("--before", choices=sorted(VARIANTS), default="reference",
                        help="the image measured as `before` (default: reference)")
    args = parser.parse_args(argv)
    described, image, simcpu = VARIANTS[args.before]
    build = paths.build_dir()
    if not (build / image).with_suffix(".sigstruct").exists():
        print(f"the {args.before} image is missing: run `make {args.before}` (expected {build / image})")
        return 1
    softhsm_missing = softhsm.missing()
    with tempfile.TemporaryDirectory() as tmp, open_node(f"{tmp}/after", store=MemoryStore()) as after, \
            open_node(f"{tmp}/before", store=MemoryStore(), image=build / image,
                      **({"simcpu": build / simcpu} if simcpu else {})) as before, \
            contextlib.ExitStack() as stack:
        ours, old, pyca = enclave_ops(after), enclave_ops(before), pyca_ops()
        data, msg = os.urandom(1024), b"a 32-byte message to be signed!!"
        hsm = {} if softhsm_missing else stack.enter_context(softhsm.softhsm_ops(Path(tmp), data, msg))
        revision = build / "reference" / "revision"
        revision = revision.read_text().strip()[:12] if args.before == "reference" and revision.exists() else ""
        print(f"in-process ECALLs, one thread: before = {described} {revision}, after = build (this tree); "
              f"median of {args.rounds} alternating rounds of {args.iterations} calls; pyca/cryptography and "
              f"SoftHSM2 (PKCS#11, python-pkcs11) in the same process")
        if softhsm_missing:
            print(f"  SoftHSM2 column empty: {softhsm_missing}")
        print(f"{'operation':26} {'before ops/s':>12} {'after ops/s':>12} {'before p50':>10} {'after p50':>10} "
              f"{'change':>7} {'pyca p50':>9} {'hsm p50':>9}   {'before/pyca':>11} {'after/pyca':>10} {'goal':>5} "
              f"{'after/hsm':>9}")
        for name, fn in ours.items():
            measured = rounds([old[name], fn, pyca[name], *([hsm[name]] if hsm else [])], args.iterations, args.rounds)
            (b_ops, b50), (a_ops, a50), (_, p50) = measured[:3]
            h50 = measured[3][1] if hsm else 0.0
            change = (a50 / b50 - 1) * 100
            goal = f"{GOALS[name]:.2f}" if name in GOALS else ""
            print(f"{name:26} {b_ops:12.0f} {a_ops:12.0f} {b50:10.1f} {a50:10.1f} {change:+6.1f}% {p50:9.1f} "
                  f"{h50:9.1f}   {p50 / b50:11.2f} {p50 / a50:10.2f} {goal:>5} "
                  f"{h50 / a50 if hsm else float('nan'):9.2f}")
        print("p50 in µs; change = after p50 / before p50 - 1 (negative: faster); x/pyca = pyca p50 / x p50, the "
              "ratio of speeds at the median (ops/s move with the shared machine's outliers, the median much "
              "less); goal: after/pyca at least this (issue 16); after/hsm above 1: ahead of SoftHSM2")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak RSS {rss / 1024:.1f} MiB (both enclaves, pyca and SoftHSM2 in one process; simulated platform)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
