"""`kms audit export|verify`: the store's audit chain to JSON lines, and their verification (exit 0 intact,
2 broken, 1 local error) against the audit key an RA-TLS certificate binds."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kms.audit import audit_key_from_certificate, verify_chain
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.proto.enclave.v1 import errors_pb2


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
    from kms.service.store import SqliteStore  # loads the enclave bridge: only when exporting

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
