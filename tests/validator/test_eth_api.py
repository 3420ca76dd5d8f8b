"""`kms validator eth serve`'s HTTP layer against a fake of the eth SDK contract (tests/validator/eth_fake.py):
every consistent Web3Signer example reaches the signer as the object whose signing root upstream states; routes,
statuses and content types as Web3Signer's OpenAPI files say (loaded here with PyYAML); bad bodies are 400 and
reach nothing; slashable requests are 412 on either side of the guard; the keymanager routes and their token."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kms.client.eth import EthWatermark as SdkWatermark
from kms.validator.eth.http import HttpSettings
from kms.validator.eth.signer import EthSigner
from kms.validator.eth.watermark import EthWatermark
from tests.conftest import vectors_dir
from tests.validator.eth_fake import FakeEthClient
from tests.validator.eth_harness import Api

TOKEN = "t0ken-for-the-keymanager-test"


@pytest.fixture(scope="module")
def examples() -> dict:
    return json.loads((vectors_dir("eth2", "signing") / "web3signer_openapi_examples.json").read_text())


def _api(tmp_path: Path, examples: dict, preset: str = "mainnet") -> tuple[Api, FakeEthClient]:
    fake = FakeEthClient(preset=preset, keys={"k1": bytes.fromhex(examples["identifier"][2:])})
    settings = HttpSettings(preset, bytes.fromhex("00000001"), TOKEN)
    return Api(EthSigner(fake, tmp_path / "state"), settings), fake  # type: ignore[arg-type]


def _cases(examples: dict, consistent: bool = True) -> list[dict]:
    return [c for c in examples["cases"] if c["consistent"] is consistent]


def test_every_consistent_example_is_signed_over_the_stated_root(tmp_path: Path, examples: dict) -> None:
    """A fresh signer state per example: several are blocks at slot 0, a double proposal to the guard."""
    for preset in ("mainnet", "minimal"):
        for i, case in enumerate(_cases(examples)):
            if preset == "mainnet" and case["preset"] == "minimal":
                continue
            api, fake = _api(tmp_path / preset / str(i), examples, preset)
            body = case.get("request_snake_case", case["request"])
            status, ctype, out = api("POST", f"/api/v1/eth2/sign/{examples['identifier']}", json=body,
                                     headers={"Accept": "text/plain"})
            assert status == 200, (case["name"], out)
            assert ctype.startswith("text/plain") and len(bytes.fromhex(out.decode()[2:])) == 96
            assert "0x" + fake.roots[-1].hex() == case["expected_signing_root"], case["name"]


def test_minimal_only_examples_are_400_on_mainnet(tmp_path: Path, examples: dict) -> None:
    api, fake = _api(tmp_path, examples)
    for case in [c for c in _cases(examples) if c["preset"] == "minimal"]:
        status, _, out = api("POST", f"/api/v1/eth2/sign/{examples['identifier']}", json=case["request"])
        assert status == 400 and b"not an SSZ Bitvector" in out, case["name"]
    assert fake.calls == []


def test_inconsistent_examples_get_400_from_the_signing_root_check(tmp_path: Path, examples: dict) -> None:
    """Upstream's Electra/Fulu aggregate examples state a root their bodies do not have: refused, as Web3Signer
    refuses a differing signingRoot; without it the root is the recomputed regression value."""
    for i, case in enumerate(_cases(examples, consistent=False)):
        api, fake = _api(tmp_path / str(i), examples)
        status, _, _ = api("POST", f"/api/v1/eth2/sign/{examples['identifier']}", json=case["request"])
        assert status == 400, case["name"]
        body = {k: v for k, v in case["request"].items() if k != "signingRoot"}
        status, _, _ = api("POST", f"/api/v1/eth2/sign/{examples['identifier']}", json=body)
        assert status == 200 and "0x" + fake.roots[-1].hex() == case["derived"]["signing_root_mainnet_recomputed"]


@pytest.mark.parametrize(("accept", "media"), [
    (None, "text/plain"), ("text/plain", "text/plain"), ("application/json", "application/json"),
    ("*/*", "application/json"),   # Web3Signer's answer to */* (what Lodestar before 1.18 sends, and parses)
    ("text/plain, */*;q=0.1", "application/json"), ("application/json;q=0, text/plain", "text/plain")])
def test_accept_negotiation_as_web3signer(tmp_path: Path, examples: dict, accept: str | None, media: str) -> None:
    api, _ = _api(tmp_path, examples)
    body = next(c for c in examples["cases"] if c["type"] == "RANDAO_REVEAL")["request"]
    kwargs: dict[str, Any] = {"skip_auto_headers": ["Accept"]} if accept is None else {"headers": {"Accept": accept}}
    status, ctype, out = api("POST", f"/api/v1/eth2/sign/{examples['identifier']}", json=body, **kwargs)
    assert status == 200 and ctype.split(";")[0] == media
    signature = json.loads(out)["signature"] if media == "application/json" else out.decode()
    assert len(bytes.fromhex(signature.removeprefix("0x"))) == 96
    status, ctype, out = api("GET", "/upcheck", **kwargs)   # upcheck: JSON only when asked for by name
    assert status == 200 and (json.loads(out) == {"status": "OK"} if accept == "application/json" else out == b"OK")


def test_unknown_key_is_404(tmp_path: Path, examples: dict) -> None:
    api, _ = _api(tmp_path, examples)
    body = next(c for c in examples["cases"] if c["type"] == "RANDAO_REVEAL")["request"]
    status, ctype, out = api("POST", "/api/v1/eth2/sign/0x" + "ab" * 48, json=body)
    assert status == 404 and ctype.split(";")[0] == "application/json" and "no key" in json.loads(out)["message"]


def _attestation(source: int, target: int, root: str = "11") -> dict:
    return {"type": "ATTESTATION", "fork_info": {"fork": {"previous_version": "0x00000000",
            "current_version": "0x00000000", "epoch": "0"}, "genesis_validators_root": "0x" + "22" * 32},
            "attestation": {"slot": str(target * 32), "index": "0", "beacon_block_root": "0x" + root * 32,
                            "source": {"epoch": str(source), "root": "0x" + "33" * 32},
                            "target": {"epoch": str(target), "root": "0x" + root * 32}}}


def _block(slot: int, body_root: str = "44") -> dict:
    return {"type": "BLOCK_V2", "fork_info": {"fork": {"previous_version": "0x00000000",
            "current_version": "0x00000000", "epoch": "0"}, "genesis_validators_root": "0x" + "22" * 32},
            "beacon_block": {"version": "DENEB", "block_header": {
                "slot": str(slot), "proposer_index": "7", "parent_root": "0x" + "55" * 32,
                "state_root": "0x" + "66" * 32, "body_root": "0x" + body_root * 32}}}


BAD_BODIES: list[tuple[Any, str]] = [
    (b"{not json", "not JSON"),
    ([], "JSON object"),
    ({"type": "ATTESTATION"}, "missing field(s) attestation, fork_info"),
    ({"type": "NOPE"}, "not a supported signing type"),
    ({**_attestation(1, 2), "extra": 1}, "unknown field(s) extra"),
    ({**_attestation(1, 2), "signingRoot": "0x12"}, "signingRoot: expected 32 bytes"),
    ({**_attestation(1, 2), "signing_root": "0x" + "00" * 32, "signingRoot": "0x" + "01" * 32}, "differ"),
    (json.loads(json.dumps(_attestation(1, 2)).replace('"slot": "64"', '"slot": "-1"')), "attestation.slot"),
    (json.loads(json.dumps(_attestation(1, 2)).replace('"slot": "64"', '"slot": "18446744073709551616"')),
     "out of range"),
    (json.loads(json.dumps(_block(3)).replace('"DENEB"', '"GLOAS"')), "beacon_block.version"),
    (json.loads(json.dumps(_block(3)).replace('"0x' + "44" * 32, '"0x' + "44" * 31)), "body_root: expected 32"),
    (json.loads(json.dumps(_block(3)).replace('"0x00000000"', '"0x000000"', 1)), "previous_version"),
    ({**_block(3), "fork_info": {"fork": {}}}, "fork_info: missing field(s) genesis_validators_root"),
]


@pytest.mark.parametrize(("body", "needle"), BAD_BODIES, ids=[n for _, n in BAD_BODIES])
def test_bad_bodies_are_400_naming_the_field_and_reach_nothing(tmp_path: Path, examples: dict, body: Any,
                                                              needle: str) -> None:
    api, fake = _api(tmp_path, examples)
    assert api("POST", f"/api/v1/eth2/sign/{examples['identifier']}", json=_block(1))[0] == 200
    before = (tmp_path / "state" / f"{examples['identifier']}.json").read_bytes()
    kwargs = {"data": body} if isinstance(body, bytes) else {"json": body}
    status, ctype, out = api("POST", f"/api/v1/eth2/sign/{examples['identifier']}", **kwargs)
    assert status == 400 and ctype.split(";")[0] == "application/json", out
    assert needle in json.loads(out)["message"]
    assert len([c for c in fake.calls if c[0] == "sign"]) == 1
    assert (tmp_path / "state" / f"{examples['identifier']}.json").read_bytes() == before
    assert api("POST", "/api/v1/eth2/sign/0x1234", json=_block(2))[0] == 400


def test_slashable_requests_get_412_on_both_sides(tmp_path: Path, examples: dict) -> None:
    api, fake = _api(tmp_path, examples)
    url = f"/api/v1/eth2/sign/{examples['identifier']}"
    assert api("POST", url, json=_block(10))[0] == 200
    assert api("POST", url, json=_block(10))[0] == 200   # the same block again: allowed
    signs = len(fake.calls)
    status, _, out = api("POST", url, json=_block(10, "77"))  # another block, same slot: this side refuses
    assert status == 412 and "slot" in json.loads(out)["message"] and len(fake.calls) == signs
    assert api("POST", url, json=_block(9))[0] == 412
    assert api("POST", url, json=_attestation(3, 4))[0] == 200
    assert api("POST", url, json=_attestation(3, 4, "99"))[0] == 412  # double vote
    assert api("POST", url, json=_attestation(2, 5))[0] == 412  # surrounds 3->4
    assert api("POST", url, json=_attestation(4, 5))[0] == 200
    sent = fake.calls[-1][1][2]  # the watermark sent: the lowest slot and epochs still signable
    assert (sent.min_block_slot, sent.min_source_epoch, sent.min_target_epoch) == (10, 3, 4)
    # a new state directory starts empty: the enclave (the fake here) still refuses slot 10, and its answer to
    # slot 15 raises this side's mark
    api.signer.close()
    api2 = Api(EthSigner(fake, tmp_path / "state2"), api.settings)  # type: ignore[arg-type]
    assert api2("POST", url, json=_block(10, "77"))[0] == 412
    assert api2("POST", url, json=_block(15))[0] == 200
    # above this side's watermark, the enclave's own history still refuses (the fake's stands for it here)
    fake.blocks["k1"][20] = b"signed elsewhere"
    status, _, out = api2("POST", url, json=_block(20))
    assert status == 412 and "double block" in json.loads(out)["message"]


def test_the_enclaves_watermark_is_folded_into_this_sides(tmp_path: Path, examples: dict) -> None:
    """docs/eth-interface.md: the signer keeps the merge of its watermark and the enclave's answer. A history the
    enclave has above this side's (imported, or another signer's) then stops requests here, before the KMS."""
    api, fake = _api(tmp_path, examples)
    url, state = f"/api/v1/eth2/sign/{examples['identifier']}", tmp_path / "state" / f"{examples['identifier']}.json"
    fake.ahead = 30   # the enclave answers: nothing below slot 10 + 1 + 30 is signable
    assert api("POST", url, json=_block(10))[0] == 200
    mark = json.loads(state.read_text())
    assert (mark["block_slot"], mark["block_digest"]) == (40, "")   # no digest: slot 40 itself is refused here
    signs = len(fake.calls)
    assert api("POST", url, json=_block(40))[0] == 412 and api("POST", url, json=_block(25))[0] == 412
    assert len(fake.calls) == signs
    assert api("POST", url, json=_block(41))[0] == 200


def test_fold_keeps_digests_of_positions_this_side_holds() -> None:
    wm = EthWatermark(block_slot=10, block_digest=b"b" * 32, source_epoch=3, target_epoch=4,
                      attestation_digest=b"a" * 32)
    assert wm.fold(SdkWatermark(11, 3, 5)) == wm            # what the enclave answers after signing these
    assert wm.fold(SdkWatermark(0, 0, 0)) == wm
    assert wm.fold(SdkWatermark(13, 5, 9)) == EthWatermark(12, b"", 5, 8, b"")
    assert EthWatermark().fold(SdkWatermark(1, 0, 1)) == EthWatermark(0, b"", None, 0, b"")


def _spec(root: Path, rel: str) -> dict:
    doc = yaml.safe_load((root / rel).read_text())
    paths = {}
    for path, item in doc["paths"].items():
        if "$ref" in item:
            item = yaml.safe_load((root / item["$ref"]).read_text())
        paths[path] = item
    return paths


def _statuses(op: dict) -> dict[str, set[str]]:
    return {code: set((resp.get("content") or {}).keys()) for code, resp in op["responses"].items()}


def test_routes_statuses_and_content_types_match_the_openapi_files(tmp_path: Path, examples: dict) -> None:
    w3s = _spec(vectors_dir("eth2", "web3signer", "openapi", "eth2"), "web3signer.yaml")
    rsa = _spec(vectors_dir("eth2", "web3signer", "remote-signing-api"), "remote-signing-oapi.yaml")
    api, _ = _api(tmp_path, examples)
    ident = examples["identifier"]
    auth = {"Authorization": f"Bearer {TOKEN}"}
    observed = {  # (path, method) -> {status: content type}
        ("/api/v1/eth2/sign/{identifier}", "post"): [
            api("POST", f"/api/v1/eth2/sign/{ident}", json=_block(5), headers={"Accept": "text/plain"}),
            api("POST", f"/api/v1/eth2/sign/{ident}", json=_block(5), headers={"Accept": "application/json"}),
            api("POST", f"/api/v1/eth2/sign/{ident}", json=_block(5, "88")),
            api("POST", "/api/v1/eth2/sign/0x" + "ab" * 48, json=_block(5)),
            api("POST", f"/api/v1/eth2/sign/{ident}", json={})],
        ("/api/v1/eth2/publicKeys", "get"): [api("GET", "/api/v1/eth2/publicKeys")],
        ("/upcheck", "get"): [api("GET", "/upcheck")],
        ("/healthcheck", "get"): [api("GET", "/healthcheck")],
        ("/api/v1/eth2/highWatermark", "get"): [api("GET", "/api/v1/eth2/highWatermark")],
        ("/eth/v1/keystores", "get"): [api("GET", "/eth/v1/keystores", headers=auth),
                                       api("GET", "/eth/v1/keystores"),
                                       api("GET", "/eth/v1/keystores", headers={"Authorization": "Bearer wrong"})],
        ("/eth/v1/keystores", "post"): [api("POST", "/eth/v1/keystores", headers=auth, json={
            "keystores": [], "passwords": []}), api("POST", "/eth/v1/keystores", headers=auth, json={})],
        ("/eth/v1/keystores", "delete"): [api("DELETE", "/eth/v1/keystores", headers=auth, json={"pubkeys": []})],
    }
    seen_codes = {r[0] for r in observed[("/api/v1/eth2/sign/{identifier}", "post")]}
    assert seen_codes == {200, 400, 404, 412}
    for (path, method), responses in observed.items():
        documented = _statuses(w3s[path][method])
        for status, ctype, body in responses:
            assert str(status) in documented, (path, method, status, body)
            media = ctype.split(";")[0]
            if documented[str(status)]:
                assert any(m.split(";")[0] == media for m in documented[str(status)]), (path, status, ctype)
            if status == 200 and media == "application/json":
                json.loads(body)
        if path in rsa and method in rsa[path]:
            for status, _, _ in responses:
                assert str(status) in _statuses(rsa[path][method]), (path, status)
    assert set(w3s) - {p for p, _ in observed} == {"/reload"}  # the one route not served (docs/ethereum.md)
    assert {p for p in rsa} <= {p for p, _ in observed}
    pubs = json.loads(api("GET", "/api/v1/eth2/publicKeys")[2])
    assert pubs == [ident]
    assert api("GET", "/upcheck")[2] == b"OK"


def test_keymanager_import_and_delete(tmp_path: Path, examples: dict) -> None:
    api, fake = _api(tmp_path, examples)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    new_pub = "ab" * 48
    keystore = json.dumps({"pubkey": new_pub, "crypto": {}, "version": 4})
    dup = json.dumps({"pubkey": examples["identifier"][2:], "crypto": {}, "version": 4})
    interchange = json.dumps({"metadata": {"interchange_format_version": "5",
                                           "genesis_validators_root": "0x" + "00" * 32}, "data": []})
    status, _, out = api("POST", "/eth/v1/keystores", headers=auth, json={
        "keystores": [keystore, dup, "{}"], "passwords": ["right", "right", "right"],
        "slashing_protection": interchange})
    assert status == 200
    assert [d["status"] for d in json.loads(out)["data"]] == ["imported", "duplicate", "error"]
    assert ("import_interchange", None) in fake.calls
    status, _, out = api("POST", "/eth/v1/keystores", headers=auth, json={
        "keystores": [keystore], "passwords": ["right"], "slashing_protection": "not json"})
    assert status == 400 and len(fake.imported) == 1   # refused before anything was imported
    assert sorted(json.loads(api("GET", "/api/v1/eth2/publicKeys")[2])) == sorted([examples["identifier"],
                                                                                    "0x" + new_pub])
    assert api("POST", f"/api/v1/eth2/sign/0x{new_pub}", json=_block(3))[0] == 200
    status, _, out = api("DELETE", "/eth/v1/keystores", headers=auth, json={"pubkeys": ["0x" + new_pub,
                                                                                        "0x" + "cd" * 48]})
    doc = json.loads(out)
    assert status == 200 and [d["status"] for d in doc["data"]] == ["deleted", "not_found"]
    assert json.loads(doc["slashing_protection"])["data"][0]["signed_blocks"] == [{"slot": "3"}]
    assert api("POST", f"/api/v1/eth2/sign/0x{new_pub}", json=_block(4))[0] == 404  # signs nothing more
    status, _, out = api("DELETE", "/eth/v1/keystores", headers=auth, json={"pubkeys": ["0x" + new_pub]})
    assert [d["status"] for d in json.loads(out)["data"]] == ["not_active"]


def test_keymanager_delete_exports_many_keys_in_batches(tmp_path: Path, examples: dict) -> None:
    api, fake = _api(tmp_path, examples)
    extra = {f"x{i}": bytes([i]) * 48 for i in range(1, 20)}
    fake.keys.update(extra)
    pubs = ["0x" + p.hex() for p in extra.values()] + ["0x" + "cd" * 48]
    status, _, out = api("DELETE", "/eth/v1/keystores", headers={"Authorization": f"Bearer {TOKEN}"},
                         json={"pubkeys": pubs})
    doc = json.loads(out)
    assert status == 200 and [d["status"] for d in doc["data"]] == ["deleted"] * 19 + ["not_found"]
    assert sorted(e["pubkey"] for e in json.loads(doc["slashing_protection"])["data"]) == sorted(pubs[:-1])
    assert [len(c[1]) for c in fake.calls if c[0] == "export"] == [16, 3]
    assert extra.keys() <= fake.disabled
