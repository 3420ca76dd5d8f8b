"""The double-sign guard inside the enclave: CometBFT canonical sign bytes (checked against the
CometBFT vectors), FilePV's rules, persistence across restarts, tampered state, signed export
and import, and chain-ready secp256k1 signatures (verified with pyca and libsecp256k1)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.hashes import SHA256
from google.protobuf.internal.encoder import _VarintBytes

from kms import errors
from kms.enclave.bridge import Enclave, MemoryStore
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.proto.enclave.v1 import cometbft_pb2 as cmt
from kms.proto.enclave.v1 import errors_pb2 as codes
from tests.auditor import auditor_public
from tests.conftest import vectors_dir

CHAIN = "test-chain-1"
ZERO_TIME = cmt.CmtTimestamp(seconds=-62135596800)
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def vote(height: int, rnd: int, vtype: int, block: bytes | None = b"\x11" * 32, ts: int = 1700000000,
         chain: str = CHAIN) -> bytes:
    v = cmt.CmtCanonicalVote(type=vtype, height=height, round=rnd, chain_id=chain,
                             timestamp=cmt.CmtTimestamp(seconds=ts))
    if block is not None:
        v.block_id.hash = block
        v.block_id.part_set_header.total = 1
        v.block_id.part_set_header.hash = block[::-1]
    body = v.SerializeToString()
    return _VarintBytes(len(body)) + body


def proposal(height: int, rnd: int, ts: int = 1700000000) -> bytes:
    p = cmt.CmtCanonicalProposal(type=32, height=height, round=rnd, pol_round=-1, chain_id=CHAIN,
                                 timestamp=cmt.CmtTimestamp(seconds=ts))
    p.block_id.hash = b"\x22" * 32
    body = p.SerializeToString()
    return _VarintBytes(len(body)) + body


def sign(enclave, kid: str, data: bytes, kind=pb.VOTE, **kw) -> pb.ValidatorSignResponse:
    req = pb.ValidatorSignRequest(key_id=kid, chain_id=CHAIN, kind=kind, sign_bytes=data, **kw)
    return enclave.call(pb.Request(validator_sign=req)).validator_sign


def create(enclave, spec=pb.ED25519) -> str:
    r = enclave.call(pb.Request(create_key=pb.CreateKeyRequest(spec=spec, usage=pb.VALIDATOR, chain_id=CHAIN)))
    return r.key_metadata.key_id


def public_key(enclave, kid: str):
    der = enclave.call(pb.Request(get_public_key=pb.GetPublicKeyRequest(key_id=kid))).get_public_key.public_key
    return serialization.load_der_public_key(der)


def test_our_schema_encodes_the_cometbft_vectors() -> None:
    vectors = json.loads((vectors_dir("cometbft") / "vote_sign_bytes_vectors.json").read_text())
    fields = {0: {}, 1: dict(height=1, round=1, type=2), 2: dict(height=1, round=1, type=1),
              3: dict(height=1, round=1), 4: dict(height=1, round=1, chain_id="test_chain_id"),
              5: dict(height=1, round=1, chain_id="test_chain_id")}
    for version in vectors.values():
        for case in version["vectors"]:
            v = cmt.CmtCanonicalVote(timestamp=ZERO_TIME, **fields[case["case"]])
            body = v.SerializeToString()
            assert (_VarintBytes(len(body)) + body).hex() == case["sign_bytes_hex"]


def test_filepv_rules(enclave) -> None:
    kid = create(enclave)
    pub = public_key(enclave, kid)
    first = sign(enclave, kid, vote(5, 0, 1))
    pub.verify(first.signature, vote(5, 0, 1))
    assert (first.height, first.round, first.step, first.reused) == (5, 0, 2, False)
    commit = sign(enclave, kid, vote(5, 0, 2))
    again = sign(enclave, kid, vote(5, 0, 2))
    assert again.reused and again.signature == commit.signature
    later = sign(enclave, kid, vote(5, 0, 2, ts=1700000099))  # only the timestamp differs
    assert later.reused and later.signature == commit.signature and later.sign_bytes == vote(5, 0, 2)
    for bad in (vote(5, 0, 2, block=b"\x33" * 32), vote(5, 0, 2, block=None), vote(5, 0, 1), vote(4, 9, 2)):
        with pytest.raises(errors.DoubleSignRefused):
            sign(enclave, kid, bad)
    with pytest.raises(errors.DoubleSignRefused):
        sign(enclave, kid, proposal(5, 0), kind=pb.PROPOSAL)
    assert not sign(enclave, kid, proposal(6, 0), kind=pb.PROPOSAL).reused
    assert not sign(enclave, kid, vote(6, 1, 1, block=None)).reused  # nil prevote in a later round


def test_malformed_and_foreign_sign_bytes(enclave) -> None:
    kid = create(enclave)
    good = vote(1, 0, 1)
    for bad in (good[:-1], good + b"\x00", b"\x02" + good[1:], vote(1, 0, 3), vote(1, 0, 1, chain="other-chain")):
        with pytest.raises(errors.InvalidRequest):
            sign(enclave, kid, bad)
    with pytest.raises(errors.InvalidRequest):
        sign(enclave, kid, proposal(1, 0), kind=pb.VOTE)  # a proposal is not a vote
    generic = pb.SignRequest(key_id=kid, message=b"anything", algorithm=pb.ED25519_PURE)
    with pytest.raises(errors.KeyStateError):  # a validator key never signs outside the guard
        enclave.call(pb.Request(sign=generic))


def test_secp256k1_chain_ready_signatures(enclave) -> None:
    import coincurve

    kid = create(enclave, pb.ECC_SECG_P256K1)
    pub = public_key(enclave, kid)
    r = sign(enclave, kid, vote(1, 0, 1), recoverable=True)
    assert len(r.signature) == 65
    rr, ss, v = int.from_bytes(r.signature[:32], "big"), int.from_bytes(r.signature[32:64], "big"), r.signature[64]
    assert ss <= SECP256K1_N // 2 and v in (0, 1)
    pub.verify(utils.encode_dss_signature(rr, ss), vote(1, 0, 1), ec.ECDSA(SHA256()))
    recovered = coincurve.PublicKey.from_signature_and_message(
        r.signature, vote(1, 0, 1), hasher=lambda m: hashlib.sha256(m).digest())
    assert recovered.format(compressed=False) == pub.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def test_state_survives_restart_and_tampering_stops_signing(build, tmp_path) -> None:
    store, data = MemoryStore(), tmp_path / "data"
    with Enclave(data, store=store) as e:
        sealed = e.call(pb.Request(generate_domain_key=pb.GenerateDomainKeyRequest())).generate_domain_key
        kid = create(e)
        signed = sign(e, kid, vote(10, 0, 2))
    image = tmp_path / "again.so"
    shutil.copy(Path(build) / "kms_enclave.so", image)
    shutil.copy(Path(build) / "kms_enclave.sigstruct", image.with_suffix(".sigstruct"))
    with Enclave(data, store=store, image=image) as e:
        e.call(pb.Request(load_domain_key=pb.LoadDomainKeyRequest(sealed_domain_key=sealed.sealed_domain_key)))
        with pytest.raises(errors.DoubleSignRefused):
            sign(e, kid, vote(10, 0, 2, block=b"\x44" * 32))
        assert sign(e, kid, vote(10, 0, 2)).signature == signed.signature
        revision, blob = store[f"vstate-{kid}"]
        store[f"vstate-{kid}"] = (revision, blob[:-1] + bytes([blob[-1] ^ 1]))
        with pytest.raises(errors.StoreError) as exc:
            sign(e, kid, vote(11, 0, 1))
        assert exc.value.code == codes.KMS_ERR_RECORD_CORRUPT
        store[f"vstate-{kid}"] = (revision, blob[: len(blob) // 2])  # truncated
        with pytest.raises(errors.StoreError):
            sign(e, kid, vote(11, 0, 1))
        del store[f"vstate-{kid}"]  # removed: no signing from scratch
        with pytest.raises(errors.StoreError):
            sign(e, kid, vote(11, 0, 1))


def test_signed_state_export_and_import(build, tmp_path) -> None:
    """Over an attested session (state import is an admin, session-only operation)."""
    from cryptography.hazmat.primitives.asymmetric import x25519

    from kms.client.channel import SessionChannel
    from kms.client.credentials import Credentials
    from kms.client.recovery import raw_public
    from kms.service.evidence import install_evidence
    from kms.sim.qe import SimQuotingEnclave

    store = MemoryStore()
    with Enclave(tmp_path / "d", store=store) as enclave:
        cert = install_evidence(enclave, SimQuotingEnclave.open(tmp_path / "d")).certificate
        sid = enclave.session_open()
        admin = SessionChannel(lambda d: enclave.session_feed(sid, d)[0], Credentials.generate("alice"), cert)
        admin.call(pb.Request(init=pb.InitRequest(admin_name="alice", threshold=1, recovery_public_keys=[
            raw_public(x25519.X25519PrivateKey.generate())], auditor_public_keys=auditor_public())))
        kid = admin.call(pb.Request(create_key=pb.CreateKeyRequest(spec=pb.ED25519, usage=pb.VALIDATOR,
                                                                   chain_id=CHAIN))).key_metadata.key_id
        sign(admin, kid, vote(7, 0, 2))
        exported = admin.call(pb.Request(validator_state=pb.ValidatorStateRequest(key_id=kid))).validator_state
        assert (exported.height, exported.round, exported.step, len(exported.mac)) == (7, 0, 3, 32)
        doctored = pb.ValidatorStateExport()
        doctored.CopyFrom(exported)
        doctored.height = 100
        with pytest.raises(errors.InvalidSignature):
            admin.call(pb.Request(validator_state_import=pb.ValidatorStateImport(state=doctored)))
        sign(admin, kid, vote(8, 0, 1))
        with pytest.raises(errors.DoubleSignRefused):  # an older (authentic) export never rolls the guard back
            admin.call(pb.Request(validator_state_import=pb.ValidatorStateImport(state=exported)))
        with pytest.raises(errors.PermissionDenied):  # never through the host's call ECALL
            enclave.call(pb.Request(validator_state_import=pb.ValidatorStateImport(state=exported)))
        latest = admin.call(pb.Request(validator_state=pb.ValidatorStateRequest(key_id=kid))).validator_state
        row = f"vstate-{kid}"
        revision, blob = store[row]
        store[row] = (revision, blob[:-1] + bytes([blob[-1] ^ 1]))  # the row is damaged: signing stops
        with pytest.raises(errors.StoreError):
            sign(admin, kid, vote(9, 0, 1))
        del store[row]  # nor may the host make it disappear: the state log knows it exists
        with pytest.raises(errors.StaleRecord):
            sign(admin, kid, vote(9, 0, 1))
        with pytest.raises(errors.StaleRecord):
            admin.call(pb.Request(validator_state_import=pb.ValidatorStateImport(state=latest)))
        store[row] = (revision, blob[:-1] + bytes([blob[-1] ^ 1]))
        admin.call(pb.Request(validator_state_import=pb.ValidatorStateImport(state=latest)))  # replaces the damage
        with pytest.raises(errors.DoubleSignRefused):  # the restored guard still holds height 8
            sign(admin, kid, vote(8, 0, 1, block=b"\x55" * 32))
        assert sign(admin, kid, vote(9, 0, 1)).height == 9


def test_validator_keys_cannot_be_rotated(enclave) -> None:
    """A validator's key is its consensus identity, and the guard state belongs to it: rotating
    would silently change the key the validator signs with. A new validator key is a new key."""
    kid = create(enclave)
    before = enclave.call(pb.Request(describe_key=pb.DescribeKeyRequest(key_id=kid))).key_metadata
    with pytest.raises(errors.KeyStateError) as refused:
        enclave.call(pb.Request(rotate_key=pb.RotateKeyRequest(key_id=kid)))
    assert refused.value.code == codes.KMS_ERR_INVALID_KEY_USAGE
    with pytest.raises(errors.InvalidRequest):  # no rotation schedule either
        enclave.call(pb.Request(update_key=pb.UpdateKeyRequest(key_id=kid, set_rotation_period=True,
                                                                rotation_period_days=1)))
    after = enclave.call(pb.Request(describe_key=pb.DescribeKeyRequest(key_id=kid))).key_metadata
    assert (after.current_version, after.revision) == (before.current_version, before.revision) == (1, 1)
    assert sign(enclave, kid, vote(1, 0, 1)).signature
