"""The signer's TOML configuration, its identity key file, and CometBFT/tmkms key and state files."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from kms.commands.common import connection_parent
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.validator import config as vconfig
from kms.validator.keyfiles import KeyFileError, load_or_create_identity, parse_state, parse_validator_key

GOOD = """
[kms]
server = "127.0.0.1:7443"
credentials = "creds"
mrsigner = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
mrenclave = [
  "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
  "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
]
simulated_root = "/data/sgx-sim/root-ca.pem"
allow_simulation_insecure = true

[signer]
metrics_listen = "127.0.0.1:9465"

[[validator]]
chain_id = "cosmoshub-4"
key_id = "k1"
addr = "tcp://0123456789abcdef0123456789abcdef01234567@127.0.0.1:26658"

[[validator]]
chain_id = "osmosis-1"
key_id = "k2"
addr = "unix:///run/privval.sock"
secret_key = "other.key"
sign_extensions = false
"""


def test_config_maps_onto_the_cli_flags(tmp_path: Path) -> None:
    path = tmp_path / "v.toml"
    path.write_text(GOOD)
    cfg = vconfig.load(path)
    args = connection_parent().parse_args(list(cfg.kms_argv))
    assert args.server == "127.0.0.1:7443" and args.credentials == tmp_path / "creds"
    assert args.mrenclave == [bytes.fromhex("bb" * 32), bytes.fromhex("cc" * 32)]  # checked as they are parsed
    assert args.mrsigner == bytes.fromhex("aa" * 32)
    assert args.allow_simulation_insecure and not args.allow_debug_insecure
    a, b = cfg.validators
    assert (a.addr.scheme, a.addr.host, a.addr.port, a.addr.node_id) == ("tcp", "127.0.0.1", 26658,
                                                                         "0123456789abcdef0123456789abcdef01234567")
    assert a.secret_key == tmp_path / "validator-identity.key" and a.sign_extensions
    assert (b.addr.scheme, b.addr.path, b.secret_key, b.sign_extensions) == ("unix", "/run/privval.sock",
                                                                             tmp_path / "other.key", False)
    assert cfg.metrics_listen == "127.0.0.1:9465"
    assert cfg.state_dir == tmp_path / "validator-state"  # the watermark files: next to the config by default
    path.write_text(GOOD.replace("[signer]", '[signer]\nstate_dir = "/var/lib/kms-validator"'))
    assert vconfig.load(path).state_dir == Path("/var/lib/kms-validator")


@pytest.mark.parametrize(("change", "message"), [
    (('allow_simulation_insecure = true', 'allow_everything = true'), "unknown setting"),
    (('addr = "unix:///run/privval.sock"', 'addr = "http://x:1"'), "scheme"),
    (('addr = "unix:///run/privval.sock"', 'addr = "tcp://nohost"'), "host:port"),
    (('addr = "unix:///run/privval.sock"', 'addr = "tcp://zz@h:1"'), "node id"),
    (('key_id = "k2"', 'key_id = "k1"'), "entry only"),
    (('sign_extensions = false', 'protocol = "v1"'), "not supported"),
    (('chain_id = "osmosis-1"', 'chain_id = ""'), "chain_id is required"),
    (('[signer]', '[signer]\nbackoff_max_s = -1'), "backoff_max_s"),
    (('[signer]', '[sign]'), "unknown table"),
    (('[signer]', '[signer]\nstate_dir = ""'), "state_dir"),
    (('[signer]', '[signer]\nstate_dir = 1'), "state_dir"),
])
def test_bad_configs_are_refused(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    path = tmp_path / "v.toml"
    path.write_text(GOOD.replace(*change))
    with pytest.raises(vconfig.ValidatorConfigError, match=message):
        vconfig.load(path)


def test_identity_key_is_created_0600_and_refused_when_readable(tmp_path: Path) -> None:
    path = tmp_path / "id.key"
    key = load_or_create_identity(path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    again = load_or_create_identity(path)
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    assert again.public_key().public_bytes(*raw) == key.public_key().public_bytes(*raw)
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="readable by others"):
        load_or_create_identity(path)


def cometbft_ed25519_key(seed: bytes) -> str:
    pub = ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return json.dumps({"address": hashlib.sha256(pub).digest()[:20].hex().upper(),
                       "pub_key": {"type": "tendermint/PubKeyEd25519", "value": base64.b64encode(pub).decode()},
                       "priv_key": {"type": "tendermint/PrivKeyEd25519",
                                    "value": base64.b64encode(seed + pub).decode()}})


def cometbft_secp256k1_key(scalar: bytes) -> str:
    pub = ec.derive_private_key(int.from_bytes(scalar, "big"), ec.SECP256K1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    return json.dumps({"pub_key": {"type": "tendermint/PubKeySecp256k1", "value": base64.b64encode(pub).decode()},
                       "priv_key": {"type": "tendermint/PrivKeySecp256k1",
                                    "value": base64.b64encode(scalar).decode()}})


def test_key_files() -> None:
    seed = bytes(range(32))
    key = parse_validator_key(cometbft_ed25519_key(seed))
    assert (key.spec, key.private_key, len(key.public_key)) == (pb.ED25519, seed, 32)
    assert parse_validator_key(base64.b64encode(seed).decode()).public_key == key.public_key  # tmkms seed file
    k1 = parse_validator_key(cometbft_secp256k1_key(b"\x01" * 32))
    assert (k1.spec, len(k1.public_key)) == (pb.ECC_SECG_P256K1, 33)
    doc = json.loads(cometbft_ed25519_key(seed))
    doc["pub_key"]["value"] = base64.b64encode(b"\x00" * 32).decode()
    with pytest.raises(KeyFileError, match="does not match"):
        parse_validator_key(json.dumps(doc))
    doc = json.loads(cometbft_ed25519_key(seed))
    doc["address"] = "00" * 20
    with pytest.raises(KeyFileError, match="address"):
        parse_validator_key(json.dumps(doc))
    with pytest.raises(KeyFileError, match="unsupported"):
        parse_validator_key(json.dumps({"priv_key": {"type": "bls12_381", "value": ""}}))


def test_state_files() -> None:
    s = parse_state(json.dumps({"height": "42", "round": 1, "step": 3, "signature": base64.b64encode(b"s").decode(),
                                "signbytes": "0A0B"}))
    assert (s.height, s.round, s.step, s.sign_bytes, s.signature) == (42, 1, 3, b"\x0a\x0b", b"s")
    tmkms = parse_state(json.dumps({"height": "7", "round": "0", "step": 2, "block_id": None}))
    assert (tmkms.height, tmkms.round, tmkms.step, tmkms.sign_bytes) == (7, 0, 2, b"")
    for bad in ({"height": "-1"}, {"height": "x"}, {"height": 1, "step": 4}, {"round": 0}, {"height": True}):
        with pytest.raises(KeyFileError):
            parse_state(json.dumps(bad))
