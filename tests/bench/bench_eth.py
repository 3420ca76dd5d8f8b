"""Benchmark: Ethereum attestations signed per second through eth_sign (SDK -> `kms serve` -> enclave: SSZ root,
signing root, slashing guard persisted, BLS12-381 signature), next to CometBFT Ed25519 votes through
validator_sign on the same server and session kind (the baseline), and unguarded BLS signatures (RANDAO reveals:
no guard write) to show what the guard's persisted write costs.

Run: `./dev bench` or `.venv/bin/python -m tests.bench.bench_eth [--n N]`.
Each attestation has a new target epoch (a new guard state written, fully synced, before the signature leaves).
Figures depend on the machine and its load (2 shared cores here); compare the lines of one run.
"""

import argparse
import tempfile
from pathlib import Path

from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.validator import canonical
from kms.validator.kms_link import ValidatorLink
from tests.bench.bench_validator import measure
from tests.eth.test_eth_slashing import FORK, GVR, vote
from tests.validator.harness import Domain, KmsServer
from tests.validator.node_peer import PREVOTE
from tests.validator.node_peer import vote as cmt_vote


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-eth-"))
    server = KmsServer(tmp / "data")
    try:
        domain = Domain(server, tmp)
        cmt_key = domain.create_key("bench-cmt")
        with server.client(domain.admin) as admin:
            eth_key = admin.eth_generate_key(GVR).key_id
            admin.create_grant(eth_key, domain.signer.principal_id, ["*"])
        with server.client(domain.signer) as client:
            link = ValidatorLink(client)

            def ed25519(i: int) -> None:
                sign_bytes = canonical.vote_sign_bytes("bench-cmt", cmt_vote(i, 0, PREVOTE, 1))
                link.sign(cmt_key, "bench-cmt", pb.VOTE, sign_bytes)

            def attestation(i: int) -> None:
                client.eth_sign(eth_key, "ATTESTATION", vote(i, i + 1), FORK, GVR)

            def randao(i: int) -> None:
                client.eth_sign(eth_key, "RANDAO_REVEAL", i.to_bytes(8, "little"), FORK, GVR)

            for fn, label in ((ed25519, "baseline: CometBFT Ed25519 votes (validator_sign)"),
                              (attestation, "Ethereum attestations (eth_sign, BLS, guard)   "),
                              (randao, "Ethereum RANDAO reveals (eth_sign, BLS, no guard)")):
                fn(10**6)  # warm
                rate, p50, p99 = measure(lambda i, f=fn: f(10**6 + i), args.n)
                print(f"{label}: {rate:8.1f} sig/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
