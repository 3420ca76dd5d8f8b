"""The audit chain, outside the enclave: verify an exported chain end to end, and, for an auditor, read it
(`kms audit` is the front end; the formats are docs/formats.md's "Audit records").

Each entry is an AuditRecord signed (Ed25519) by the domain's audit key, whose public half the
enclave binds into its RA-TLS evidence ("audit-key" claim). Verification needs no secret: it checks
every signature, that sequence numbers run 1, 2, 3... without gaps or repeats, that every record names
the hash of the one before, and that the epochs are well formed (every sealed body names the epoch
opened last, a record that opens an epoch lists who can read it, no clear body after sealed ones); it
reports the first break. A truncated tail is only visible against a head known from elsewhere (an
earlier export, or the enclave's own head).

What happened (AuditBody) is sealed to the domain's auditors: an auditor's X25519 key opens the epoch
key of each epoch sealed to it (HPKE, RFC 9180, with pyca/cryptography's implementation) and with it
the bodies (AES-256-GCM). A body that should open and does not is a break too.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import DecodeError

from kms.proto.enclave.v1 import boundary_pb2 as pb

EVIDENCE_OID = x509.ObjectIdentifier("2.23.133.5.4.9")
EPOCH_LABEL = b"enclave-kms audit epoch v1"
BODY_LABEL = b"enclave-kms audit body v1"
SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


def _u64(value: int) -> bytes:
    return (value & (2**64 - 1)).to_bytes(8, "big")  # time is an int64: two's complement


def epoch_info(domain_id: bytes, epoch: int) -> bytes:
    """HPKE info of an epoch key: label || domain id || epoch seq (u64 BE)."""
    return EPOCH_LABEL + domain_id + _u64(epoch)


def body_aad(record: pb.AuditRecord) -> bytes:
    """AES-GCM AAD of a sealed body: label || domain id || seq || prev hash || time || epoch."""
    return (BODY_LABEL + record.domain_id + _u64(record.seq) + record.prev_hash + _u64(record.time)
            + _u64(record.epoch))


def body_nonce(seq: int) -> bytes:
    return bytes(4) + _u64(seq)


class AuditorKey:
    """An auditor's X25519 private key: it opens the epoch keys sealed to it, and so the bodies."""

    def __init__(self, key: x25519.X25519PrivateKey) -> None:
        self._key = key
        self.public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @classmethod
    def load(cls, path: Path) -> AuditorKey:
        """From a PKCS#8 file (PEM or DER), as `kms audit keygen` writes it."""
        data = Path(path).read_bytes()
        key = (serialization.load_pem_private_key(data, None) if data.lstrip().startswith(b"-----")
               else serialization.load_der_private_key(data, None))
        if not isinstance(key, x25519.X25519PrivateKey):
            raise ValueError(f"{path} is not an X25519 private key")
        return cls(key)

    def open_epoch(self, record: pb.AuditRecord) -> bytes | None:
        """The epoch key this record opens, if it is sealed to this auditor (None if not); InvalidTag if it
        is sealed to this auditor and does not open."""
        for sealed in record.epoch_keys:
            if sealed.auditor == self.public:
                try:
                    key = SUITE.decrypt(sealed.sealed_key, self._key, info=epoch_info(record.domain_id, record.seq))
                except Exception as exc:  # pyca raises its own error types for a bad enc or tag
                    raise InvalidTag(str(exc)) from exc
                if len(key) != 32:
                    raise InvalidTag("an epoch key is 32 bytes")
                return key
        return None


def generate_auditor_key(directory: Path) -> tuple[Path, Path, bytes]:
    """Write auditor.key (PKCS#8 PEM, 0600) and auditor.pub (PEM) in directory; never overwrite.
    Returns both paths and the raw public key."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_path, pub_path = directory / "auditor.key", directory / "auditor.pub"
    if key_path.exists() or pub_path.exists():
        raise FileExistsError(f"{key_path} or {pub_path} already exists")
    key = x25519.X25519PrivateKey.generate()
    for path, data, mode in (
            (key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()), 0o600),
            (pub_path, key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo), 0o644)):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    return key_path, pub_path, AuditorKey(key).public


@dataclass
class AuditReport:
    """The result of a verification: ok, or the first break; with an auditor key, the bodies it read."""

    count: int = 0
    head_seq: int = 0
    head_hash: bytes = bytes(32)
    broken_at: int | None = None
    reason: str = ""
    records: list[pb.AuditRecord] = field(default_factory=list)
    bodies: list[pb.AuditBody | None] = field(default_factory=list)  # None: not readable with the key given
    epochs: list[tuple[int, list[bytes]]] = field(default_factory=list)  # (opening seq, auditor public keys)
    clear_bodies: int = 0  # records whose body is in clear (a domain initialized with the insecure choice)

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


class _Break(Exception):
    pass


class _Reader:
    """Walks the records in order: the epoch structure (public) and, with a key, the bodies."""

    def __init__(self, report: AuditReport, auditor: AuditorKey | None) -> None:
        self.report, self.auditor = report, auditor
        self.epoch, self.epoch_key, self.sealed_seen = 0, None, False

    def body(self, record: pb.AuditRecord) -> pb.AuditBody | None:
        sealed, clear = bool(record.sealed_body), record.HasField("clear_body")
        if sealed == clear:
            raise _Break("the record carries no body, or two")
        if clear:
            if record.epoch or record.epoch_keys or self.sealed_seen:
                raise _Break("a clear body after sealed ones, or inside an epoch")
            self.report.clear_bodies += 1
            return record.clear_body
        self.sealed_seen = True
        if record.epoch == record.seq:  # it opens an epoch
            self.epoch = record.seq
            self.report.epochs.append((record.seq, [bytes(k.auditor) for k in record.epoch_keys]))
            try:
                self.epoch_key = self.auditor.open_epoch(record) if self.auditor else None
            except InvalidTag as exc:
                raise _Break("the epoch key sealed to this auditor does not open") from exc
        elif record.epoch_keys or record.epoch != self.epoch or not self.epoch:
            raise _Break(f"epoch {record.epoch} is not the epoch opened last ({self.epoch or 'none'})")
        if self.epoch_key is None:
            return None
        try:
            plain = AESGCM(self.epoch_key).decrypt(body_nonce(record.seq), record.sealed_body, body_aad(record))
            return pb.AuditBody.FromString(plain)
        except (InvalidTag, DecodeError) as exc:
            raise _Break("the body does not open under its epoch key") from exc


def verify_chain(entries: Iterable[bytes], audit_public_key: bytes, *, expect_head: tuple[int, bytes] | None = None,
                 auditor_key: AuditorKey | None = None) -> AuditReport:
    """Verify entries in order against the audit key (and, if given, a known head (seq, hash)); with an
    auditor's key, also open every body sealed to it (report.bodies)."""
    key = ed25519.Ed25519PublicKey.from_public_bytes(audit_public_key)
    report, prev = AuditReport(), bytes(32)
    reader = _Reader(report, auditor_key)
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
        try:
            body = reader.body(record)
        except _Break as exc:
            report.broken_at, report.reason = position, str(exc)
            return report
        prev = hashlib.sha256(entry.record).digest()
        report.records.append(record)
        report.bodies.append(body)
        report.count, report.head_seq, report.head_hash = position, record.seq, prev
    if expect_head is not None and (report.head_seq, report.head_hash) != expect_head:
        report.broken_at = report.head_seq + 1
        report.reason = f"truncated: the chain ends at seq {report.head_seq}, the known head is seq {expect_head[0]}"
    return report


def context_hash(context: dict[str, str] | dict[bytes, bytes] | None) -> bytes:
    """What an audit body's context_hash is for an encryption context (empty for none): SHA-256 of its
    canonical encoding, so an auditor can check a context it knows against a record."""
    if not context:
        return b""
    pairs = sorted((k.encode() if isinstance(k, str) else k, v.encode() if isinstance(v, str) else v)
                   for k, v in context.items())
    out = bytes([len(pairs)])
    for k, v in pairs:
        out += len(k).to_bytes(2, "big") + k + len(v).to_bytes(2, "big") + v
    return hashlib.sha256(out).digest()
