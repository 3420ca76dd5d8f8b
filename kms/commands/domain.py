"""`kms admin recover` (shares opened locally, recombined in the enclave) and `kms admin identity`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from kms.client.recovery import open_share
from kms.commands.common import (
    LocalError,
    domain_arg,
    emit,
    head_line,
    load_credentials,
    load_state,
    make_client,
    run_command,
)


def register(sub: Any, parent: argparse.ArgumentParser) -> None:
    """Add `kms admin recover` and `kms admin identity`."""
    ident = sub.add_parser("identity", parents=[parent],
                           help="the enclave's identity, domain, state head and audit key, as it answers in a "
                                "verified session",
                           description="The audit public key printed here is what `kms audit verify --audit-key` "
                                       "takes; state_head is the head of the domain's state log (sequence:hash), "
                                       "which the credentials remember (kms credentials show).")
    ident.set_defaults(func=run_command(_identity))
    p = sub.add_parser("recover", parents=[parent], help="restore the domain on a fresh server from M of N shares",
                       description="Each --share is opened here with the --recovery-key given in the same position "
                                   "(nothing secret leaves this machine unencrypted: the plain shares travel "
                                   "only inside the attested session, after the server was verified). The "
                                   "enclave installs the recombined key only if it opens the stored domain.")
    p.add_argument("--domain-id", required=True, metavar="HEX", help="the domain to recover (32 hex digits)")
    p.add_argument("--share", action="append", required=True, metavar="FILE", help="share-<i>.json (repeatable)")
    p.add_argument("--recovery-key", action="append", required=True, metavar="FILE",
                   help="the recovery private key (PKCS#8 PEM) of the share in the same position (repeatable)")
    p.add_argument("--new-domain", action="store_true",
                   help="the credentials are pinned to another domain: recover this one and pin it instead")
    p.set_defaults(func=run_command(_recover))


def _private_key(path: str) -> x25519.X25519PrivateKey:
    try:
        data = Path(path).read_bytes()
        key = (serialization.load_pem_private_key(data, None) if data.lstrip().startswith(b"-----")
               else serialization.load_der_private_key(data, None))
    except (OSError, ValueError, TypeError) as exc:
        raise LocalError(f"cannot read the recovery key {path}: {exc}") from exc
    if not isinstance(key, x25519.X25519PrivateKey):
        raise LocalError(f"{path} is not an X25519 recovery key")
    return key


def open_shares(domain_id: bytes, shares: list[str], keys: list[str]) -> list[tuple[int, bytes]]:
    """Open every share with its key; checks the domain, duplicates and the threshold the documents name."""
    if len(shares) != len(keys):
        raise LocalError("give one --recovery-key per --share, in the same order")
    opened: dict[int, bytes] = {}
    thresholds = set()
    for share_path, key_path in zip(shares, keys, strict=True):
        try:
            document = json.loads(Path(share_path).read_text())
        except (OSError, ValueError) as exc:
            raise LocalError(f"cannot read the share {share_path}: {exc}") from exc
        if not isinstance(document, dict) or document.get("domain_id") != domain_id.hex():
            raise LocalError(f"{share_path} is not a share of domain {domain_id.hex()}")
        try:
            x, share = open_share(document, _private_key(key_path))
        except InvalidTag as exc:
            raise LocalError(f"{share_path} does not open with {key_path}: it was altered") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise LocalError(f"{share_path} does not open with {key_path}: {exc}") from exc
        if x in opened:
            raise LocalError(f"{share_path}: share {x} was given twice")
        opened[x] = share
        thresholds.add(document.get("threshold"))
    if len(thresholds) == 1 and isinstance(threshold := thresholds.pop(), int) and len(opened) < threshold:
        raise LocalError(f"{len(opened)} share(s) given; this domain needs {threshold}")
    return list(opened.items())


def _recover(args: argparse.Namespace) -> None:
    domain_id = domain_arg(args.domain_id)
    load_credentials(args)
    pinned = load_state(args).domain_id
    if pinned is not None and pinned != domain_id and not args.new_domain:
        raise LocalError(f"the credentials {args.credentials} are pinned to domain {pinned.hex()}, not "
                         f"{domain_id.hex()}: pass --new-domain to recover and pin it instead")
    shares = open_shares(domain_id, args.share, args.recovery_key)
    # new_domain: the server must have no domain yet; recover then pins this one with the credentials
    with make_client(args, new_domain=True) as client:  # verified before any share is sent
        principals = client.recover(domain_id, shares)
        identity = client.identity()
        head = head_line(client)
    emit(args, {"domain_id": identity.domain_id.hex(), "recovered": identity.domain_loaded,
                "principals": len(principals), "shares_used": len(shares),
                "audit_public_key": identity.audit_public_key.hex(), "state_head": head["state_head"]})


def _identity(args: argparse.Namespace) -> None:
    with make_client(args) as client:
        info = client.identity().to_dict()
        info["state_head"] = head_line(client)["state_head"]
    emit(args, info)
