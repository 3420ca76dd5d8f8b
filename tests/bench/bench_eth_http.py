"""Benchmark: Ethereum attestations per second through the Web3Signer-compatible HTTP API (an HTTP client ->
`kms validator eth serve` -> `kms serve` -> enclave), next to the bare SDK's eth_sign of the same attestations
(the baseline: what the HTTP layer adds is JSON -> SSZ, the validator-side watermark check and its durable write,
and one HTTP round trip).

Run: `./dev bench` or `.venv/bin/python -m tests.bench.bench_eth_http [--n N]`.
One `kms serve` on loopback with a fresh data directory; two keys of one signer principal (one per path, each
attestation a new target epoch: a guard write in the enclave, and on the HTTP path the signer's watermark file
written and fsync'd before the answer); HTTP over one kept-alive connection.
Figures depend on the machine and its load (2 shared cores here); compare the lines of one run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from kms.validator.eth.requests import parse
from tests.bench.bench_validator import measure
from tests.validator.eth_harness import EthServe, eth_key
from tests.validator.harness import Domain, KmsServer

GVR = bytes.fromhex("4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95")


def attestation(target: int) -> dict:
    return {"type": "ATTESTATION", "fork_info": {"fork": {"previous_version": "0x03000000",
            "current_version": "0x04000000", "epoch": "0"}, "genesis_validators_root": "0x" + GVR.hex()},
            "attestation": {"slot": str(target * 32), "index": "0", "beacon_block_root": "0x" + "11" * 32,
                            "source": {"epoch": str(target - 1), "root": "0x" + "22" * 32},
                            "target": {"epoch": str(target), "root": "0x" + "33" * 32}}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-eth-http-"))
    server = KmsServer(tmp / "data")
    try:
        domain = Domain(server, tmp)
        sdk_key, _ = eth_key(domain, GVR)
        _, http_pub = eth_key(domain, GVR)
        with server.client(domain.signer) as client:
            def sdk(i: int) -> None:
                req = parse(attestation(i), preset="mainnet", genesis_fork_version=bytes(4))
                client.eth_sign(sdk_key, req.message_type, req.ssz, req.fork_version, req.genesis_validators_root)

            sdk(1)  # warm the session
            rate, p50, p99 = measure(lambda i: sdk(1 + i), args.n)
        print(f"baseline: attestations via the SDK (eth_sign, one session): {rate:8.1f} sig/s  "
              f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
        serve = EthServe(domain, tmp / "signer").start()
        try:
            where = urlsplit(serve.url)
            conn = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
            path = f"/api/v1/eth2/sign/0x{http_pub.hex()}"

            def post(i: int) -> None:
                conn.request("POST", path, json.dumps(attestation(i)), {"Content-Type": "application/json"})
                resp = conn.getresponse()
                body = resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"{resp.status}: {body!r}")

            post(1)
            rate, p50, p99 = measure(lambda i: post(1 + i), args.n)
            print(f"attestations via the HTTP API (kms validator eth serve):   {rate:8.1f} sig/s  "
                  f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
            conn.close()
        finally:
            serve.stop()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
