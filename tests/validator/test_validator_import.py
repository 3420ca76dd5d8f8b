"""`kms validator import|create|status|import-state` against the real server; nothing goes to an unverified enclave."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from kms import errors
from kms.client import ClientState
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.validator import canonical
from kms.validator.kms_link import ValidatorLink
from tests.validator.checks import verify
from tests.validator.harness import REPO, Domain, SignerProcess
from tests.validator.node_peer import PRECOMMIT, PREVOTE, vote
from tests.validator.test_validator_config import cometbft_ed25519_key, cometbft_secp256k1_key

C = "chain-import"


def kms_validator(domain: Domain, creds: Path, *argv: str, mrsigner: str | None = None) -> subprocess.CompletedProcess:
    assert domain.server.proc is not None
    cmd = [sys.executable, "-m", "kms", "validator", *argv, "--server", domain.server.api, "--credentials", str(creds),
           "--mrsigner", mrsigner or domain.server.proc.mrsigner.hex(),
           "--simulated-root", str(domain.server.data_dir / "sgx-sim" / "root-ca.pem"),
           "--allow-simulation-insecure", "--output", "json"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMS_")}
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60, env=env)


@pytest.fixture(scope="module")
def admin_dir(domain: Domain, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("admin") / "creds"
    domain.admin.save(d)
    state = ClientState.for_credentials(d)  # as `kms credentials pin --domain` does
    state.pin(domain.domain_id)
    state.save()
    return d


def test_import_cometbft_files_keeps_the_old_signers_history(domain: Domain, admin_dir: Path, tmp_path: Path) -> None:
    seed = hashlib.sha256(b"an old file signer").digest()
    old = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    last = canonical.vote_sign_bytes(C, vote(100, 0, PRECOMMIT, 5))
    (tmp_path / "key.json").write_text(cometbft_ed25519_key(seed))
    (tmp_path / "state.json").write_text(json.dumps({
        "height": "100", "round": 0, "step": 3, "signature": base64.b64encode(old.sign(last)).decode(),
        "signbytes": last.hex().upper()}))
    out = kms_validator(domain, admin_dir, "import", "--key", str(tmp_path / "key.json"), "--state",
                        str(tmp_path / "state.json"), "--chain-id", C)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["pub_key_type"] == "tendermint/PubKeyEd25519" and (info["height"], info["step"]) == (100, "precommit")
    pub = base64.b64decode(info["pub_key"])
    with domain.server.client(domain.admin) as c:
        link = ValidatorLink(c)
        again = link.sign(info["key_id"], C, pb.VOTE, last)
        assert again.reused and again.signature == old.sign(last)  # the old signer's own signature
        for conflicting in (vote(100, 0, PRECOMMIT, 6), vote(99, 0, PREVOTE, 5)):
            with pytest.raises(errors.DoubleSignRefused):
                link.sign(info["key_id"], C, pb.VOTE, canonical.vote_sign_bytes(C, conflicting))
        nxt = canonical.vote_sign_bytes(C, vote(101, 0, PREVOTE, 7))
        verify(pub, link.sign(info["key_id"], C, pb.VOTE, nxt).signature, nxt)
    status = kms_validator(domain, admin_dir, "status", "--key-id", info["key_id"])
    assert status.returncode == 0 and json.loads(status.stdout)["height"] == 101
    export = json.loads(status.stdout)["export"]
    (tmp_path / "export.b64").write_text(export)
    ok = kms_validator(domain, admin_dir, "import-state", "--export", str(tmp_path / "export.b64"))
    assert ok.returncode == 0 and json.loads(ok.stdout)["height"] == 101  # an authentic export: accepted
    doctored = pb.ValidatorStateExport.FromString(base64.b64decode(export))
    doctored.height = 1
    (tmp_path / "doctored.b64").write_text(base64.b64encode(doctored.SerializeToString()).decode())
    bad = kms_validator(domain, admin_dir, "import-state", "--export", str(tmp_path / "doctored.b64"))
    assert bad.returncode == 2 and "not authentic" in bad.stderr


def test_import_secp256k1_and_create(domain: Domain, admin_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "key.json").write_text(cometbft_secp256k1_key(hashlib.sha256(b"k1").digest()))
    (tmp_path / "state.json").write_text(json.dumps({"height": "0", "round": 0, "step": 0}))
    out = kms_validator(domain, admin_dir, "import", "--key", str(tmp_path / "key.json"), "--state",
                        str(tmp_path / "state.json"), "--chain-id", C)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["pub_key_type"] == "tendermint/PubKeySecp256k1" and info["spec"] == "ECC_SECG_P256K1"
    created = kms_validator(domain, admin_dir, "create", "--chain-id", C, "--spec", "secp256k1")
    assert created.returncode == 0, created.stderr
    assert len(base64.b64decode(json.loads(created.stdout)["pub_key"])) == 33
    user = kms_validator(domain, domain.signer_dir, "create", "--chain-id", C)
    assert user.returncode == 2 and "PERMISSION_DENIED" in user.stderr  # only admins create validator keys


def test_import_refuses_an_unverified_enclave_and_sends_nothing(domain: Domain, admin_dir: Path,
                                                                 tmp_path: Path) -> None:
    assert domain.server.proc is not None
    (tmp_path / "key.json").write_text(cometbft_ed25519_key(b"\x07" * 32))
    (tmp_path / "state.json").write_text(json.dumps({"height": "5", "round": 0, "step": 2}))
    sessions = domain.server.proc.session_rpcs()
    out = kms_validator(domain, admin_dir, "import", "--key", str(tmp_path / "key.json"), "--state",
                        str(tmp_path / "state.json"), "--chain-id", C, mrsigner="00" * 32)
    assert out.returncode == 2 and "NOT trusted, nothing was sent" in out.stderr
    assert domain.server.proc.session_rpcs() == sessions  # no session was opened, so no key left the host
    broken = tmp_path / "broken.json"
    broken.write_text(cometbft_ed25519_key(b"\x07" * 32).replace("PrivKeyEd25519", "PrivKeyBls"))
    out = kms_validator(domain, admin_dir, "import", "--key", str(broken), "--state", str(tmp_path / "state.json"),
                        "--chain-id", C)
    assert out.returncode == 1 and "unsupported validator key type" in out.stderr


def test_signer_refuses_to_start_for_an_untrusted_kms_or_an_unusable_key(domain: Domain, tmp_path: Path) -> None:
    with domain.server.client(domain.admin) as c:  # a key the signer principal was never granted
        ungranted = ValidatorLink(c).create(C).key_id
    for key_id, text in ((ungranted, "cannot start"), ("no-such-key", "cannot start")):
        config = domain.config(tmp_path / "v.toml", [{"chain_id": C, "key_id": key_id, "addr": "tcp://127.0.0.1:9"}])
        signer = SignerProcess(config)
        assert signer.proc.wait(60) == 2 and signer.wait_for(text), signer.lines
    config = domain.config(tmp_path / "v.toml", [{"chain_id": C, "key_id": ungranted, "addr": "tcp://127.0.0.1:9"}])
    config.write_text(config.read_text().replace(f'mrsigner = "{domain.server.proc.mrsigner.hex()}"',
                                                 f'mrsigner = "{"00" * 32}"'))
    signer = SignerProcess(config)
    assert signer.proc.wait(60) == 2 and signer.wait_for("NOT trusted, nothing was sent"), signer.lines
