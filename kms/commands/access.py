"""`kms policy put` and `kms grant create|list|revoke`: who may use a key, decided inside the enclave."""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from typing import Any

from kms.client.policy import OPERATIONS, KeyPolicy, PolicyError, grant_conditions, operations_mask
from kms.commands.common import (
    LocalError,
    add_key_id,
    add_principal_args,
    emit,
    make_client,
    parse_context,
    principal_arg,
    read_input,
    run_command,
)
from kms.commands.flags import add_output

_GRANT_COLUMNS = ("grant_id", "grantee", "operations", "expires_at", "conditions")
_OPS_HELP = f"comma-separated: {', '.join(OPERATIONS)}; '*' for all of them (full use)"


def register(groups: Any, parent: argparse.ArgumentParser) -> None:
    """Add `kms policy` and `kms grant`."""
    policy = groups.add_parser("policy", help="key policies: statements by principal, operation and context")
    psub = policy.add_subparsers(dest="command", required=True, metavar="COMMAND")
    put = psub.add_parser("put", parents=[parent], help="replace a key's policy with a JSON document (admins)",
                          description="The document format is in docs/api.md (Key policy documents).")
    add_key_id(put)
    put.add_argument("--file", required=True, metavar="FILE", help="the policy JSON (- for stdin)")
    put.set_defaults(func=run_command(_policy_put))
    check = psub.add_parser("check", help="parse a policy document locally and print it normalized")
    check.add_argument("--file", required=True, metavar="FILE", help="the policy JSON (- for stdin)")
    add_output(check, default="json", env=False)
    check.set_defaults(func=run_command(_policy_check))

    grant = groups.add_parser("grant", help="who may use a key: grant a principal operations on it (or all of them), "
                                            "list and revoke grants")
    gsub = grant.add_subparsers(dest="command", required=True, metavar="COMMAND")
    create = gsub.add_parser("create", parents=[parent], help="grant a principal operations on a key (admins)")
    add_key_id(create)
    add_principal_args(create)
    create.add_argument("--operations", required=True, help=_OPS_HELP)
    expiry = create.add_mutually_exclusive_group()
    expiry.add_argument("--expires-in", type=int, metavar="SECONDS", help="expire this many seconds from now")
    expiry.add_argument("--expires-at", metavar="RFC3339", help="expire at this time (server clock)")
    create.add_argument("--condition", action="append", metavar="KEY=VALUE",
                        help="the request's encryption context must carry KEY=VALUE (at most 2)")
    create.set_defaults(func=run_command(_grant_create))
    listing = gsub.add_parser("list", parents=[parent], help="a key's grants")
    add_key_id(listing)
    listing.set_defaults(func=run_command(_grant_list))
    revoke = gsub.add_parser("revoke", parents=[parent], help="remove a grant by its id (admins)")
    add_key_id(revoke)
    revoke.add_argument("--grant-id", required=True, metavar="HEX", help="32 hex digits, from `kms grant list`")
    revoke.set_defaults(func=run_command(_grant_revoke))


def _load_policy(path: str) -> KeyPolicy:
    try:
        return KeyPolicy.from_json(read_input(path, what="policy"))
    except PolicyError as exc:
        raise LocalError(f"{path}: {exc}") from exc


def _policy_put(args: argparse.Namespace) -> None:
    policy = _load_policy(args.file)
    with make_client(args) as client:
        info = client.put_key_policy(args.key_id, policy)
    emit(args, {"key_id": info.key_id, "policy_hash": info.policy_hash.hex(), "statements": len(policy.statements),
                "export_policy": info.export_policy})


def _policy_check(args: argparse.Namespace) -> None:
    emit(args, _load_policy(args.file).to_document())


def _expiry(args: argparse.Namespace) -> int:
    if args.expires_in is not None:
        if args.expires_in <= 0:
            raise LocalError("--expires-in must be positive")
        return int(time.time()) + args.expires_in
    if args.expires_at:
        try:
            when = datetime.fromisoformat(args.expires_at.replace("Z", "+00:00"))
        except ValueError as exc:
            raise LocalError(f"--expires-at is an RFC 3339 time: {exc}") from exc
        if when.tzinfo is None:
            raise LocalError("--expires-at needs a time zone (e.g. Z)")
        return int(when.timestamp())
    return 0


def _grant_create(args: argparse.Namespace) -> None:
    grantee, expires, conditions = principal_arg(args), _expiry(args), parse_context(args.condition, "--condition")
    try:  # checked here, before anything is sent
        operations = operations_mask(o for o in args.operations.split(",") if o.strip())
        grant_conditions(conditions)
    except PolicyError as exc:
        raise LocalError(f"--operations/--condition: {exc}") from exc
    with make_client(args) as client:
        grant = client.create_grant(args.key_id, grantee, operations, expires_at=expires, conditions=conditions)
    emit(args, {"key_id": args.key_id, **grant.to_dict()})


def _grant_list(args: argparse.Namespace) -> None:
    with make_client(args) as client:
        grants = client.list_grants(args.key_id)
    emit(args, [g.to_dict() for g in grants], _GRANT_COLUMNS)


def _grant_revoke(args: argparse.Namespace) -> None:
    try:
        grant_id = bytes.fromhex(args.grant_id)
    except ValueError:
        grant_id = b""
    if len(grant_id) != 16:
        raise LocalError("--grant-id is 32 hex digits (as `kms grant list` prints)")
    with make_client(args) as client:
        remaining = client.revoke_grant(args.key_id, grant_id)
    emit(args, [g.to_dict() for g in remaining], _GRANT_COLUMNS)
