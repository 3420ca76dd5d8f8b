"""`kms validator eth create|import-keystore|public-key|list|status|export-slashing|import-slashing` as an admin
runs them (`python -m kms`), against real `kms serve` processes: the module's server (default enclave heap) and a
second one of another domain with the heap scrypt keystores need. Signatures are checked with py_ecc."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from py_ecc.bls import G2ProofOfPossession as bls

from kms import errors
from kms.client import ClientState
from kms.client.eth_formats import normalize_password
from tests.conftest import vectors_dir
from tests.e2e.server import ServerProcess
from tests.validator.harness import REPO, Domain, KmsServer

GVR = bytes.fromhex("4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95")  # mainnet's
FORK = bytes.fromhex("04000000")
VECTOR_PUB = "0x9612d7a727c9d0a22e185a1c768478dfe919cada9266988cb32359c11f2b7b27f4ae4040902382ae2910c15e2b420d07"
PASSWORD = "\U0001d531\U0001d522\U0001d530\U0001d531\U0001d52d\U0001d51e\U0001d530\U0001d530\U0001d534\U0001d52c" \
           "\U0001d52f\U0001d521\U0001f511"  # the EIP-2335 vectors' (vectors/eth2/eip2335/README.md)


class BigHeapServer(KmsServer):
    """`kms serve` with the enclave heap an n=2^18 scrypt keystore needs (docs/ethereum-keys.md)."""

    def start(self) -> None:
        self.proc = ServerProcess(self.data_dir, f"--listen={self.api}", "--enclave-heap-mib=384", log_level="info")


def kms_eth(domain: Domain, creds: Path, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    assert domain.server.proc is not None
    cmd = [sys.executable, "-m", "kms", "validator", "eth", *argv, "--server", domain.server.api, "--credentials",
           str(creds), "--mrsigner", domain.server.proc.mrsigner.hex(),
           "--simulated-root", str(domain.server.data_dir / "sgx-sim" / "root-ca.pem"),
           "--allow-simulation-insecure", "--output", "json"]
    base = {k: v for k, v in os.environ.items() if not k.startswith("KMS_")}
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=180, env={**base, **(env or {})},
                          stdin=subprocess.DEVNULL)


def _admin_dir(domain: Domain, where: Path) -> Path:
    domain.admin.save(where)
    state = ClientState.for_credentials(where)  # as `kms credentials pin --domain` does
    state.pin(domain.domain_id)
    state.save()
    return where


@pytest.fixture(scope="module")
def admin_dir(domain: Domain, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _admin_dir(domain, tmp_path_factory.mktemp("eth-admin") / "creds")


@pytest.fixture(scope="module")
def second(build: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Domain, Path]]:
    """A second server, of another domain, with enclave_heap_mib = 384."""
    server = BigHeapServer(tmp_path_factory.mktemp("eth-second") / "data")
    try:
        domain = Domain(server, tmp_path_factory.mktemp("eth-second-domain"))
        yield domain, _admin_dir(domain, tmp_path_factory.mktemp("eth-second-admin") / "creds")
    finally:
        server.stop()


@pytest.fixture(scope="module")
def keystores() -> Path:
    return vectors_dir("eth2", "eip2335")


def _ok(out: subprocess.CompletedProcess) -> Any:
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _randao_root(epoch: int) -> bytes:
    """compute_signing_root(Epoch, DOMAIN_RANDAO), from the consensus specs' definitions."""
    fork_data_root = hashlib.sha256(FORK.ljust(32, b"\0") + GVR).digest()
    domain = bytes.fromhex("02000000") + fork_data_root[:28]
    return hashlib.sha256(epoch.to_bytes(8, "little").ljust(32, b"\0") + domain).digest()


def _bls_keys(domain: Domain, creds: Path) -> list[dict]:
    return _ok(kms_eth(domain, creds, "list"))


def test_create_public_key_sign_list_status(domain: Domain, admin_dir: Path) -> None:
    created = _ok(kms_eth(domain, admin_dir, "create", "--genesis-validators-root", "0x" + GVR.hex(),
                          "--description", "cli key"))
    assert created["chain_id"] == "0x" + GVR.hex() and created["allow_voluntary_exit"] is False
    shown = _ok(kms_eth(domain, admin_dir, "public-key", "--key-id", created["key_id"]))
    assert shown["public_key"] == created["public_key"] and len(bytes.fromhex(shown["public_key"][2:])) == 48
    pub = bytes.fromhex(shown["public_key"][2:])
    with domain.server.client(domain.admin) as c:
        result = c.eth_sign(created["key_id"], "RANDAO_REVEAL", (7).to_bytes(8, "little"), FORK, GVR)
        with pytest.raises(errors.KmsError):  # VOLUNTARY_EXIT was not allowed at creation
            c.eth_sign(created["key_id"], "VOLUNTARY_EXIT", bytes(16), FORK, GVR)
    assert result.signing_root == _randao_root(7) and bls.Verify(pub, _randao_root(7), result.signature)
    listed = {k["key_id"]: k for k in _bls_keys(domain, admin_dir)}
    assert listed[created["key_id"]]["public_key"] == shown["public_key"]
    assert listed[created["key_id"]]["chain_id"] == "0x" + GVR.hex()
    status = _ok(kms_eth(domain, admin_dir, "status", "--key-id", created["key_id"]))
    assert (status["min_block_slot"], status["min_source_epoch"], status["min_target_epoch"]) == (0, 0, 0)


def test_keystore_wrong_password_imports_nothing(domain: Domain, admin_dir: Path, keystores: Path,
                                                 tmp_path: Path) -> None:
    (tmp_path / "other").write_text("otherpassword\n")  # opens bls_keystore_2.json, not bls_keystore.json
    before = _bls_keys(domain, admin_dir)
    out = kms_eth(domain, admin_dir, "import-keystore", "--keystore", str(keystores / "web3signer-acceptance" /
                  "bls_keystore.json"), "--password-file", str(tmp_path / "other"), "--genesis-validators-root",
                  GVR.hex())
    assert out.returncode == 1 and "wrong password" in out.stderr and "bls_keystore.json" in out.stderr
    assert _bls_keys(domain, admin_dir) == before
    # two keystores, the second refused: the first, imported, is disabled again (it never signs half-imported)
    out = kms_eth(domain, admin_dir, "import-keystore", "--keystore", str(keystores / "web3signer-acceptance" /
                  "bls_keystore_2.json"), "--keystore", str(keystores / "web3signer-acceptance" / "bls_keystore.json"),
                  "--password-env", "ETH_TEST_PASSWORD", "--genesis-validators-root", GVR.hex(),
                  env={"ETH_TEST_PASSWORD": "otherpassword"})
    assert out.returncode == 1 and "wrong password" in out.stderr and "disabled the keys" in out.stderr
    new = [k for k in _bls_keys(domain, admin_dir) if k not in before]
    assert len(new) == 1 and new[0]["state"] == "DISABLED" and new[0]["public_key"].startswith("0xa46bf940")
    twice = kms_eth(domain, admin_dir, "import-keystore", "--keystore", str(keystores / "pbkdf2_keystore.json"),
                    "--keystore", str(keystores / "scrypt_keystore.json"), "--password-file", str(tmp_path / "other"),
                    "--genesis-validators-root", GVR.hex())
    assert twice.returncode == 1 and "same key" in twice.stderr  # checked before anything is sent
    no_password = kms_eth(domain, admin_dir, "import-keystore", "--keystore", str(keystores / "pbkdf2_keystore.json"),
                          "--genesis-validators-root", GVR.hex())
    assert no_password.returncode == 1 and "--password-file" in no_password.stderr  # stdin is no terminal


def test_scrypt_keystore_names_the_heap_it_needs(domain: Domain, admin_dir: Path, keystores: Path,
                                                 tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(PASSWORD)
    before = _bls_keys(domain, admin_dir)
    out = kms_eth(domain, admin_dir, "import-keystore", "--keystore", str(keystores / "scrypt_keystore.json"),
                  "--password-file", str(tmp_path / "pw"), "--genesis-validators-root", GVR.hex())
    assert out.returncode == 2 and "enclave_heap_mib >= 384" in out.stderr, out.stderr
    assert _bls_keys(domain, admin_dir) == before


def test_interchange_round_trip_to_another_domain(domain: Domain, admin_dir: Path, second: tuple[Domain, Path],
                                                  keystores: Path, tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(PASSWORD + "\n")  # control characters are dropped (EIP-2335)
    assert normalize_password(PASSWORD + "\n") == normalize_password(PASSWORD)
    imported = _ok(kms_eth(domain, admin_dir, "import-keystore", "--keystore", str(keystores / "pbkdf2_keystore.json"),
                           "--password-file", str(tmp_path / "pw"), "--genesis-validators-root", GVR.hex()))
    assert [k["public_key"] for k in imported] == [VECTOR_PUB]
    key_id = imported[0]["key_id"]
    again = kms_eth(domain, admin_dir, "import-keystore", "--keystore", str(keystores / "pbkdf2_keystore.json"),
                    "--password-file", str(tmp_path / "pw"), "--genesis-validators-root", GVR.hex())
    assert again.returncode == 1 and key_id in again.stderr and "already" in again.stderr  # one guard per key
    with domain.server.client(domain.admin) as c:
        c.eth_slashing_check(key_id, "BLOCK_V2", b"\x01" * 32, slot=100)
        c.eth_slashing_check(key_id, "ATTESTATION", b"\x02" * 32, source_epoch=5, target_epoch=6)
    status = _ok(kms_eth(domain, admin_dir, "status", "--key-id", key_id))
    assert status["min_block_slot"] > 100 and status["min_target_epoch"] > 6
    _ok(kms_eth(domain, admin_dir, "export-slashing", "--key-id", key_id, "--out", str(tmp_path / "i.json")))
    interchange = json.loads((tmp_path / "i.json").read_text())
    assert interchange["metadata"]["genesis_validators_root"] == "0x" + GVR.hex()

    other, other_admin = second
    there = _ok(kms_eth(other, other_admin, "import-keystore", "--keystore", str(keystores / "scrypt_keystore.json"),
                        "--password-file", str(tmp_path / "pw"), "--genesis-validators-root", GVR.hex()))
    there_id = there[0]["key_id"]
    doctored = {**interchange, "metadata": {**interchange["metadata"], "genesis_validators_root": "0x" + "22" * 32}}
    (tmp_path / "other-chain.json").write_text(json.dumps(doctored))
    refused = kms_eth(other, other_admin, "import-slashing", "--file", str(tmp_path / "other-chain.json"))
    assert refused.returncode == 1 and "refused" in refused.stderr and there_id in refused.stderr
    assert _ok(kms_eth(other, other_admin, "status", "--key-id", there_id))["min_block_slot"] == 0
    merged = _ok(kms_eth(other, other_admin, "import-slashing", "--file", str(tmp_path / "i.json")))
    assert merged == [{"public_key": VECTOR_PUB, "key_id": there_id, "status": "merged"}]
    moved = _ok(kms_eth(other, other_admin, "status", "--key-id", there_id))
    assert {k: moved[k] for k in ("min_block_slot", "min_source_epoch", "min_target_epoch")} == \
        {k: status[k] for k in ("min_block_slot", "min_source_epoch", "min_target_epoch")}
    with other.server.client(other.admin) as c, pytest.raises(errors.SlashingProtectionRefused):
        c.eth_slashing_check(there_id, "BLOCK_V2", b"\x03" * 32, slot=100)  # a second block at the old slot


def test_import_keystore_with_its_history(second: tuple[Domain, Path], keystores: Path, tmp_path: Path) -> None:
    other, other_admin = second
    pub = json.loads((keystores / "web3signer-acceptance" / "bls_keystore_2.json").read_text())["pubkey"]
    history = {"metadata": {"interchange_format_version": "5", "genesis_validators_root": "0x" + GVR.hex()},
               "data": [{"pubkey": "0x" + pub.removeprefix("0x"), "signed_blocks": [{"slot": "50"}],
                         "signed_attestations": [{"source_epoch": "3", "target_epoch": "4"}]}]}
    (tmp_path / "history.json").write_text(json.dumps(history))
    (tmp_path / "pw").write_text("otherpassword")
    flags = ("import-keystore", "--keystore", str(keystores / "web3signer-acceptance" / "bls_keystore_2.json"),
             "--password-file", str(tmp_path / "pw"), "--slashing-protection", str(tmp_path / "history.json"))
    wrong_chain = kms_eth(other, other_admin, *flags, "--genesis-validators-root", "33" * 32)
    assert wrong_chain.returncode == 1 and "not 0x" + "33" * 32 in wrong_chain.stderr
    assert not [k for k in _bls_keys(other, other_admin) if k["public_key"] == "0x" + pub.removeprefix("0x")]
    done = _ok(kms_eth(other, other_admin, *flags, "--genesis-validators-root", GVR.hex()))
    assert done[0]["slashing_protection"] is True
    status = _ok(kms_eth(other, other_admin, "status", "--key-id", done[0]["key_id"]))
    assert status["min_block_slot"] > 50 and status["min_target_epoch"] > 4
