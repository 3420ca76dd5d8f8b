"""The audit chain, outside the enclave: export it from a store and verify it end to end.

Each entry is an AuditRecord signed (Ed25519) by the domain's audit key, whose public half the
enclave binds into its RA-TLS evidence ("audit-key" claim). Verification checks every
signature, that sequence numbers run 1, 2, 3... without gaps or repeats, and that every
record names the hash of the one before; it reports the first break. A truncated tail is only
visible against a head known from elsewhere (an earlier export, or the enclave's own head).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519
from google.protobuf.message import DecodeError

from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.proto.enclave.v1 import errors_pb2

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


def _describe(record: pb.AuditRecord) -> dict[str, object]:
    return {"seq": record.seq, "time": record.time, "operation": record.operation, "key_id": record.key_id,
            "key_version": record.key_version, "principal": record.principal.hex(),
            "outcome": errors_pb2.ErrorCode.Name(record.outcome)}


def register(parser: argparse.ArgumentParser) -> None:
    """`kms audit export|verify`."""
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    export = sub.add_parser("export", help="write the store's audit chain as JSON lines")
    export.add_argument("--data-dir", type=Path, default=Path("data"))
    export.add_argument("--out", type=Path, required=True)
    export.set_defaults(func=_run_export)
    verify = sub.add_parser("verify", help="verify an exported chain against the attested audit key")
    verify.add_argument("--file", type=Path, required=True)
    group = verify.add_mutually_exclusive_group(required=True)
    group.add_argument("--audit-key", help="the audit public key, hex (e.g. from a verified RA-TLS certificate)")
    group.add_argument("--cert", type=Path, help="an RA-TLS certificate (DER) already verified with kms attest")
    verify.add_argument("--head", help="a known head SEQ:HASH_HEX (detects a truncated tail)")
    verify.add_argument("--output", choices=("table", "json"), default="table")
    verify.set_defaults(func=_run_verify)


def _run_export(args: argparse.Namespace) -> int:
    from kms.service.store import SqliteStore

    with SqliteStore(args.data_dir) as store, args.out.open("w") as out:
        after = 0
        while batch := store.audit_entries(after):
            for seq, entry in batch:
                out.write(json.dumps({"seq": seq, "entry": entry.hex()}) + "\n")
                after = seq
    print(f"exported {after} audit entries to {args.out}", file=sys.stderr)
    return 0


def _run_verify(args: argparse.Namespace) -> int:
    try:
        lines = [json.loads(line) for line in args.file.read_text().splitlines() if line.strip()]
        entries = [bytes.fromhex(item["entry"]) for item in lines]
        key = bytes.fromhex(args.audit_key) if args.audit_key else audit_key_from_certificate(args.cert.read_bytes())
        head = None
        if args.head:
            seq, _, digest = args.head.partition(":")
            head = (int(seq), bytes.fromhex(digest))
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    report = verify_chain(entries, key, expect_head=head)
    info = {"ok": report.ok, "entries": report.count, "head": f"{report.head_seq}:{report.head_hash.hex()}",
            "broken_at": report.broken_at, "reason": report.reason}
    if args.output == "json":
        info["records"] = [_describe(r) for r in report.records]
        print(json.dumps(info, indent=2))
    else:
        print("\n".join(f"{k:10} {v}" for k, v in info.items()))
    return 0 if report.ok else 2
