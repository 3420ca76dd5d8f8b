"""`./dev profile`: where the instructions of one in-process ECALL go, phase by phase (valgrind's callgrind).

Run: `./dev profile` or `.venv/bin/python -m tests.bench.profile_enclave [--calls N] [--ops encrypt,...]`.
Each operation (Encrypt 1 KiB AES-256-GCM, Sign Ed25519, Sign ECDSA P-256, on the call ECALL, one thread, an
in-memory store, as tests/bench/bench_enclave.py measures them; batch-encrypt, one batch of 256 items of 32 bytes
as tests/bench/bench_kms_ops.py sends them, on the call ECALL; and session-encrypt: Encrypt 1 KiB in an
attested session with a domain, so audited, the SDK's TLS talking to session_feed in the same process, no
gRPC) runs under callgrind twice in fresh processes,
N and 2N calls; every figure is (inclusive instructions with 2N calls - with N calls) / N, so start-up, imports
and key creation cancel out. A phase is the inclusive cost of the functions that implement it (PHASES below);
phases nest (wiping and zeroed allocation happen inside the others), so they do not add up to the total.

Phases are attributed on the baseline variant (`make baseline`: the same sources, the enclave on the host
thread's stack, glibc's malloc and Debian's shared OpenSSL): on the build the ECALL and every OCALL switch
stacks with swapcontext, and callgrind's call graph charges what runs after a switch to the wrong caller. The
first line gives the whole call on both, so the stack switches and the heap arena show as their difference.

The image is mapped from a sealed memfd ("/memfd:kms-enclave-image (deleted)" in /proc/self/maps), a path
valgrind cannot open to read the image's symbols. When it may, the profile links that name at the file
system's root to build/kms_enclave.so for the duration of the run (same bytes: it is what was measured and
loaded) and removes it afterwards; without it the enclave's functions show as addresses and their phases as 0.
Instruction counts are deterministic (no timing noise), but they do not show memory bandwidth or cache misses:
a 64 KiB memset is a few thousand instructions and several microseconds.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from kms import paths

MEMFD_NAME = Path("/memfd:kms-enclave-image (deleted)")

ECALLS = ("_cffi_f_kms_bridge_call", "_cffi_f_kms_bridge_session_feed")
# (phase, functions whose inclusive costs add up to it, functions whose inclusive costs are taken off)
PHASES: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    ("whole call from Python, baseline", ("PROGRAM TOTALS",), ()),
    ("  Python: protobuf, cffi (+ SDK's TLS)", ("PROGRAM TOTALS",), ECALLS),
    ("  simulated CPU: EENTER/EEXIT", ECALLS, ("kms_enclave_entry",)),
    ("  ECALL edge: checks, copies, buffers", ("kms_enclave_entry",),
     ("kms_ecall_call_impl", "kms_ecall_session_feed_impl")),
    ("  TLS records in the enclave", ("SSL_read", "SSL_write"), ()),
    ("  the request path (request.c)", ("kms_request_run",), ()),
    ("    decode (nanopb, into the slot)", ("kms_slot_decode", "pb_decode"), ()),
    ("    cluster gate: log head, domain", ("kms_cluster_gate",), ()),
    ("    authorization", ("kms_authz_op", "kms_authz_key"), ()),
    ("    record cache (key lookup)", ("kms_keystore_acquire",), ()),
    ("    crypto (AES-GCM, sign, IV)", ("kms_aes_gcm_sealer_new", "kms_aes_gcm_seal_with", "kms_sign", "kms_random"),
     ()),
    ("    audit record (sign, OCALL)", ("kms_audit_record",), ()),
    ("  encode (nanopb)", ("pb_encode",), ()),
    ("  wiping (OPENSSL_cleanse, kms_wipe)", ("OPENSSL_cleanse", "kms_wipe"), ()),
    ("    the slot's wipe (walk + kms_wipe)", ("kms_slot_wipe",), ()),
    ("  zeroed allocation (calloc, anywhere)", ("calloc",), ()),
]

OPS = ("encrypt", "sign-ed25519", "sign-p256", "session-encrypt", "batch-encrypt")
LINE = re.compile(r"^\s*([\d,]+)\s+\([^)]*\)\s+(.*)$")


def image(variant: str) -> tuple[Path, Path]:
    """(enclave image, simulated CPU) of a variant: "build" or "baseline"."""
    build = paths.build_dir().resolve()
    if variant == "baseline":
        return build / "baseline" / "kms_enclave.so", build / "baseline" / "libkms_simcpu_baseline.so"
    return build / "kms_enclave.so", build / "libkms_simcpu.so"


def workload(op: str, calls: int, variant: str) -> None:
    """The profiled child: one in-memory enclave, one key, `calls` calls of one operation."""
    from kms.enclave.bridge import MemoryStore
    from kms.enclave.node import open_node
    from kms.proto.enclave.v1 import boundary_pb2 as pb

    so, simcpu = image(variant)
    if op == "session-encrypt":
        session_workload(calls, so, simcpu)
        return
    with tempfile.TemporaryDirectory() as tmp, open_node(f"{tmp}/node", store=MemoryStore(), image=so,
                                                         simcpu=simcpu) as enclave:
        if op in ("encrypt", "batch-encrypt"):
            key = enclave.call(pb.Request(create_key=pb.CreateKeyRequest(spec=pb.SYMMETRIC_DEFAULT,
                                                                         usage=pb.ENCRYPT_DECRYPT)))
            req = pb.Request(encrypt=pb.EncryptRequest(key_id=key.key_metadata.key_id, plaintext=os.urandom(1024)))
            if op == "batch-encrypt":  # tests.bench.bench_kms_ops's largest batch: 256 items of 32 bytes
                req = pb.Request(batch=pb.BatchRequest(operation=pb.BATCH_ENCRYPT, key_id=key.key_metadata.key_id,
                                                       items=[os.urandom(32)] * 256))
        else:
            spec, alg = (pb.ED25519, pb.ED25519_PURE) if op == "sign-ed25519" else (pb.ECC_NIST_P256,
                                                                                      pb.ECDSA_SHA_256)
            key = enclave.call(pb.Request(create_key=pb.CreateKeyRequest(spec=spec, usage=pb.SIGN_VERIFY)))
            req = pb.Request(sign=pb.SignRequest(key_id=key.key_metadata.key_id, message=b"m" * 32, algorithm=alg))
        for _ in range(calls):
            enclave.call(req)


def session_workload(calls: int, so: Path, simcpu: Path) -> None:
    """An attested session in process (the SDK's TLS over session_feed, no gRPC), a domain initialized over
    it, and `calls` audited Encrypt 1 KiB requests as its admin."""
    from kms.client.channel import SessionChannel
    from kms.client.credentials import Credentials
    from kms.enclave.bridge import Enclave, MemoryStore
    from kms.proto.enclave.v1 import boundary_pb2 as pb
    from kms.service.evidence import install_evidence
    from kms.sim.qe import SimQuotingEnclave
    from tests.auditor import auditor_public

    with tempfile.TemporaryDirectory() as tmp, Enclave(f"{tmp}/data", store=MemoryStore(), image=so,
                                                       simcpu=simcpu) as enclave:
        cert = install_evidence(enclave, SimQuotingEnclave.open(Path(tmp) / "data")).certificate
        sid = enclave.session_open()
        channel = SessionChannel(lambda data: enclave.session_feed(sid, data)[0], Credentials.generate("p"), cert)
        channel.call(pb.Request(init=pb.InitRequest(admin_name="profile", recovery_public_keys=[os.urandom(32)],
                                                    threshold=1, auditor_public_keys=auditor_public())))
        key = channel.call(pb.Request(create_key=pb.CreateKeyRequest(spec=pb.SYMMETRIC_DEFAULT,
                                                                     usage=pb.ENCRYPT_DECRYPT)))
        req = pb.Request(encrypt=pb.EncryptRequest(key_id=key.key_metadata.key_id, plaintext=os.urandom(1024)))
        for _ in range(calls):
            channel.call(req)


def inclusive(out: Path) -> dict[str, int]:
    """Inclusive instructions per function name (the largest where one name shows twice) and the total."""
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(out)],
                          capture_output=True, text=True, check=True).stdout
    costs: dict[str, int] = {}
    for line in text.splitlines():
        m = LINE.match(line)
        if m is None:
            continue
        cost, rest = int(m.group(1).replace(",", "")), m.group(2).strip()
        name = "PROGRAM TOTALS" if rest == "PROGRAM TOTALS" else rest.split(" [")[0].rsplit(":", 1)[-1]
        if "'" in name:  # a recursion level ('2): counted in the outer call already
            continue
        costs[name] = max(costs.get(name, 0), cost)
    return costs


def profile(op: str, calls: int, variant: str, tmp: Path) -> dict[str, int]:
    """{function: inclusive instructions per call} from two runs, `calls` and 2 x `calls`."""
    runs = []
    for n in (calls, 2 * calls):
        out = tmp / f"callgrind.{variant}.{op}.{n}"
        with image_name(image(variant)[0]):
            subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-m",
                            "tests.bench.profile_enclave", "--workload", op, "--calls", str(n), "--variant",
                            variant], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        runs.append(inclusive(out))
    return {name: (runs[1].get(name, 0) - runs[0].get(name, 0)) // calls for name in runs[1]}


@contextlib.contextmanager
def image_name(so: Path) -> Iterator[None]:
    """Let valgrind read the image's symbols under its memfd name while the block runs."""
    try:
        MEMFD_NAME.symlink_to(so)
    except OSError as exc:
        print(f"note: cannot link {MEMFD_NAME} ({exc.strerror}): the enclave's functions show as addresses")
        yield
        return
    try:
        yield
    finally:
        MEMFD_NAME.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="N: calls in the first run, 2N in the second")
    parser.add_argument("--ops", default=",".join(OPS), help=f"comma-separated, of {', '.join(OPS)}")
    parser.add_argument("--workload", choices=OPS, help=argparse.SUPPRESS)  # the profiled child
    parser.add_argument("--variant", default="build", choices=("build", "baseline"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.workload:
        workload(args.workload, args.calls, args.variant)
        return 0
    if shutil.which("valgrind") is None or shutil.which("callgrind_annotate") is None:
        print("valgrind is missing: install the Debian package `valgrind` (./dev profile does when root)")
        return 1
    if not image("baseline")[0].exists():
        print("the baseline variant is missing: run `make baseline`")
        return 1
    if MEMFD_NAME.is_symlink() or MEMFD_NAME.exists():
        print(f"{MEMFD_NAME} exists: another profile is running, or remove it")
        return 1
    ops = [op for op in args.ops.split(",") if op]
    with tempfile.TemporaryDirectory() as tmp:
        build = {op: profile(op, args.calls, "build", Path(tmp)) for op in ops}
        results = {op: profile(op, args.calls, "baseline", Path(tmp)) for op in ops}
    print(f"in-process ECALL, one thread: instructions per call (callgrind Ir, inclusive; "
          f"({2 * args.calls} calls - {args.calls} calls) / {args.calls}); phases on the baseline variant")
    print(f"{'phase':40}" + "".join(f"{op:>14}" for op in ops))
    print(f"{'whole call from Python, the build':40}" + "".join(f"{build[op]['PROGRAM TOTALS']:14,d}" for op in ops))
    for label, plus, minus in PHASES:
        row = [sum(results[op].get(f, 0) for f in plus) - sum(results[op].get(f, 0) for f in minus) for op in ops]
        print(f"{label:40}" + "".join(f"{v:14,d}" for v in row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
