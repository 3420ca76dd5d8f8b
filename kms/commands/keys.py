"""`kms key create|list|describe|enable|disable|rotate|grant|revoke`."""

from __future__ import annotations

import argparse

from kms.client.types import KeyInfo
from kms.commands.common import add_principal_args, emit, make_client, principal_arg, run_command
from kms.proto.enclave.v1 import boundary_pb2 as pb

_COLUMNS = ("key_id", "spec", "usage", "state", "current_version", "created_at", "description")


def register(parser: argparse.ArgumentParser, parent: argparse.ArgumentParser) -> None:
    """Add the key commands under `kms key`."""
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    specs = ", ".join(n for n in pb.KeySpec.keys() if not n.endswith("UNSPECIFIED"))

    create = sub.add_parser("create", parents=[parent], help="create a key (admins)")
    create.add_argument("--spec", default="SYMMETRIC_DEFAULT", help=f"key spec: {specs} (default SYMMETRIC_DEFAULT)")
    create.add_argument("--usage", help="ENCRYPT_DECRYPT, SIGN_VERIFY, GENERATE_VERIFY_MAC or KEY_AGREEMENT "
                                        "(default by spec)")
    create.add_argument("--description", default="")
    create.set_defaults(func=run_command(_create))

    listing = sub.add_parser("list", parents=[parent], help="list the keys you may see")
    listing.add_argument("--page-size", type=int, default=32, choices=range(1, 33), metavar="1..32")
    listing.set_defaults(func=run_command(_list))

    for name, help_text, func in (("describe", "show a key's metadata", _describe),
                                  ("enable", "enable a key (admins)", _enable),
                                  ("disable", "disable a key: no use until enabled again (admins)", _disable),
                                  ("rotate", "new key version; old versions still decrypt/verify (admins)", _rotate)):
        p = sub.add_parser(name, parents=[parent], help=help_text)
        p.add_argument("key_id", metavar="KEY_ID")
        p.set_defaults(func=run_command(func))

    for name, help_text, func in (("grant", "let a principal use a key (admins)", _grant),
                                  ("revoke", "take a key's use away from a principal (admins)", _revoke)):
        p = sub.add_parser(name, parents=[parent], help=help_text)
        p.add_argument("key_id", metavar="KEY_ID")
        add_principal_args(p)
        p.set_defaults(func=run_command(func))


def _show(args: argparse.Namespace, info: KeyInfo) -> None:
    emit(args, info.to_dict())


def _create(args: argparse.Namespace) -> None:
    with make_client(args) as client:
        _show(args, client.create_key(args.spec, args.usage, args.description))


def _list(args: argparse.Namespace) -> None:
    with make_client(args) as client:
        keys = [k.to_dict() for k in client.list_keys(page_size=args.page_size)]
    emit(args, keys, _COLUMNS)


def _describe(args: argparse.Namespace) -> None:
    with make_client(args) as client:
        _show(args, client.describe_key(args.key_id))


def _enable(args: argparse.Namespace) -> None:
    with make_client(args) as client:
        _show(args, client.enable_key(args.key_id))


def _disable(args: argparse.Namespace) -> None:
    with make_client(args) as client:
        _show(args, client.disable_key(args.key_id))


def _rotate(args: argparse.Namespace) -> None:
    with make_client(args) as client:
        _show(args, client.rotate_key(args.key_id))


def _grant(args: argparse.Namespace) -> None:
    principal = principal_arg(args)
    with make_client(args) as client:
        client.grant_key(args.key_id, principal)
    emit(args, {"key_id": args.key_id, "principal_id": principal.hex(), "granted": True})


def _revoke(args: argparse.Namespace) -> None:
    principal = principal_arg(args)
    with make_client(args) as client:
        client.ungrant_key(args.key_id, principal)
    emit(args, {"key_id": args.key_id, "principal_id": principal.hex(), "granted": False})
