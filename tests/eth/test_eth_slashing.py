"""Slashing protection through eth_sign with real objects, through a real server: the block and attestation rules,
repeats answered again, the history bound (refuse, never forget), and the two-sided watermark after the host restores
an older consistent copy of its store (the enclave alone would sign again what the copy forgot)."""

from pathlib import Path

import pytest
from py_ecc.bls import G2ProofOfPossession as bls
from remerkleable.byte_arrays import Bytes32

from kms import errors
from kms.client import Credentials, EthWatermark, KmsClient
from tests.eth import ssz_types as t
from tests.validator.harness import Domain

GVR = bytes([7] * 32)
FORK = b"\x05\x00\x00\x00"


def header(slot: int, tag: int = 0) -> bytes:
    return t.BeaconBlockHeader(slot=slot, proposer_index=1, parent_root=Bytes32(bytes([tag] * 32)),
                               state_root=Bytes32(bytes(32)), body_root=Bytes32(bytes(32))).encode_bytes()


def vote(source: int, target: int, tag: int = 0) -> bytes:
    return t.AttestationData(slot=target * 32, index=0, beacon_block_root=Bytes32(bytes([tag] * 32)),
                             source=t.Checkpoint(epoch=source, root=Bytes32(bytes(32))),
                             target=t.Checkpoint(epoch=target, root=Bytes32(bytes(32)))).encode_bytes()


def new_key(admin: KmsClient) -> tuple[str, bytes]:
    info = admin.eth_generate_key(GVR)
    return info.key_id, admin.eth_public_key(info.key_id)


def test_blocks(admin):
    key, pk = new_key(admin)
    first = admin.eth_sign(key, "BLOCK_V2", header(10), FORK, GVR)
    assert not first.repeated and first.watermark == EthWatermark(min_block_slot=11)
    again = admin.eth_sign(key, "BLOCK_V2", header(10), FORK, GVR)  # the same request is answered again
    assert again.repeated and again.signature == first.signature and bls.Verify(pk, again.signing_root, again.signature)
    for slot, tag in ((10, 1), (9, 0), (0, 0)):  # another block at a signed slot; below the watermark
        with pytest.raises(errors.SlashingProtectionRefused):
            admin.eth_sign(key, "BLOCK_V2", header(slot, tag), FORK, GVR)
    assert admin.eth_sign(key, "BLOCK_V2", header(12), FORK, GVR).watermark.min_block_slot == 13


def test_attestations(admin):
    key, _ = new_key(admin)
    admin.eth_sign(key, "ATTESTATION", vote(2, 3), FORK, GVR)
    admin.eth_sign(key, "ATTESTATION", vote(4, 6), FORK, GVR)
    assert admin.eth_sign(key, "ATTESTATION", vote(4, 6), FORK, GVR).repeated
    refused = {"double vote": vote(4, 6, tag=1), "double vote, other source": vote(3, 6),
               "surrounds (4, 6)": vote(3, 7), "surrounded by (4, 6)": vote(5, 5),
               "below the watermark": vote(2, 3, tag=1), "source after target": vote(8, 7)}
    for why, data in refused.items():
        with pytest.raises(errors.SlashingProtectionRefused):
            admin.eth_sign(key, "ATTESTATION", data, FORK, GVR)
            pytest.fail(why)
    res = admin.eth_sign(key, "ATTESTATION", vote(6, 7), FORK, GVR)
    assert res.watermark == EthWatermark(min_source_epoch=6, min_target_epoch=8)


def test_history_bound_refuses_and_never_forgets(admin):
    key, _ = new_key(admin)
    for slot in range(1, 10):  # 9 blocks: the first drops out of the 8 kept
        admin.eth_sign(key, "BLOCK_V2", header(slot), FORK, GVR)
    assert admin.eth_sign(key, "BLOCK_V2", header(2), FORK, GVR).repeated
    with pytest.raises(errors.SlashingProtectionRefused):  # no longer answered again: refused, never re-signed
        admin.eth_sign(key, "BLOCK_V2", header(1), FORK, GVR)
    with pytest.raises(errors.SlashingProtectionRefused):
        admin.eth_sign(key, "BLOCK_V2", header(1, tag=5), FORK, GVR)


def test_watermark_after_the_host_restores_an_older_store(domain: Domain, tmp_path: Path):
    with domain.server.client(domain.admin) as admin:
        key, _ = new_key(admin)
        admin.create_grant(key, domain.signer.principal_id, ["*"])
    snapshot = tmp_path / "older.sqlite3"
    domain.server.snapshot(snapshot)
    signer = Credentials.load(domain.signer_dir)
    w = EthWatermark()
    with domain.server.client(signer) as c:
        for data, kind in ((header(5), "BLOCK_V2"), (vote(1, 2), "ATTESTATION")):
            w = w.merge(c.eth_sign(key, kind, data, FORK, GVR, watermark=w).watermark)
    assert w == EthWatermark(min_block_slot=6, min_source_epoch=1, min_target_epoch=3)
    domain.server.restore(snapshot)  # SIGKILL, an older consistent store, restart: the guard forgot slot 5
    domain.forget_signer_head()      # the operator accepts the restore
    with domain.server.client(signer) as c:
        conflicting = ((header(5, tag=9), "BLOCK_V2"), (vote(0, 3), "ATTESTATION"), (vote(1, 2, tag=9), "ATTESTATION"))
        for data, kind in conflicting:
            with pytest.raises(errors.SlashingProtectionRefused):
                c.eth_sign(key, kind, data, FORK, GVR, watermark=w)
        # the refusal raised the enclave's own watermark (persisted): without the signer's, still refused
        with pytest.raises(errors.SlashingProtectionRefused):
            c.eth_sign(key, "BLOCK_V2", header(5, tag=9), FORK, GVR)
        assert c.eth_sign(key, "BLOCK_V2", header(6), FORK, GVR, watermark=w).watermark.min_block_slot == 7
