"""Benchmark: validator vote signatures per second, through privval mode (test peer -> `kms validator run` over
SecretConnection -> `kms serve` -> enclave guard) and through the SDK directly (ValidatorLink.sign in a session).

Run: `./dev bench` or `.venv/bin/python -m tests.bench.bench_validator [--votes N]`.
Both paths run against one real `kms serve` on loopback with a fresh data directory; every vote is a new
height (a new guard state persisted with a fully synced SQLite write before the signature is released; on the
privval path also the signer's watermark file, written and fsync'd before the node gets the signature, whose
cost alone is printed beneath).
Figures depend on the machine; compare the lines of one run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.validator import canonical
from kms.validator.kms_link import ValidatorLink
from kms.validator.watermark import Watermark, WatermarkFile
from tests.validator.harness import Domain, KmsServer, SignerProcess
from tests.validator.node_peer import PREVOTE, NodePeer, vote


def measure(fn: Callable[[int], object], n: int) -> tuple[float, float, float]:
    """(signatures/s, p50 ms, p99 ms) over n calls fn(1..n)."""
    lat = []
    start = time.perf_counter()
    for i in range(1, n + 1):
        t = time.perf_counter_ns()
        fn(i)
        lat.append(time.perf_counter_ns() - t)
    total = time.perf_counter() - start
    q = statistics.quantiles(lat, n=100)
    return n / total, q[49] / 1e6, q[98] / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=1000)
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-validator-"))
    server = KmsServer(tmp / "data")
    try:
        domain = Domain(server, tmp)
        sdk_key, pv_key = domain.create_key("bench-sdk"), domain.create_key("bench-privval")
        with server.client(domain.signer) as client:
            link = ValidatorLink(client)

            def sdk(i: int) -> None:
                sb = canonical.vote_sign_bytes("bench-sdk", vote(i, 0, PREVOTE, 1))
                link.sign(sdk_key, "bench-sdk", pb.VOTE, sb)

            sdk(10**6)  # warm the session
            rate, p50, p99 = measure(lambda i: sdk(10**6 + i), args.votes)
        print(f"validator votes via SDK (ValidatorLink.sign, one session):   {rate:8.1f} sig/s  "
              f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
        peer = NodePeer()
        signer = SignerProcess(domain.config(tmp / "v.toml", [
            {"chain_id": "bench-privval", "key_id": pv_key, "addr": peer.addr}]))
        try:
            conn = peer.accept()
            conn.sign_vote("bench-privval", vote(10**6, 0, PREVOTE, 1))

            def privval(i: int) -> None:
                r = conn.sign_vote("bench-privval", vote(10**6 + i, 0, PREVOTE, 1))
                if r.HasField("error"):
                    raise RuntimeError(r.error.description)

            rate, p50, p99 = measure(privval, args.votes)
            print(f"validator votes via privval (peer->signer->server, tcp SC): {rate:8.1f} sig/s  "
                  f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
        finally:
            signer.stop()
            peer.close()
        # The signer's part of the two-sided guard: one durable watermark write per new position (included in the
        # privval figure above), measured alone on the same file system as the signer's state directory.
        wm_file = WatermarkFile(tmp / "wm-bench", "bench-privval", pv_key)
        try:
            rate, p50, p99 = measure(lambda i: wm_file.write(Watermark(i, 0, 2, bytes(32))), args.votes)
        finally:
            wm_file.close()
        print(f"  of which the signer's watermark write (rename+2 fsync):     {rate:8.1f} /s     "
              f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
