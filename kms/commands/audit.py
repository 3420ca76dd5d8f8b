"""`kms audit keygen|export|verify`: an auditor's key pair; the store's audit chain to JSON lines (and, with an
auditor's key, what each record says); their verification (exit 0 intact, 2 broken, 1 local error) against the
audit key an RA-TLS certificate binds, which needs no secret."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from kms import paths
from kms.audit import AuditorKey, AuditReport, audit_key_from_certificate, generate_auditor_key, verify_chain
from kms.commands.backup import DB_NAME
from kms.commands.flags import add_output
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.proto.enclave.v1 import errors_pb2


def _describe(record: pb.AuditRecord, body: pb.AuditBody | None) -> dict[str, object]:
    out: dict[str, object] = {"seq": record.seq, "time": record.time, "epoch": record.epoch}
    if record.epoch_keys:
        out["epoch_auditors"] = [k.auditor.hex() for k in record.epoch_keys]
    if body is None:
        out["body"] = None  # sealed to auditors whose key was not given
        return out
    out.update(operation=body.operation, key_id=body.key_id, source_key_id=body.source_key_id,
               key_version=body.key_version, principal=body.principal.hex(),
               outcome=errors_pb2.ErrorCode.Name(body.outcome), policy_hash=body.policy_hash.hex(),
               context_hash=body.context_hash.hex())
    return out


def _add_key_sources(parser: argparse.ArgumentParser, *, required: bool) -> None:
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--audit-key", help="the audit public key, hex (e.g. from a verified RA-TLS certificate)")
    group.add_argument("--cert", type=Path, help="an RA-TLS certificate (DER) already verified with kms attest")
    parser.add_argument("--head", help="a known head SEQ:HASH_HEX (detects a truncated tail)")


def register(parser: argparse.ArgumentParser) -> None:
    """`kms audit keygen|export|verify`."""
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    keygen = sub.add_parser("keygen", help="make an auditor's X25519 key pair (for `kms admin init --auditor-key`)")
    keygen.add_argument("--out", type=Path, default=paths.auditor_dir(), metavar="DIR",
                        help="writes DIR/auditor.key (private, 0600: keep it off the server) and DIR/auditor.pub "
                             "(default: %(default)s)")
    add_output(keygen)
    keygen.set_defaults(func=_run_keygen)
    export = sub.add_parser("export", help="write the audit chain as JSON lines (with --auditor-key: verified and "
                                           "decrypted, one readable record per line)")
    source = export.add_mutually_exclusive_group()
    source.add_argument("--data-dir", type=Path, help="read the server's store (default: <KMS home>/server)")
    source.add_argument("--file", type=Path, help="read an earlier export instead of a store")
    export.add_argument("--out", type=Path, required=True, metavar="FILE", help="the JSON lines file to write")
    export.add_argument("--auditor-key", type=Path, metavar="FILE",
                        help="an auditor's private key (from `kms audit keygen`): verify the chain, then write what "
                             "each record says (needs --cert or --audit-key)")
    _add_key_sources(export, required=False)
    export.set_defaults(func=_run_export)
    verify = sub.add_parser("verify", help="verify an exported chain against the attested audit key (no secret)")
    verify.add_argument("--file", type=Path, required=True, metavar="FILE",
                        help="an export from `kms audit export`")
    _add_key_sources(verify, required=True)
    verify.add_argument("--auditor-key", type=Path, metavar="FILE",
                        help="also open the bodies sealed to this auditor (listed with --output json)")
    add_output(verify)
    verify.set_defaults(func=_run_verify)


def _run_keygen(args: argparse.Namespace) -> int:
    try:
        key_path, pub_path, public = generate_auditor_key(args.out)
    except OSError as exc:
        print(f"error: cannot write the auditor key: {exc}", file=sys.stderr)
        return 1
    info = {"auditor_public_key": public.hex(), "public_key_file": str(pub_path), "private_key_file": str(key_path)}
    print(json.dumps(info, indent=2) if args.output == "json" else "\n".join(f"{k:20} {v}" for k, v in info.items()))
    return 0


def _store_entries(data_dir: Path) -> Iterator[bytes]:
    from kms.service.store import SqliteStore  # loads the enclave bridge: only when reading a store

    with SqliteStore(data_dir) as store:
        after = 0
        while batch := store.audit_entries(after):
            for seq, entry in batch:
                yield entry
                after = seq


def _file_entries(path: Path) -> list[bytes]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"--file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ValueError(f"--file {path}: not an export of `kms audit export` (not text)") from None
    try:
        return [bytes.fromhex(json.loads(line)["entry"]) for line in text.splitlines() if line.strip()]
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"--file {path}: not an export of `kms audit export` (JSON lines with \"entry\")") from None


def _store_path(args: argparse.Namespace) -> Path:
    """The data directory to read; never created (a missing one is an error that names it)."""
    data_dir = args.data_dir or paths.server_data_dir()
    flag = "--data-dir" if args.data_dir else "the default --data-dir"
    if not data_dir.is_dir():
        raise ValueError(f"{flag} {data_dir}: no such directory (the server's data directory)")
    if not (data_dir / DB_NAME).is_file():
        raise ValueError(f"{flag} {data_dir}: no KMS store there")
    return data_dir


def _verify_inputs(args: argparse.Namespace, entries: list[bytes]) -> AuditReport:
    if args.audit_key:
        key = bytes.fromhex(args.audit_key) if _is_hex(args.audit_key, 32) else None
        if key is None:
            raise ValueError(f"--audit-key: expected 64 hex digits (from `kms admin identity`), got {args.audit_key!r}")
    else:
        try:
            key = audit_key_from_certificate(args.cert.read_bytes())
        except (OSError, ValueError) as exc:
            raise ValueError(f"--cert {args.cert}: {getattr(exc, 'strerror', None) or exc}") from None
    head = None
    if args.head:
        seq, _, digest = args.head.partition(":")
        if not seq.isdigit() or not _is_hex(digest, 32):
            raise ValueError(f"--head: expected SEQ:HASH (a number, 64 hex digits), got {args.head!r}")
        head = (int(seq), bytes.fromhex(digest))
    auditor = None
    if args.auditor_key:
        try:
            auditor = AuditorKey.load(args.auditor_key)
        except (OSError, ValueError) as exc:
            raise ValueError(f"--auditor-key {args.auditor_key}: not an auditor private key "
                             f"({getattr(exc, 'strerror', None) or 'from `kms audit keygen`'})") from None
    return verify_chain(entries, key, expect_head=head, auditor_key=auditor)


def _is_hex(text: str, size: int) -> bool:
    try:
        return len(bytes.fromhex(text)) == size
    except ValueError:
        return False


def _run_export(args: argparse.Namespace) -> int:
    try:
        if args.auditor_key and not (args.audit_key or args.cert):
            raise ValueError("--auditor-key verifies before it decrypts: give --cert or --audit-key")
        entries = _file_entries(args.file) if args.file else list(_store_entries(_store_path(args)))
        report = _verify_inputs(args, entries) if args.auditor_key else None
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if report is not None and not report.ok:
        print(f"error: the chain is broken at seq {report.broken_at}: {report.reason}; nothing written",
              file=sys.stderr)
        return 2
    try:
        out = args.out.open("w")
    except OSError as exc:
        print(f"error: --out {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    with out:
        for position, entry in enumerate(entries):
            line: dict[str, object] = {"seq": position + 1, "entry": entry.hex()}
            if report is not None:
                line.update(_describe(report.records[position], report.bodies[position]))
            out.write(json.dumps(line) + "\n")
    unread = sum(b is None for b in report.bodies) if report is not None else 0
    note = f" ({len(entries) - unread} read with the auditor key, {unread} sealed to others)" if report else ""
    print(f"exported {len(entries)} audit entries to {args.out}{note}", file=sys.stderr)
    return 0


def _run_verify(args: argparse.Namespace) -> int:
    try:
        report = _verify_inputs(args, _file_entries(args.file))
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    info: dict[str, object] = {
        "ok": report.ok, "entries": report.count, "head": f"{report.head_seq}:{report.head_hash.hex()}",
        "broken_at": report.broken_at, "reason": report.reason,
        "epochs": [{"seq": seq, "auditors": [a.hex() for a in who]} for seq, who in report.epochs],
        "clear_bodies": report.clear_bodies}
    if args.output == "json":
        info["records"] = [_describe(r, b) for r, b in zip(report.records, report.bodies, strict=True)]
        print(json.dumps(info, indent=2))
    else:
        info["epochs"] = "; ".join(f"{e['seq']}: {len(e['auditors'])} auditor(s)" for e in info["epochs"]) or "none"
        print("\n".join(f"{k:12} {v}" for k, v in info.items()))
    if not report.ok:
        print(f"error: the chain is broken at seq {report.broken_at}: {report.reason}", file=sys.stderr)
    return 0 if report.ok else 2
