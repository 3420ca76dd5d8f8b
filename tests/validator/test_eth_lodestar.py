"""Lodestar's external-signer client (@lodestar/validator 1.5.1's externalSignerGetKeys and
externalSignerPostSignature, run in Node.js from tests/validator/eth_node, installed with `npm ci` from its
committed lock file) against the real `kms validator eth serve` and the real `kms serve` on loopback. Lodestar signs
an Altair block (full: this side computes the body root), a Capella block (a header), an attestation and a RANDAO
reveal; the script computes each signing root with @lodestar/types' SSZ (an implementation independent of
remerkleable and of the enclave's) and verifies each signature over it with @chainsafe/blst; here py_ecc verifies
them again. A second block at the signed slot is refused with 412.

Without node and npm this skips with the reason, except under CI=true, where it fails."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from py_ecc.bls import G2ProofOfPossession as bls

from tests.node_packages import NODE_ENV, node_with_packages
from tests.validator.eth_harness import EthServe, eth_key
from tests.validator.harness import Domain

NODE_DIR = Path(__file__).resolve().parent / "eth_node"
GVR = bytes.fromhex("4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95")  # mainnet's


@pytest.fixture(scope="module")
def node() -> str:
    return node_with_packages(NODE_DIR)


@pytest.fixture(scope="module")
def signer(domain: Domain, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EthServe, bytes]]:
    _, pubkey = eth_key(domain, GVR)
    serve = EthServe(domain, tmp_path_factory.mktemp("eth-lodestar")).start()
    try:
        yield serve, pubkey
    finally:
        assert serve.stop() == 0


def test_lodestar_external_signer(node: str, signer: tuple[EthServe, bytes]) -> None:
    serve, pubkey = signer
    proc = subprocess.run([node, "lodestar.mjs", serve.url, "0x" + pubkey.hex(), "0x" + GVR.hex()], cwd=NODE_DIR,
                          capture_output=True, text=True, timeout=120, env=NODE_ENV)
    assert proc.returncode == 0, proc.stderr + "\n".join(serve.lines[-20:])
    out = json.loads(proc.stdout)
    assert "0x" + pubkey.hex() in out["keys"]
    assert [s["name"] for s in out["signed"]] == ["altair block", "capella block", "attestation", "randao reveal"]
    for s in out["signed"]:
        assert s["verified"] is True, s
        assert bls.Verify(pubkey, bytes.fromhex(s["signing_root"][2:]), bytes.fromhex(s["signature"][2:])), s
    assert out["slashable"]["refused"] is True and "slot 100" in out["slashable"]["error"], out["slashable"]
    decisions = [(d["type"], d.get("slot"), d.get("epoch"), d["outcome"]) for d in serve.decisions()]
    assert decisions == [("BLOCK_V2", 40, 1, "signed"), ("BLOCK_V2", 100, 3, "signed"),
                         ("ATTESTATION", 100, 3, "signed"), ("RANDAO_REVEAL", None, 3, "signed"),
                         ("BLOCK_V2", 100, 3, "refused")], decisions   # "refused" is the 412 (http.outcome_of)
