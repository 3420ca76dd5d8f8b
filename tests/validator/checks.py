"""Independent checks of what the node receives: signatures over the canonical sign bytes, by key type."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, utils
from cryptography.hazmat.primitives.hashes import SHA256

from kms.proto.cometbft.v038 import types_pb2 as cmt
from kms.validator import canonical

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def verify(pub: bytes, signature: bytes, data: bytes) -> None:
    """Ed25519 (32-byte key) or secp256k1 r || s, low-s, over SHA-256 (33-byte compressed key); raises if invalid."""
    if len(pub) == 32:
        ed25519.Ed25519PublicKey.from_public_bytes(pub).verify(signature, data)
        return
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), pub)
    assert len(signature) == 64
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    assert s <= SECP256K1_N // 2, "high-s"
    key.verify(utils.encode_dss_signature(r, s), data, ec.ECDSA(SHA256()))


def verify_vote(pub: bytes, chain_id: str, vote: cmt.Vote) -> bytes:
    """Check a signed vote (and its extension signature) as the node would; returns its sign bytes."""
    sign_bytes = canonical.vote_sign_bytes(chain_id, vote)
    verify(pub, vote.signature, sign_bytes)
    if canonical.signs_extension(vote):
        verify(pub, vote.extension_signature, canonical.vote_extension_sign_bytes(chain_id, vote))
    else:
        assert not vote.extension_signature
    return sign_bytes


def verify_proposal(pub: bytes, chain_id: str, proposal: cmt.Proposal) -> bytes:
    sign_bytes = canonical.proposal_sign_bytes(chain_id, proposal)
    verify(pub, proposal.signature, sign_bytes)
    return sign_bytes


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]
