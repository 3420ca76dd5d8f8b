"""Every EIP-3076 interchange test (../shared/vectors/eip3076) against the enclave's slashing protection, through a
real server: a fresh set of keys per test (the interop validators' secrets: the tests' pubkeys), each step's
interchange imported with eth_slashing_import, then each attempted block and attestation run through
eth_slashing_check (the guard eth_sign uses, with the test's signing root) and accepted or refused as the test's
`should_succeed` (EIP-3076's minimal strategy) says. Export round-trips: what the enclave exports, imported into
fresh keys, refuses everything the exporting keys refuse."""

import hashlib
import json

import pytest
from py_ecc.optimized_bls12_381 import curve_order

from kms import errors
from kms.client import EthFormatError, KmsClient
from tests.eth.conftest import vectors


def interop_secret(index: int) -> bytes:
    """The interop validators' secret keys (consensus specs' mocked start), whose pubkeys the tests use."""
    sk = int.from_bytes(hashlib.sha256(index.to_bytes(32, "little")).digest(), "little") % curve_order
    return sk.to_bytes(32, "big")


def cases() -> list:
    folder = vectors("eip3076") / "tests" / "generated"
    return sorted(folder.glob("*.json"))


def _keys(admin: KmsClient, gvr: bytes) -> dict[bytes, str]:
    out = {}
    for i in range(3):
        info = admin.eth_import_secret(interop_secret(i), genesis_validators_root=gvr)
        out[admin.eth_public_key(info.key_id)] = info.key_id
    return out


def _attempt(admin: KmsClient, keys: dict[bytes, str], kind: str, a: dict) -> bool:
    key_id = keys[bytes.fromhex(a["pubkey"][2:])]
    root = bytes.fromhex(a.get("signing_root", "0x" + "00" * 32)[2:])
    try:
        if kind == "block":
            admin.eth_slashing_check(key_id, "BLOCK_V2", root, slot=int(a["slot"]))
        else:
            admin.eth_slashing_check(key_id, "ATTESTATION", root, source_epoch=int(a["source_epoch"]),
                                     target_epoch=int(a["target_epoch"]))
    except errors.SlashingProtectionRefused:
        return False
    return True


def run_case(admin: KmsClient, test: dict) -> int:
    gvr = bytes.fromhex(test["genesis_validators_root"][2:])
    keys = _keys(admin, gvr)
    checked = 0
    for n, step in enumerate(test["steps"]):
        try:
            admin.eth_slashing_import(step["interchange"], keys)
            imported = True
        except (errors.InvalidRequest, EthFormatError):
            imported = False
        assert imported == step["should_succeed"], f"{test['name']} step {n}: import"
        if not imported:
            continue
        for kind, attempts in (("block", step["blocks"]), ("attestation", step["attestations"])):
            for a in attempts:
                assert _attempt(admin, keys, kind, a) == a["should_succeed"], f"{test['name']} step {n}: {kind} {a}"
                checked += 1
    return checked


def test_every_interchange_test(admin):
    files = cases()
    assert len(files) == 38
    checked = sum(run_case(admin, json.loads(f.read_text())) for f in files)
    assert checked == 150


def test_export_round_trip(admin):
    gvr = bytes(32)
    keys = _keys(admin, gvr)
    key_id = next(iter(keys.values()))
    admin.eth_slashing_check(key_id, "BLOCK_V2", b"\x01" * 32, slot=10)
    admin.eth_slashing_check(key_id, "ATTESTATION", b"\x02" * 32, source_epoch=3, target_epoch=4)
    exported = admin.eth_slashing_export([key_id])
    assert exported["metadata"] == {"interchange_format_version": "5", "genesis_validators_root": "0x" + "00" * 32}
    [entry] = exported["data"]
    assert entry["signed_blocks"] == [{"slot": "10", "signing_root": "0x" + "01" * 32}]
    assert entry["signed_attestations"] == [
        {"source_epoch": "3", "target_epoch": "4", "signing_root": "0x" + "02" * 32}]
    fresh = _keys(admin, gvr)
    admin.eth_slashing_import(exported, fresh)
    fresh_id = fresh[bytes.fromhex(entry["pubkey"][2:])]
    for kind, a in (("block", {"slot": "10"}), ("block", {"slot": "9"}),
                    ("attestation", {"source_epoch": "2", "target_epoch": "5"}),
                    ("attestation", {"source_epoch": "3", "target_epoch": "4"})):
        assert not _attempt(admin, {b"k": fresh_id}, kind, {"pubkey": "0x" + b"k".hex(), **a})
    assert _attempt(admin, {b"k": fresh_id}, "block", {"pubkey": "0x" + b"k".hex(), "slot": "11"})


def test_import_refuses_other_chain_and_malformed(admin):
    keys = _keys(admin, bytes(32))
    pubkey = next(iter(keys))
    good = {"metadata": {"interchange_format_version": "5", "genesis_validators_root": "0x" + "00" * 32},
            "data": [{"pubkey": "0x" + pubkey.hex(), "signed_blocks": [{"slot": "5"}], "signed_attestations": []}]}
    other = json.loads(json.dumps(good))
    other["metadata"]["genesis_validators_root"] = "0x" + "11" * 32
    with pytest.raises(errors.InvalidRequest):
        admin.eth_slashing_import(other, keys)
    for broken in ({"metadata": {"interchange_format_version": "4", **{"genesis_validators_root": "0x" + "00" * 32}},
                    "data": []},
                   {"metadata": good["metadata"], "data": [{"pubkey": "0x00", "signed_blocks": [],
                                                            "signed_attestations": []}]},
                   {"metadata": good["metadata"], "data": [{"pubkey": "0x" + pubkey.hex(),
                                                            "signed_blocks": [{"slot": "-1"}],
                                                            "signed_attestations": []}]}):
        with pytest.raises(EthFormatError):
            admin.eth_slashing_import(broken, keys)
    # a merge never lowers: importing slot 5 after slot 9 leaves 9
    higher = json.loads(json.dumps(good))
    higher["data"][0]["signed_blocks"] = [{"slot": "9"}]
    admin.eth_slashing_import(higher, keys)
    admin.eth_slashing_import(good, keys)
    exported = admin.eth_slashing_export([keys[pubkey]])
    assert exported["data"][0]["signed_blocks"] == [{"slot": "9"}]
