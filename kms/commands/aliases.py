"""`kms alias create|update|delete|list`: names usable wherever a key id is."""

from __future__ import annotations

import argparse

from kms.commands.common import add_key_id, emit, make_client, run_command

_COLUMNS = ("alias", "key_id")


def register(parser: argparse.ArgumentParser, parent: argparse.ArgumentParser) -> None:
    """Add the alias commands under `kms alias`."""
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text, func in (("create", "name a key: alias/<name> (admins)", _create),
                                  ("update", "point an alias at another key (admins)", _update)):
        p = sub.add_parser(name, parents=[parent], help=help_text)
        p.add_argument("alias", metavar="ALIAS", help="alias/<name>: 1..34 of A-Z a-z 0-9 / _ -")
        add_key_id(p, "the key it names")
        p.set_defaults(func=run_command(func))
    delete = sub.add_parser("delete", parents=[parent], help="remove an alias (admins)")
    delete.add_argument("alias", metavar="ALIAS", help="alias/<name>")
    delete.set_defaults(func=run_command(_delete))
    listing = sub.add_parser("list", parents=[parent], help="every alias and its key")
    listing.set_defaults(func=run_command(_list))


def _show(args: argparse.Namespace, aliases: dict[str, str]) -> None:
    emit(args, [{"alias": a, "key_id": k} for a, k in sorted(aliases.items())], _COLUMNS)


def _create(args: argparse.Namespace) -> None:
    with make_client(args) as client:
        _show(args, client.create_alias(args.alias, args.key_id))


def _update(args: argparse.Namespace) -> None:
    with make_client(args) as client:
        _show(args, client.update_alias(args.alias, args.key_id))


def _delete(args: argparse.Namespace) -> None:
    with make_client(args) as client:
        _show(args, client.delete_alias(args.alias))


def _list(args: argparse.Namespace) -> None:
    with make_client(args) as client:
        _show(args, client.list_aliases())
