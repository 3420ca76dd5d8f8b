"""The audit chain, outside the enclave: verify an exported chain end to end (`kms audit` is the front end).

Each entry is an AuditRecord signed (Ed25519) by the domain's audit key, whose public half the
enclave binds into its RA-TLS evidence ("audit-key" claim). Verification checks every
signature, that sequence numbers run 1, 2, 3... without gaps or repeats, and that every
record names the hash of the one before; it reports the first break. A truncated tail is only
visible against a head known from elsewhere (an earlier export, or the enclave's own head).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519
from google.protobuf.message import DecodeError

from kms.proto.enclave.v1 import boundary_pb2 as pb

EVIDENCE_OID = x509.ObjectIdentifier("2.23.133.5.4.9")


@dataclass
class AuditReport:
    """The result of a verification: ok, or the first break."""

    count: int = 0
    head_seq: int = 0
    head_hash: bytes = bytes(32)
    broken_at: int | None = None
    reason: str = ""
    records: list[pb.AuditRecord] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def audit_key_from_certificate(der: bytes) -> bytes:
    """The audit public key bound into an RA-TLS certificate's claims (verify the certificate first)."""
    cert = x509.load_der_x509_certificate(der)
    tagged = cbor2.loads(cert.extensions.get_extension_for_oid(EVIDENCE_OID).value.value)
    claims = cbor2.loads(tagged.value[1])
    key = claims.get("audit-key")
    if not isinstance(key, bytes) or len(key) != 32:
        raise ValueError("the certificate binds no audit key (the domain was not initialized when it was quoted)")
    return key


def verify_chain(entries: Iterable[bytes], audit_public_key: bytes, *, expect_head: tuple[int, bytes] | None = None
                 ) -> AuditReport:
    """Verify entries in order against the audit key (and, if given, a known head (seq, hash))."""
    key = ed25519.Ed25519PublicKey.from_public_bytes(audit_public_key)
    report, prev = AuditReport(), bytes(32)
    for position, raw in enumerate(entries, start=1):
        try:
            entry = pb.AuditEntry.FromString(raw)
            key.verify(entry.signature, entry.record)
            record = pb.AuditRecord.FromString(entry.record)
        except (DecodeError, InvalidSignature, ValueError):
            report.broken_at, report.reason = position, "record altered: its signature does not verify"
            return report
        if record.seq != position:
            kind = "deleted" if record.seq > position else "reordered or repeated"
            report.broken_at, report.reason = position, f"expected seq {position}, found {record.seq} ({kind})"
            return report
        if record.prev_hash != prev:
            report.broken_at, report.reason = position, "chain broken: previous-record hash does not match"
            return report
        prev = hashlib.sha256(entry.record).digest()
        report.records.append(record)
        report.count, report.head_seq, report.head_hash = position, record.seq, prev
    if expect_head is not None and (report.head_seq, report.head_hash) != expect_head:
        report.broken_at = report.head_seq + 1
        report.reason = f"truncated: the chain ends at seq {report.head_seq}, the known head is seq {expect_head[0]}"
    return report
