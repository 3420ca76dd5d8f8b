"""`kms admin auditors set`: replace who can read the audit log; and the --auditor-key files `kms admin init` takes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from kms.client.recovery import load_public_key
from kms.commands.common import LocalError, emit, make_client, run_command

MAX_AUDITORS = 8


def auditor_public_keys(paths: list[str] | None) -> list[bytes]:
    """Raw X25519 keys from --auditor-key files (PEM/DER SubjectPublicKeyInfo, raw or hex), checked locally."""
    keys = []
    for path in paths or []:
        try:
            keys.append(load_public_key(Path(path).read_bytes()))
        except (OSError, ValueError) as exc:
            raise LocalError(f"--auditor-key {path}: not an auditor public key "
                             f"({getattr(exc, 'strerror', None) or 'from `kms audit keygen`'})") from exc
    if len(keys) > MAX_AUDITORS:
        raise LocalError(f"at most {MAX_AUDITORS} auditor keys")
    if len(set(keys)) != len(keys):
        raise LocalError("--auditor-key: the same auditor key was given twice")
    return keys


def add_auditor_key_arg(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument("--auditor-key", action="append", required=required, metavar="PUB",
                        help="an auditor's X25519 public key (PEM from `kms audit keygen`; repeatable, at most "
                             f"{MAX_AUDITORS}): every audit record's body is encrypted to the auditors")


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Add `kms admin auditors set`."""
    auditors = sub.add_parser("auditors", help="who can read what the audit log says (admins)")
    asub = auditors.add_subparsers(dest="auditors_command", required=True, metavar="COMMAND")
    put = asub.add_parser("set", parents=[parent], help="replace the domain's auditor keys (audited)",
                          description="From the next audit record on, bodies are readable by these keys only; "
                                      "earlier records stay readable by the keys they were sealed to. The "
                                      "change is itself a record, and the record after it names the new "
                                      "auditors publicly (`kms audit verify` lists every epoch's auditors).")
    add_auditor_key_arg(put, required=True)
    put.set_defaults(func=run_command(_set))


def _set(args: argparse.Namespace) -> None:
    keys = auditor_public_keys(args.auditor_key)
    with make_client(args) as client:  # verified before anything is sent
        now = client.set_auditors(keys)
    emit(args, {"auditors": [k.hex() for k in now] if args.output == "json" else ", ".join(k.hex() for k in now)})
