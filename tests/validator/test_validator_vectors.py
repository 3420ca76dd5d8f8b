"""CometBFT known answers: the SecretConnection HKDF golden file, Merlin, privval message encodings, vote sign bytes."""

from __future__ import annotations

import hashlib
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from merlin_transcripts import MerlinTranscript

from kms.proto.cometbft.v038 import privval_pb2 as pv
from kms.proto.cometbft.v038 import types_pb2 as cmt
from kms.validator import canonical, privval
from kms.validator.kms_link import ValidatorPublicKey
from kms.validator.secret_connection import derive_secrets
from tests.conftest import vectors_dir

STAMP = 1570983284  # 2019-10-13T16:14:44Z
ERROR = pv.RemoteSignerError(code=1, description="it's a error")


def test_hkdf_golden_file_all_32_lines() -> None:
    lines = (vectors_dir("cometbft") / "TestDeriveSecretsAndChallengeGolden.golden").read_text().split()
    assert len(lines) == 32
    for line in lines:
        dh, loc_is_least, recv, send, legacy = line.split(",")
        got_recv, got_send, got_legacy = derive_secrets(bytes.fromhex(dh), loc_is_least == "true")
        assert (got_recv.hex(), got_send.hex(), got_legacy.hex()) == (recv, send, legacy)


def test_merlin_known_answers() -> None:
    kat = json.loads((vectors_dir("cometbft") / "merlin_kat.json").read_text())
    simple = kat["simple"]
    t = MerlinTranscript(simple["app_label"].encode())
    for label, data in simple["appends"]:
        t.append_message(label.encode(), data.encode())
    assert t.challenge_bytes(simple["challenge_label"].encode(), simple["challenge_len"]).hex() == \
        simple["expected_hex"]
    t = MerlinTranscript(b"test protocol")
    t.append_message(b"step1", b"some data")
    c = b""
    for _ in range(32):
        c = t.challenge_bytes(b"challenge", 32)
        t.append_message(b"bigdata", b"\x63" * 1024)
        t.append_message(b"challengedata", c)
    assert c.hex() == kat["complex"]["expected_hex"]


def _example_vote() -> cmt.Vote:
    """privval/msgs_test.go exampleVote."""
    v = cmt.Vote(type=cmt.SIGNED_MSG_TYPE_PRECOMMIT, height=3, round=2,
                 validator_address=hashlib.sha256(b"validator_address").digest()[:20], validator_index=56789,
                 extension=b"extension")
    v.block_id.hash = hashlib.sha256(b"blockID_hash").digest()
    v.block_id.part_set_header.total = 1000000
    v.block_id.part_set_header.hash = hashlib.sha256(b"blockID_part_set_header_hash").digest()
    v.timestamp.seconds = STAMP
    return v


def _example_proposal() -> cmt.Proposal:
    """privval/msgs_test.go exampleProposal (its Type is SignedMsgType(1), as the vector encodes it)."""
    p = cmt.Proposal(type=cmt.SIGNED_MSG_TYPE_PREVOTE, height=3, round=2, pol_round=2,
                     signature=b"it's a signature")
    p.block_id.CopyFrom(_example_vote().block_id)
    p.timestamp.seconds = STAMP
    return p


def _pub_key() -> ValidatorPublicKey:
    sk = ed25519.Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"it's a secret").digest())
    pk = sk.public_key()
    return ValidatorPublicKey("ed25519", pk.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw),
                              pk)


def _messages() -> dict[str, pv.Message]:
    vote, proposal = _example_vote(), _example_proposal()
    return {
        "ping request": pv.Message(ping_request=pv.PingRequest()),
        "ping response": pv.Message(ping_response=pv.PingResponse()),
        "pubKey request": pv.Message(pub_key_request=pv.PubKeyRequest()),
        "pubKey response": privval.pub_key_response(_pub_key()),
        "pubKey response with error": privval.pub_key_response(None, ERROR),
        "Vote Request": pv.Message(sign_vote_request=pv.SignVoteRequest(vote=vote)),
        "Vote Response": privval.vote_response(vote),
        "Vote Response with error": privval.vote_response(None, ERROR),
        "Proposal Request": pv.Message(sign_proposal_request=pv.SignProposalRequest(proposal=proposal)),
        "Proposal Response": privval.proposal_response(proposal),
        "Proposal Response with error": privval.proposal_response(None, ERROR),
    }


_VERSIONS = ("HEAD", "v0.38.25", "v1.0.1")
_NAMES = ("ping request", "ping response", "pubKey request", "pubKey response", "pubKey response with error",
          "Vote Request", "Vote Response", "Vote Response with error", "Proposal Request", "Proposal Response",
          "Proposal Response with error")


@pytest.mark.parametrize("name", _NAMES)
@pytest.mark.parametrize("version", _VERSIONS)
def test_privval_message_vectors_encode_and_decode(version: str, name: str) -> None:
    doc = json.loads((vectors_dir("cometbft") / "privval_msg_vectors.json").read_text())
    vectors = {v["name"]: bytes.fromhex(v["hex"]) for v in doc[version]["vectors"]}
    assert set(vectors) == set(_NAMES)
    if version.startswith("v1") and name.startswith("pubKey response"):
        pytest.skip("v1.x moved the key to pub_key_bytes/pub_key_type: not the v0.38 protocol this signer speaks")
    expected = vectors[name]
    assert privval.encode(_messages()[name]) == expected
    decoded = privval.decode(expected)
    assert decoded == _messages()[name]
    assert privval.encode(decoded) == expected


def test_v1_pub_key_response_is_not_taken_for_v038() -> None:
    doc = json.loads((vectors_dir("cometbft") / "privval_msg_vectors.json").read_text())
    v1 = {v["name"]: bytes.fromhex(v["hex"]) for v in doc["v1.0.1"]["vectors"]}
    msg = privval.decode(v1["pubKey response"])
    assert msg.pub_key_response.pub_key.WhichOneof("sum") is None  # fields 3/4 are unknown to v0.38: no key


def test_vote_sign_bytes_vectors() -> None:
    doc = json.loads((vectors_dir("cometbft") / "vote_sign_bytes_vectors.json").read_text())
    fields = {0: {}, 1: dict(height=1, round=1, type=2), 2: dict(height=1, round=1, type=1),
              3: dict(height=1, round=1), 4: dict(height=1, round=1),
              5: dict(height=1, round=1, extension=b"extension")}
    count = 0
    for block in doc.values():
        for case in block["vectors"]:
            vote = cmt.Vote(**fields[case["case"]])  # no timestamp: Go's zero time, as in the Go test
            assert canonical.vote_sign_bytes(case["chain_id"], vote).hex() == case["sign_bytes_hex"]
            count += 1
    assert count == 12


def test_example_sign_bytes_carry_block_id_and_extension_separately() -> None:
    vote = _example_vote()
    sb = canonical.vote_sign_bytes("test_chain_id", vote)
    assert b"extension" not in sb and vote.block_id.hash in sb
    ext = canonical.vote_extension_sign_bytes("test_chain_id", vote)
    assert ext.startswith(bytes([len(ext) - 1])) and b"extension" in ext
    assert canonical.signs_extension(vote)
    vote.block_id.Clear()
    assert not canonical.signs_extension(vote)  # a nil precommit carries no extension
    assert canonical.vote_sign_bytes("c", vote) == canonical.vote_sign_bytes("c", cmt.Vote(
        type=2, height=3, round=2, timestamp=vote.timestamp))  # a zero block id is omitted


def test_bad_block_ids_and_positions_are_refused() -> None:
    vote = _example_vote()
    vote.block_id.hash = b"\x01" * 31
    with pytest.raises(canonical.SignBytesError):
        canonical.vote_sign_bytes("c", vote)
    with pytest.raises(canonical.SignBytesError):
        canonical.vote_sign_bytes("c", cmt.Vote(type=1, height=-1))
    with pytest.raises(canonical.SignBytesError):
        canonical.proposal_sign_bytes("c", cmt.Proposal(height=1, pol_round=-2))
