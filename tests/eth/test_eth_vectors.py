"""The ethereum/bls12-381-tests release vectors (sign, verify, G1/G2 deserialisation, and the unreleased
invalid-flag cases) through the enclave's own BLS code (enclave/src/eth_bls.c over the blst the enclave links),
built as build/test/eth_runner; the sign vectors' secrets also through the real enclave: imported, their public
keys and signatures checked under py_ecc."""

import json
import subprocess
from pathlib import Path

import pytest
from py_ecc.bls import G2ProofOfPossession as bls

from kms import errors
from tests.eth.conftest import vectors

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def runner(build: Path) -> Path:
    subprocess.run(["make", "-s", "build/test/eth_runner"], cwd=REPO, check=True)
    return REPO / "build" / "test" / "eth_runner"


def _hex(s: str) -> str:
    s = s[2:] if s.startswith("0x") else s
    return s or "-"


def _lines(folder: Path) -> tuple[list[str], dict[str, object]]:
    lines, expected = [], {}
    for handler, op in (("sign", "sign"), ("verify", "verify"), ("deserialization_G1", "g1"),
                        ("deserialization_G2", "g2")):
        for f in sorted((folder / handler).glob("*.json")) if (folder / handler).is_dir() else []:
            case = json.loads(f.read_text())
            i, cid = case["input"], f"{handler}/{f.stem}"
            if op == "sign":
                lines.append(f"sign {cid} {_hex(i['privkey'])} {_hex(i['message'])}")
                expected[cid] = "invalid" if case["output"] is None else _hex(case["output"])
            elif op == "verify":
                lines.append(f"verify {cid} {_hex(i['pubkey'])} {_hex(i['message'])} {_hex(i['signature'])}")
                expected[cid] = "true" if case["output"] else "false"
            else:
                lines.append(f"{op} {cid} {_hex(i['pubkey' if op == 'g1' else 'signature'])}")
                expected[cid] = "true" if case["output"] else "false"
    return lines, expected


@pytest.mark.parametrize("folder", ["bls", "bls-master-extra"])
def test_bls_vectors_through_the_enclave_code(runner, folder):
    lines, expected = _lines(vectors("eth2") / folder)
    assert len(expected) >= (6 if folder == "bls-master-extra" else 40)
    out = subprocess.run([str(runner)], input="\n".join(lines) + "\n", capture_output=True, text=True, check=True)
    got = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert got == expected


def test_sign_vector_secrets_through_the_enclave(admin):
    for f in sorted((vectors("eth2") / "bls" / "sign").glob("*.json")):
        case = json.loads(f.read_text())
        secret = bytes.fromhex(_hex(case["input"]["privkey"]))
        if case["output"] is None:
            with pytest.raises(errors.InvalidKey):
                admin.eth_import_secret(secret, genesis_validators_root=bytes(32))
            continue
        info = admin.eth_import_secret(secret, genesis_validators_root=bytes(32))
        pk = admin.eth_public_key(info.key_id)
        assert pk == bls.SkToPk(int.from_bytes(secret, "big"))
        res = admin.eth_sign(info.key_id, "SYNC_COMMITTEE_MESSAGE", bytes.fromhex(_hex(case["input"]["message"])),
                             b"\0\0\0\0", bytes(32))
        assert bls.Verify(pk, res.signing_root, res.signature)


def test_real_deposits_through_the_enclave_code(runner):
    """4 real testnet deposits: the enclave's DepositMessage root is theirs, and their signatures verify over the
    signing root it computes (DOMAIN_DEPOSIT with their fork version and a zero root)."""
    folder = vectors("eth2") / "signing" / "deposit_data"
    deposits = [d for name in ("medalla", "pyrmont")
                for d in json.loads((folder / f"deposit_data-{name}.json").read_text())]
    assert len(deposits) == 4
    lines = [f"root d{i} 12 {d['pubkey']}{d['withdrawal_credentials']}{d['amount'].to_bytes(8, 'little').hex()} "
             f"{d['fork_version']} {'00' * 32}" for i, d in enumerate(deposits)]
    out = subprocess.run([str(runner)], input="\n".join(lines) + "\n", capture_output=True, text=True, check=True)
    roots = {cid: rest.split() for cid, rest in (line.split(" ", 1) for line in out.stdout.splitlines())}
    verify = []
    for i, d in enumerate(deposits):
        object_root, signing_root = roots[f"d{i}"]
        assert object_root == d["deposit_message_root"]
        verify.append(f"verify v{i} {d['pubkey']} {signing_root} {d['signature']}")
    out = subprocess.run([str(runner)], input="\n".join(verify) + "\n", capture_output=True, text=True, check=True)
    assert out.stdout.split() == [w for i in range(4) for w in (f"v{i}", "true")]
