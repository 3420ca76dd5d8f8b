"""docs/session-protocol.md §2, "The claims, byte for byte", held to a real enclave's RA-TLS certificate
before and after `init`: the documented blocks, with their placeholders filled from the enclave's own
answers, must be exactly the claims in the certificate, which must decode (strictly) to that shape."""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

import cbor2
import pytest

from kms.attestation.quote import parse_quote
from kms.attestation.ratls import DICE_EVIDENCE_OID, parse_ratls_certificate
from kms.client.channel import SessionChannel
from kms.client.credentials import Credentials
from kms.enclave.bridge import Enclave, MemoryStore
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.service.evidence import install_evidence
from kms.sim.qe import SimQuotingEnclave
from tests.api.helpers import recovery_public_keys
from tests.auditor import auditor_public

SESSION_PROTOCOL_MD = Path(__file__).resolve().parents[2] / "docs" / "session-protocol.md"


def documented_claims(name: str, values: dict[str, bytes]) -> bytes:
    """The bytes of one marked block: each line's first column, hex and <placeholders>, concatenated."""
    text = SESSION_PROTOCOL_MD.read_text()
    begin = f"<!-- claims: {name} -->"
    block = text[text.index(begin):text.index("<!-- end claims -->", text.index(begin))]
    out = b""
    for line in block.split("```")[1].strip("\n").splitlines():
        encoding = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0]
        for token in re.findall(r"<[^>]+>|[0-9a-f]+", encoding):
            out += values[token[1:-1]] if token.startswith("<") else bytes.fromhex(token)
    return out


def _strict(data: bytes) -> object:
    stream = io.BytesIO(data)
    value = cbor2.CBORDecoder(stream, allow_indefinite=False, allow_duplicate_keys=False).decode()
    assert stream.tell() == len(data), "trailing bytes"
    return value


def evidence_parts(certificate: bytes) -> tuple[bytes, bytes, bytes]:
    """(SubjectPublicKeyInfo, quote, claims bytes), checking the evidence's documented outer shape."""
    cert = parse_ratls_certificate(certificate)
    ext = cert.extension((DICE_EVIDENCE_OID,))
    assert ext is not None and ext[:4] == bytes.fromhex("d9ea6082")  # tag 60000, an array of two
    assert ext[4] == 0x59 and ext[7 + int.from_bytes(ext[5:7], "big")] == 0x58  # bstr u16 quote, bstr u8 claims
    evidence = _strict(ext)
    assert isinstance(evidence, cbor2.CBORTag) and evidence.tag == 60000
    quote, claims = evidence.value
    assert isinstance(quote, bytes) and isinstance(claims, bytes)
    assert parse_quote(quote).body.report_data == hashlib.sha256(claims).digest() + bytes(32)
    return cert.spki, quote, claims


@pytest.fixture
def node(build, tmp_path):
    with Enclave(tmp_path / "data", store=MemoryStore()) as enclave:
        yield enclave, SimQuotingEnclave.open(tmp_path / "data")


def test_claims_are_the_documented_bytes_before_and_after_init(node) -> None:
    enclave, qe = node
    certificate = install_evidence(enclave, qe).certificate
    spki, _, claims = evidence_parts(certificate)
    assert claims == documented_claims("no domain", {"SPKI hash": hashlib.sha256(spki).digest()})
    assert len(claims) == 51
    decoded = _strict(claims)
    assert list(decoded) == ["pubkey-hash"] and _strict(decoded["pubkey-hash"]) == [1, hashlib.sha256(spki).digest()]

    session = SessionChannel(lambda data, sid=enclave.session_open(): enclave.session_feed(sid, data)[0],
                             Credentials.generate("alice"), certificate)
    session.call(pb.Request(init=pb.InitRequest(admin_name="alice", recovery_public_keys=recovery_public_keys(1),
                                                threshold=1, auditor_public_keys=auditor_public())))
    identity = session.call(pb.Request(get_identity=pb.GetIdentityRequest())).get_identity
    spki, _, claims = evidence_parts(install_evidence(enclave, qe).certificate)
    values = {"SPKI hash": hashlib.sha256(spki).digest(), "audit key": identity.audit_public_key,
              "domain id": identity.domain_id}
    assert len(identity.audit_public_key) == 32 and len(identity.domain_id) == 16
    assert claims == documented_claims("domain", values)
    assert len(claims) == 122
    decoded = _strict(claims)
    assert list(decoded) == ["audit-key", "domain-id", "pubkey-hash"]  # deterministic order, shorter keys first
    assert all(isinstance(v, bytes) for v in decoded.values())  # a map of text keys to byte strings, every value
    assert decoded["audit-key"] == identity.audit_public_key and decoded["domain-id"] == identity.domain_id
    assert _strict(decoded["pubkey-hash"]) == [1, values["SPKI hash"]]
