"""The Web3Signer-compatible API against the real enclave: `kms serve` on loopback (tests/validator/conftest.py),
the HTTP app over a real KmsClient of the domain's signer principal. Every consistent Web3Signer example, with the
example key imported, is signed over the signing root upstream states (checked by the enclave against the body's
signingRoot, and by py_ecc verifying the signature over the stated root) and gives the derived signature; a
slashable request is 412 from this side's watermark and, with that watermark reset, from the enclave's own guard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from py_ecc.bls import G2ProofOfPossession as bls

from kms.validator.eth.http import HttpSettings
from kms.validator.eth.signer import EthSigner
from kms.validator.eth.watermark import FORMAT, VERSION
from tests.conftest import vectors_dir
from tests.validator.eth_harness import Api, disable, eth_key
from tests.validator.harness import Domain

TOKEN = "a-keymanager-token-for-the-enclave-test"
GFV = bytes.fromhex("00000001")   # the example network's GENESIS_FORK_VERSION (VALIDATOR_REGISTRATION's domain)
EXAMPLE_GVR = "0x04700007fabc8282644aed6d1c7c9e21d38a03a0c4ba193f3afe428824b3a673"
LOCAL_REFUSAL = "this validator"  # the words of this side's refusals (watermark.py); the enclave's differ


@pytest.fixture(scope="module")
def examples() -> dict:
    return json.loads((vectors_dir("eth2", "signing") / "web3signer_openapi_examples.json").read_text())


def _api(domain: Domain, state: Path, preset: str = "mainnet") -> Api:
    client = domain.server.client(domain.signer)
    return Api(EthSigner(client, state), HttpSettings(preset, GFV))


def _fresh_key(domain: Domain, examples: dict) -> None:
    """The example key imported again (a key with no signing history), every enabled copy disabled first."""
    pub = bytes.fromhex(examples["identifier"][2:])
    with domain.server.client(domain.admin) as admin:
        for info in admin.list_keys():
            if info.state == "ENABLED" and info.spec == "BLS12_381" and admin.eth_public_key(info.key_id) == pub:
                admin.disable_key(info.key_id)
    _, got = eth_key(domain, bytes.fromhex(EXAMPLE_GVR[2:]), bytes.fromhex(examples["identifier_secret_key"][2:]),
                     allow_voluntary_exit=True)
    assert got == pub


def test_every_consistent_example_is_signed_over_the_stated_root(domain: Domain, examples: dict,
                                                                 tmp_path: Path) -> None:
    pub, url = bytes.fromhex(examples["identifier"][2:]), f"/api/v1/eth2/sign/{examples['identifier']}"
    signed = []
    for i, case in enumerate(examples["cases"]):
        if not case["consistent"]:
            continue
        _fresh_key(domain, examples)  # several examples are blocks at slot 0: a double proposal
        api = _api(domain, tmp_path / str(i), "minimal" if case["preset"] == "minimal" else "mainnet")
        try:
            status, ctype, out = api("POST", url, json=case.get("request_snake_case", case["request"]),
                                     headers={"Accept": "text/plain"})
        finally:
            api.signer.close()
            api.signer.client.close()
        if case["type"] == "SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF" and case["preset"] == "minimal":
            # the enclave knows the mainnet preset's ContributionAndProof only (docs/ethereum.md)
            assert status == 400 and "KMS_ERR" in json.loads(out)["message"], out
            continue
        assert status == 200 and ctype.startswith("text/plain"), (case["name"], out)
        signature = bytes.fromhex(out.decode()[2:])
        root = bytes.fromhex(case["expected_signing_root"][2:])
        assert bls.Verify(pub, root, signature), case["name"]
        assert out.decode() == case["derived"]["signature_with_web3signer_acceptance_test_key"], case["name"]
        signed.append(case["name"])
    assert len(signed) >= 21, signed


def test_inconsistent_examples_are_refused_by_the_enclaves_root_check(domain: Domain, examples: dict,
                                                                     tmp_path: Path) -> None:
    """Upstream's Electra/Fulu aggregate examples state a root their bodies do not have: the enclave, which
    computes the root itself, refuses it (400); without it, the signature is over the recomputed root."""
    pub = bytes.fromhex(examples["identifier"][2:])
    for i, case in enumerate(c for c in examples["cases"] if not c["consistent"]):
        _fresh_key(domain, examples)
        api = _api(domain, tmp_path / str(i))
        url = f"/api/v1/eth2/sign/{examples['identifier']}"
        status, _, out = api("POST", url, json=case["request"])
        assert status == 400, (case["name"], out)
        body = {k: v for k, v in case["request"].items() if k != "signingRoot"}
        status, _, out = api("POST", url, json=body, headers={"Accept": "text/plain"})
        api.signer.close()
        api.signer.client.close()
        root = bytes.fromhex(case["derived"]["signing_root_mainnet_recomputed"][2:])
        assert status == 200 and bls.Verify(pub, root, bytes.fromhex(out.decode()[2:])), case["name"]


def _block(slot: int, body_root: str) -> dict:
    return {"type": "BLOCK_V2", "fork_info": {"fork": {"previous_version": "0x00000001",
            "current_version": "0x00000001", "epoch": "0"}, "genesis_validators_root": EXAMPLE_GVR},
            "beacon_block": {"version": "DENEB", "block_header": {
                "slot": str(slot), "proposer_index": "7", "parent_root": "0x" + "55" * 32,
                "state_root": "0x" + "66" * 32, "body_root": "0x" + body_root * 32}}}


def _attestation(source: int, target: int, root: str) -> dict:
    return {"type": "ATTESTATION", "fork_info": {"fork": {"previous_version": "0x00000001",
            "current_version": "0x00000001", "epoch": "0"}, "genesis_validators_root": EXAMPLE_GVR},
            "attestation": {"slot": str(target * 32), "index": "0", "beacon_block_root": "0x" + root * 32,
                            "source": {"epoch": str(source), "root": "0x" + "33" * 32},
                            "target": {"epoch": str(target), "root": "0x" + root * 32}}}


def _reset_watermark(state: Path, pubkey: bytes) -> None:
    """What an operator (or a host) does by replacing the watermark file with one that says nothing was signed."""
    (state / f"0x{pubkey.hex()}.json").write_text(json.dumps({
        "format": FORMAT, "version": VERSION, "pubkey": "0x" + pubkey.hex(), "block_slot": None, "block_digest": "",
        "source_epoch": None, "target_epoch": None, "attestation_digest": ""}))


def test_slashable_requests_are_412_from_this_side_and_from_the_enclave(domain: Domain, tmp_path: Path) -> None:
    gvr = bytes.fromhex(EXAMPLE_GVR[2:])
    _key, pub = eth_key(domain, gvr)
    url, state = f"/api/v1/eth2/sign/0x{pub.hex()}", tmp_path / "state"
    api = _api(domain, state)
    assert api("POST", url, json=_block(100, "44"))[0] == 200
    assert api("POST", url, json=_block(100, "44"))[0] == 200      # the very same block again
    assert api("POST", url, json=_attestation(5, 6, "11"))[0] == 200
    for body in (_block(100, "77"), _block(99, "44"), _attestation(5, 6, "99"), _attestation(4, 7, "11")):
        status, _, out = api("POST", url, json=body)   # double proposal, older slot, double vote, surround
        assert status == 412 and LOCAL_REFUSAL in json.loads(out)["message"], out
    api.signer.close()
    _reset_watermark(state, pub)
    api = _api(domain, state)   # this side now lets anything through: the enclave's own guard refuses
    for body in (_block(100, "77"), _block(99, "44"), _attestation(5, 6, "99"), _attestation(4, 7, "11")):
        status, _, out = api("POST", url, json=body)
        message = json.loads(out)["message"]
        assert status == 412 and LOCAL_REFUSAL not in message and "SLASHING_PROTECTION" in message, out
    assert api("POST", url, json=_block(101, "44"))[0] == 200
    assert api("POST", url, json=_attestation(6, 7, "11"))[0] == 200
    mark = json.loads((state / f"0x{pub.hex()}.json").read_text())
    assert (mark["block_slot"], mark["source_epoch"], mark["target_epoch"]) == (101, 6, 7)
    api.signer.close()
    api.signer.client.close()


def test_the_enclaves_history_is_folded_into_this_sides_watermark(domain: Domain, tmp_path: Path) -> None:
    """History the enclave has above this side's (an interchange imported after this side's file was written)
    comes back with the next answer and stops lower requests here, before the KMS."""
    gvr = bytes.fromhex(EXAMPLE_GVR[2:])
    key, pub = eth_key(domain, gvr)
    url, state = f"/api/v1/eth2/sign/0x{pub.hex()}", tmp_path / "state"
    api = _api(domain, state)
    assert api("POST", url, json=_block(10, "44"))[0] == 200
    with domain.server.client(domain.admin) as admin:
        admin.eth_slashing_import({"metadata": {"interchange_format_version": "5",
                                                "genesis_validators_root": EXAMPLE_GVR},
                                   "data": [{"pubkey": "0x" + pub.hex(), "signed_blocks": [{"slot": "500"}],
                                             "signed_attestations": [{"source_epoch": "40", "target_epoch": "41"}]}]},
                                  {pub: key})
    assert api("POST", url, json=_block(600, "44"))[0] == 200
    assert api("POST", url, json=_attestation(45, 46, "11"))[0] == 200
    mark = json.loads((state / f"0x{pub.hex()}.json").read_text())
    assert (mark["block_slot"], mark["source_epoch"], mark["target_epoch"]) == (600, 45, 46)
    api.signer.close()
    api.signer.client.close()


def test_a_public_key_of_two_enabled_keys_is_not_served(domain: Domain, tmp_path: Path) -> None:
    """The same secret imported twice: two slashing histories in the enclave, so neither is used until one is
    disabled (a validator signing through both could sign a slashable pair)."""
    gvr, secret = bytes.fromhex(EXAMPLE_GVR[2:]), bytes.fromhex("2b" * 32)
    first, pub = eth_key(domain, gvr, secret)
    api = _api(domain, tmp_path / "state")
    assert "0x" + pub.hex() in json.loads(api("GET", "/api/v1/eth2/publicKeys")[2])
    eth_key(domain, gvr, secret)
    assert "0x" + pub.hex() not in json.loads(api("GET", "/api/v1/eth2/publicKeys")[2])
    assert api("POST", f"/api/v1/eth2/sign/0x{pub.hex()}", json=_block(1, "44"))[0] == 404
    disable(domain, first)
    assert "0x" + pub.hex() in json.loads(api("GET", "/api/v1/eth2/publicKeys")[2])
    assert api("POST", f"/api/v1/eth2/sign/0x{pub.hex()}", json=_block(1, "44"))[0] == 200
    api.signer.close()
    api.signer.client.close()


def test_keymanager_imports_history_before_serving_and_delete_returns_it(domain: Domain, tmp_path: Path) -> None:
    """The keymanager routes against the enclave (with an admin's credentials: import and export are admins'
    operations): an EIP-2335 keystore imported with its EIP-3076 history refuses what that history forbids (the
    enclave's refusal: this side's file is new), duplicates and wrong passwords are reported per keystore, and
    delete disables the key and returns its history, including what was signed here."""
    case = next(c for c in json.loads((vectors_dir("eth2", "eip2335") / "cases.json").read_text())["keystore_cases"]
                if c["file"] == "pbkdf2_keystore.json" and c["expect"] == "ok")
    keystore = (vectors_dir("eth2", "eip2335") / case["file"]).read_text()
    gvr, pub = bytes.fromhex(EXAMPLE_GVR[2:]), case["pubkey"]
    history = json.dumps({"metadata": {"interchange_format_version": "5", "genesis_validators_root": EXAMPLE_GVR},
                          "data": [{"pubkey": pub, "signed_blocks": [{"slot": "50"}],
                                    "signed_attestations": [{"source_epoch": "5", "target_epoch": "6"}]}]})
    auth = {"Authorization": "Bearer " + TOKEN}
    client = domain.server.client(domain.admin)
    api = Api(EthSigner(client, tmp_path / "state"), HttpSettings("mainnet", GFV, TOKEN, gvr))
    try:
        status, _, out = api("POST", "/eth/v1/keystores", headers=auth, json={
            "keystores": [keystore, keystore.replace(pub[2:], "ab" * 48)], "passwords": [case["password"], "wrong"],
            "slashing_protection": history})
        assert status == 200 and [d["status"] for d in json.loads(out)["data"]] == ["imported", "error"], out
        listed = json.loads(api("GET", "/eth/v1/keystores", headers=auth)[2])["data"]
        assert pub in [k["validating_pubkey"] for k in listed]
        url = f"/api/v1/eth2/sign/{pub}"
        for body in (_block(50, "77"), _attestation(5, 6, "99"), _attestation(4, 7, "11")):
            status, _, out = api("POST", url, json=body)
            assert status == 412 and "SLASHING_PROTECTION" in json.loads(out)["message"], out
        assert api("POST", url, json=_block(51, "44"))[0] == 200
        status, _, out = api("POST", "/eth/v1/keystores", headers=auth, json={
            "keystores": [keystore], "passwords": [case["password"]]})
        assert [d["status"] for d in json.loads(out)["data"]] == ["duplicate"]
        status, _, out = api("DELETE", "/eth/v1/keystores", headers=auth, json={"pubkeys": [pub]})
        doc = json.loads(out)
        assert status == 200 and [d["status"] for d in doc["data"]] == ["deleted"], doc
        exported = json.loads(doc["slashing_protection"])["data"]
        assert [e["pubkey"] for e in exported] == [pub]
        assert max(int(b["slot"]) for b in exported[0]["signed_blocks"]) == 51
        assert api("POST", url, json=_block(52, "44"))[0] == 404
    finally:
        api.signer.close()
        client.close()
