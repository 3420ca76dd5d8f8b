"""`kms admin init|principal add|remove|list` (recover, identity, backup, restore: own modules)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from kms import paths
from kms.client.recovery import generate_recovery_keys, load_public_key, write_shares
from kms.commands import auditors
from kms.commands.common import (
    LocalError,
    add_principal_args,
    emit,
    head_line,
    load_credentials,
    load_state,
    make_client,
    principal_arg,
    run_command,
)

MAX_RECOVERY_KEYS = 10


def register_admin(parser: argparse.ArgumentParser, parent: argparse.ArgumentParser) -> None:
    """Add `kms admin init|recover|identity|backup|restore` and `kms admin principal add|remove|list`."""
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    init = sub.add_parser("init", parents=[parent], help="initialize a fresh server; you become its first admin",
                          description="Verify the server, then send your certificate's key (the first admin), the "
                                      "recovery public keys, the threshold and the auditors' public keys. The enclave "
                                      "generates the domain key and returns one recovery share per recovery key, "
                                      "encrypted to it; from then on it encrypts what each audit record says to the "
                                      "auditors.")
    keys = init.add_mutually_exclusive_group(required=True)
    keys.add_argument("--recovery-keys", type=int, metavar="N",
                      help=f"generate N (1..{MAX_RECOVERY_KEYS}) X25519 recovery key pairs in --recovery-dir/keys")
    keys.add_argument("--recovery-public-key", action="append", metavar="FILE",
                      help="an existing recovery public key (PEM/DER SubjectPublicKeyInfo, raw or hex; repeatable)")
    init.add_argument("--recovery-dir", type=Path, default=paths.recovery_dir(), metavar="DIR",
                      help="generated recovery private keys (0600) go to DIR/keys, the encrypted shares to DIR/shares: "
                           "separate folders, for separate people (default: %(default)s)")
    init.add_argument("--threshold", type=int, help="shares needed to recover (default: a majority)")
    init.add_argument("--shares-dir", type=Path, metavar="DIR",
                      help="where the encrypted shares are written instead (default: --recovery-dir/shares)")
    init.add_argument("--admin-name", default="admin", help="the first admin's name (default admin)")
    init.add_argument("--new-domain", action="store_true",
                      help="the credentials are pinned to a domain already: initialize another one and pin it instead")
    auditors.add_auditor_key_arg(init, required=False)
    init.add_argument("--audit-bodies-in-clear-insecure", action="store_true",
                      help="no auditor: every audit record says in clear, to the host, what happened (development "
                           "only; `kms admin auditors set` ends it)")
    init.set_defaults(func=run_command(_init))

    principal = sub.add_parser("principal", help="principals (clients known to the enclave) and their roles")
    psub = principal.add_subparsers(dest="principal_command", required=True, metavar="COMMAND")
    add = psub.add_parser("add", parents=[parent], help="register a principal with a role (admins)")
    add_principal_args(add)
    add.add_argument("--name", required=True, help="a name for people (list shows it)")
    add.add_argument("--role", choices=("user", "admin"), default="user",
                     help="user: keys granted or allowed by policy; admin: everything (default user)")
    add.set_defaults(func=run_command(_principal_add))
    remove = psub.add_parser(
        "remove", parents=[parent], help="remove a principal for good: refused from then on, its grants stop applying")
    add_principal_args(remove)
    remove.set_defaults(func=run_command(_principal_remove))
    listing = psub.add_parser("list", parents=[parent], help="list principals (admins)")
    listing.set_defaults(func=run_command(_principal_list))
    from kms.commands import backup, domain

    auditors.register(sub, parent)
    domain.register(sub, parent)
    backup.register(sub)


def _recovery_plan(args: argparse.Namespace) -> tuple[list[bytes], Path]:
    """Checks before anything is generated or sent: the given recovery public keys (none yet when
    they are to be generated), the threshold (set on args) and where the shares go."""
    shares_dir = args.shares_dir or args.recovery_dir / "shares"
    if args.recovery_keys is not None:
        if not 1 <= args.recovery_keys <= MAX_RECOVERY_KEYS:
            raise LocalError(f"--recovery-keys is 1..{MAX_RECOVERY_KEYS}")
        count = args.recovery_keys
    else:
        count = len(args.recovery_public_key)
        if count > MAX_RECOVERY_KEYS:
            raise LocalError(f"at most {MAX_RECOVERY_KEYS} recovery keys")
    threshold = args.threshold if args.threshold is not None else count // 2 + 1
    if not 1 <= threshold <= count:
        raise LocalError(f"--threshold must be 1..{count}")
    args.threshold = threshold
    existing = [p for i in range(count) if (p := shares_dir / f"share-{i}.json").exists()]
    if existing:
        raise LocalError(f"{existing[0]} already exists: refusing to overwrite recovery shares")
    if args.recovery_keys is None:
        try:
            return [load_public_key(Path(f).read_bytes()) for f in args.recovery_public_key], shares_dir
        except (OSError, ValueError) as exc:
            raise LocalError(f"cannot read a recovery public key: {exc}") from exc
    return [], shares_dir


def _check_unpinned(args: argparse.Namespace) -> None:
    """Credentials pinned to a domain would leave it: only with --new-domain."""
    pinned = load_state(args).domain_id
    if pinned is not None and not args.new_domain:
        raise LocalError(f"the credentials {args.credentials} are pinned to domain {pinned.hex()}: initializing "
                         "another domain would leave it; pass --new-domain if that is what you mean")


def _init(args: argparse.Namespace) -> None:
    _check_unpinned(args)
    auditor_keys = auditors.auditor_public_keys(args.auditor_key)
    if not auditor_keys and not args.audit_bodies_in_clear_insecure:
        raise LocalError("give at least one --auditor-key PUB (make a pair with `kms audit keygen --out DIR`): "
                         "only auditors can read what the audit log says")
    if auditor_keys and args.audit_bodies_in_clear_insecure:
        raise LocalError("--audit-bodies-in-clear-insecure is for a domain without auditors")
    public_keys, shares_dir = _recovery_plan(args)
    generated: list[str] = []
    load_credentials(args)  # fail locally before generating anything
    # new_domain: only a server without a domain is accepted; init then pins the new one with the credentials
    with make_client(args, new_domain=True) as client:  # verified before any key is generated or sent
        if args.recovery_keys is not None:
            try:
                made = generate_recovery_keys(args.recovery_dir / "keys", args.recovery_keys)
            except OSError as exc:
                raise LocalError(f"cannot write recovery keys: {exc}") from exc
            public_keys, generated = [pub for _, pub in made], [str(path) for path, _ in made]
        shares_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        result = client.init(public_keys, args.threshold, admin_name=args.admin_name, auditor_public_keys=auditor_keys,
                             audit_bodies_in_clear_insecure=args.audit_bodies_in_clear_insecure)
        head = head_line(client)
        try:  # before the client closes: closing saves the pin, which may fail, and must not cost the shares
            share_files = write_shares(shares_dir, result)
        except OSError as exc:
            raise LocalError(f"the server is initialized but the shares could not be written: {exc}") from exc
    info: dict[str, Any] = {
        "domain_id": result.domain_id.hex(), "admin_principal_id": result.admin_principal_id.hex(),
        "auditors": len(auditor_keys),
        "threshold": result.threshold, "shares": len(result.shares),
        "share_files": ", ".join(str(p) for p in share_files) if args.output == "table" else
        [str(p) for p in share_files],
        "pinned_in": str(args.credentials), "state_head": head["state_head"],
    }
    if generated:
        info["recovery_private_keys"] = ", ".join(generated) if args.output == "table" else generated
    emit(args, info)


def _principal_add(args: argparse.Namespace) -> None:
    principal = principal_arg(args)
    with make_client(args) as client:
        principals = client.add_principal(principal, args.name, args.role.upper())
        head = head_line(client)
    emit(args, [p.to_dict() for p in principals], ("principal_id", "name", "role"))
    print_head(head)


def _principal_remove(args: argparse.Namespace) -> None:
    principal = principal_arg(args)
    with make_client(args) as client:
        principals = client.remove_principal(principal)
        head = head_line(client)
    emit(args, [p.to_dict() for p in principals], ("principal_id", "name", "role"))
    print_head(head)


def _principal_list(args: argparse.Namespace) -> None:
    with make_client(args) as client:
        principals = client.list_principals()
        head = head_line(client)
    emit(args, [p.to_dict() for p in principals], ("principal_id", "name", "role"))
    print_head(head)


def print_head(head: dict[str, str | None]) -> None:
    """For commands whose output is a list: the domain and its state head on stderr (stdout stays the list)."""
    print(f"domain {head['domain_id']}  state head {head['state_head']}", file=sys.stderr)
