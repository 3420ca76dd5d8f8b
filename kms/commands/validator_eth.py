"""`kms validator eth create|import-keystore|public-key|list|status|export-slashing|import-slashing`: Ethereum
validator keys (BLS12-381, one chain each) managed from the CLI (docs/ethereum.md, docs/ethereum-keys.md)."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import Any

from kms import errors
from kms.client.client import KmsClient
from kms.client.eth import IMPORT_BATCH, chain_id_of
from kms.client.eth_formats import keystore_request, parse_interchange
from kms.client.types import KeyInfo
from kms.commands.common import LocalError, RemoteError, add_key_id, emit, make_client, read_input, run_command
from kms.commands.common import write_file as write_output
from kms.commands.flags import checked, hex_bytes

_LIST_COLUMNS = ("key_id", "state", "chain_id", "public_key", "description")
_HEAP_HINT = ("scrypt keystores (n=2^18, 256 MiB) need a server started with enclave_heap_mib >= 384 "
              "(docs/ethereum-keys.md); PBKDF2 keystores need nothing extra")


def _root(value: str) -> bytes:
    return hex_bytes(32)(value.removeprefix("0x"))


_root.__name__ = "genesis_validators_root"


def register(eth_sub: argparse._SubParsersAction, parent: argparse.ArgumentParser) -> None:
    """Add the key management commands under `kms validator eth` (next to `serve`)."""
    create = eth_sub.add_parser("create", parents=[parent], help="a new BLS validator key, generated in the enclave "
                                                                 "(admins)")
    _chain_flags(create)
    create.set_defaults(func=run_command(_create))

    imp = eth_sub.add_parser(
        "import-keystore", parents=[parent], help="import EIP-2335 keystores and their EIP-3076 history (admins)",
        description="The password is read from --password-file, from the variable --password-env names, or from "
                    "the terminal; never from a flag. Every file is checked before anything is sent; a key this "
                    "domain already holds (enabled) is refused. When one keystore fails, the keys this run imported "
                    "are disabled. Stop the old signer and export its slashing protection first.")
    imp.add_argument("--keystore", required=True, action="append", metavar="FILE",
                     help="an EIP-2335 keystore JSON file (repeat for several; one password for all)")
    pw = imp.add_mutually_exclusive_group()
    pw.add_argument("--password-file", metavar="FILE", help="a file holding the keystores' password")
    pw.add_argument("--password-env", metavar="NAME", help="the environment variable holding the password")
    imp.add_argument("--slashing-protection", metavar="FILE",
                     help="the old signer's EIP-3076 interchange, merged into the imported keys before they sign")
    _chain_flags(imp)
    imp.set_defaults(func=run_command(_import_keystore))

    pub = eth_sub.add_parser("public-key", parents=[parent], help="a BLS key's public key (48 bytes, 0x hex)")
    add_key_id(pub, "the BLS12_381 key")
    pub.set_defaults(func=run_command(_public_key))

    lst = eth_sub.add_parser("list", parents=[parent], help="the BLS validator keys, their chains and public keys")
    lst.set_defaults(func=run_command(_list))

    status = eth_sub.add_parser("status", parents=[parent],
                                help="a key's slashing guard: the lowest block slot and epochs it still signs")
    add_key_id(status, "the BLS12_381 key")
    status.set_defaults(func=run_command(_status))

    exp = eth_sub.add_parser("export-slashing", parents=[parent],
                             help="the EIP-3076 interchange of keys of one chain, as the enclave holds it")
    exp.add_argument("--key-id", required=True, action="append", metavar="KEY_ID",
                     help="a BLS12_381 key: its key id or alias/NAME (repeat for several)")
    exp.add_argument("--out", required=True, metavar="FILE", help="where to write the JSON ('-' for stdout)")
    exp.set_defaults(func=run_command(_export))

    sp = eth_sub.add_parser("import-slashing", parents=[parent],
                            help="merge an EIP-3076 interchange into the enabled keys it names (admins)",
                            description="Watermarks only rise. Keys of another chain than the interchange's are "
                                        "refused; public keys of no key here are listed as skipped.")
    sp.add_argument("--file", required=True, metavar="FILE", help="the EIP-3076 (v5) JSON ('-' for stdin)")
    sp.set_defaults(func=run_command(_import_slashing))


def _chain_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--genesis-validators-root", required=True, type=checked(_root), metavar="HEX",
                   help="the chain the key signs for: its genesis_validators_root (64 hex digits, 0x optional)")
    p.add_argument("--allow-voluntary-exit", action="store_true",
                   help="let the key sign VOLUNTARY_EXIT (default: refused)")
    p.add_argument("--description", default="", help="free text shown by describe and list")


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def _view(info: KeyInfo, public_key: bytes | None) -> dict[str, Any]:
    return {"key_id": info.key_id, "state": info.state, "chain_id": info.chain_id,
            "public_key": None if public_key is None else _hex(public_key), "description": info.description,
            "created_at": info.to_dict()["created_at"]}


def _bls_keys(client: KmsClient) -> list[tuple[KeyInfo, bytes | None]]:
    """Every BLS12_381 key the caller sees, with its public key (None where the key cannot answer: destroyed)."""
    out = []
    for info in client.list_keys():
        if info.spec != "BLS12_381":
            continue
        try:
            out.append((info, client.eth_public_key(info.key_id)))
        except errors.EnclaveFailure:
            out.append((info, None))
    return out


def _enabled_by_pubkey(client: KmsClient) -> dict[bytes, KeyInfo]:
    return {pub: info for info, pub in _bls_keys(client) if pub is not None and info.state == "ENABLED"}


def _create(args: argparse.Namespace) -> None:
    with make_client(args) as client:
        info = client.eth_generate_key(args.genesis_validators_root, description=args.description,
                                       allow_voluntary_exit=args.allow_voluntary_exit)
        view = _view(info, client.eth_public_key(info.key_id))
    emit(args, {**view, "allow_voluntary_exit": args.allow_voluntary_exit})


def _password(args: argparse.Namespace) -> str:
    if args.password_file:
        try:
            return read_input(args.password_file, what="the password").decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LocalError(f"--password-file {args.password_file}: not UTF-8 text") from exc
    if args.password_env:
        if args.password_env not in os.environ:
            raise LocalError(f"--password-env {args.password_env}: no such environment variable")
        return os.environ[args.password_env]
    if not sys.stdin.isatty():
        raise LocalError("no password: give --password-file FILE or --password-env NAME (or run on a terminal to "
                         "be prompted)")
    return getpass.getpass("keystore password: ")


def _load_json(path: str, what: str) -> Any:
    try:
        return json.loads(read_input(path, what=what))
    except ValueError as exc:
        raise LocalError(f"{what} {path}: not JSON: {exc}") from exc


def _keystores(args: argparse.Namespace) -> list[tuple[str, dict, bytes | None]]:
    """(file, keystore, its pubkey or None): every file parsed and checked before anything is sent."""
    out = []
    for path in args.keystore:
        keystore = _load_json(path, "--keystore")
        try:
            keystore_request(keystore, "")  # the SDK's own checks of the fields (EthFormatError)
            pubkey = hex_bytes(48)(str(keystore["pubkey"]).removeprefix("0x")) if "pubkey" in keystore else None
        except ValueError as exc:
            raise LocalError(f"--keystore {path}: {exc}") from exc
        out.append((path, keystore, pubkey))
    return out


def _interchange(path: str, gvr: bytes | None, flag: str) -> tuple[dict, bytes, set[bytes]]:
    """(interchange, its chain, the pubkeys it names); refused when of another chain than `gvr`."""
    interchange = _load_json(path, flag)
    try:
        root, records = parse_interchange(interchange)
    except ValueError as exc:
        raise LocalError(f"{flag} {path}: {exc}") from exc
    if gvr is not None and root != gvr:
        raise LocalError(f"{flag} {path}: the interchange is of chain {_hex(root)}, not {_hex(gvr)}: refused, "
                         "nothing imported")
    return interchange, root, {pub for pub, _ in records}


def _import_keystore(args: argparse.Namespace) -> None:
    keystores = _keystores(args)
    pubkeys = [pub for _, _, pub in keystores if pub is not None]
    if len(set(pubkeys)) != len(pubkeys):
        raise LocalError("--keystore: two files hold the same key: refused, nothing imported")
    history = (_interchange(args.slashing_protection, args.genesis_validators_root, "--slashing-protection")
               if args.slashing_protection else None)
    password = _password(args)
    with make_client(args) as client:
        held = _enabled_by_pubkey(client)
        for path, _, pubkey in keystores:
            if pubkey is not None:
                _check_new(held, path, pubkey)
        done: list[tuple[KeyInfo, bytes]] = []
        try:
            for path, keystore, _ in keystores:
                info = _import_one(client, args, path, keystore, password)
                done.append((info, client.eth_public_key(info.key_id)))
                _check_new(held, path, done[-1][1])  # a keystore without pubkey: known only now
                held[done[-1][1]] = info
            if history is not None:
                named = {pub: info.key_id for info, pub in done if pub in history[2]}
                if named:
                    client.eth_slashing_import(history[0], named)
        except (LocalError, RemoteError, errors.KmsError, ValueError, OSError) as exc:
            if not done:
                raise
            note = f"{exc}; {_withdraw(client, [info.key_id for info, _ in done])}"
            raise (LocalError(note) if isinstance(exc, (LocalError, ValueError, OSError)) else RemoteError(note)) \
                from exc
    emit(args, [{**_view(info, pub), "allow_voluntary_exit": args.allow_voluntary_exit,
                 "slashing_protection": history is not None and pub in history[2]} for info, pub in done],
         (*_LIST_COLUMNS, "slashing_protection"))


def _check_new(held: dict[bytes, KeyInfo], path: str, pubkey: bytes) -> None:
    if pubkey in held:
        raise LocalError(f"--keystore {path}: this domain holds the key already ({held[pubkey].key_id}): refused "
                         "(two keys would keep two slashing guards; disable the old one first)")


def _withdraw(client: KmsClient, key_ids: list[str]) -> str:
    """Disable the keys a failed run imported (none signs without its history, or after a partial import): what
    was done, for the one-line error."""
    off, left = [], []
    for key_id in key_ids:
        try:
            client.disable_key(key_id)
            off.append(key_id)
        except Exception:  # the original failure is the one reported; this key is named below
            left.append(key_id)
    return (f"disabled the keys this run imported ({', '.join(off)})" if off else "") + \
        (f"{'; ' if off else ''}could NOT disable {', '.join(left)}: disable them" if left else "")


def _import_one(client: KmsClient, args: argparse.Namespace, path: str, keystore: dict, password: str) -> KeyInfo:
    try:
        return client.eth_import_keystore(keystore, password, genesis_validators_root=args.genesis_validators_root,
                                          description=args.description,
                                          allow_voluntary_exit=args.allow_voluntary_exit)
    except errors.InvalidSignature as exc:
        raise LocalError(f"--keystore {path}: wrong password (the keystore's checksum does not match)") from exc
    except errors.InvalidKey as exc:
        raise LocalError(f"--keystore {path}: the decrypted key is not the keystore's pubkey: {exc}") from exc
    except errors.InternalError as exc:
        if "OUT_OF_MEMORY" in str(exc):
            raise RemoteError(f"--keystore {path}: the enclave ran out of memory deriving the key: {_HEAP_HINT}") \
                from exc
        raise


def _bls_info(client: KmsClient, key_id: str) -> KeyInfo:
    info = client.describe_key(key_id)
    if info.spec != "BLS12_381":
        raise LocalError(f"--key-id {key_id}: a {info.spec} key, not an Ethereum (BLS12_381) key")
    return info


def _public_key(args: argparse.Namespace) -> None:
    with make_client(args) as client:
        info = _bls_info(client, args.key_id)
        emit(args, {"key_id": info.key_id, "chain_id": info.chain_id,
                    "public_key": _hex(client.eth_public_key(info.key_id))})


def _list(args: argparse.Namespace) -> None:
    with make_client(args) as client:
        keys = _bls_keys(client)
    emit(args, [{c: v for c, v in _view(info, pub).items() if c in _LIST_COLUMNS} for info, pub in keys],
         _LIST_COLUMNS)


def _status(args: argparse.Namespace) -> None:
    with make_client(args) as client:
        info = _bls_info(client, args.key_id)
        w = client.eth_watermark(info.key_id)
        emit(args, {"key_id": info.key_id, "chain_id": info.chain_id, "public_key": _hex(client.eth_public_key(
                    info.key_id)), "min_block_slot": w.min_block_slot, "min_source_epoch": w.min_source_epoch,
                    "min_target_epoch": w.min_target_epoch})


def _export(args: argparse.Namespace) -> None:
    ids = list(dict.fromkeys(args.key_id))
    parts = []
    with make_client(args) as client:
        for batch in (ids[i:i + IMPORT_BATCH] for i in range(0, len(ids), IMPORT_BATCH)):
            try:
                parts.append(client.eth_slashing_export(batch))
            except errors.EnclaveFailure as exc:  # the enclave's code names no key: the command line does
                raise RemoteError(f"{exc} (--key-id {', '.join(batch)}: BLS12_381 keys of one chain)") from exc
    chains = {p["metadata"]["genesis_validators_root"] for p in parts}
    if len(chains) != 1:
        raise LocalError(f"--key-id: the keys are of several chains ({', '.join(sorted(chains))}): one interchange "
                         "per chain")
    out = {"metadata": parts[0]["metadata"], "data": [d for p in parts for d in p["data"]]}
    write_output(args.out, (json.dumps(out, indent=2) + "\n").encode(), private=False)
    if args.out != "-":
        emit(args, {"out": args.out, "genesis_validators_root": chains.pop(), "keys": len(out["data"])})


def _import_slashing(args: argparse.Namespace) -> None:
    interchange, root, named = _interchange(args.file, None, "--file")
    with make_client(args) as client:
        held = {pub: info for pub, info in _enabled_by_pubkey(client).items() if pub in named}
        other = {pub: info for pub, info in held.items() if info.chain_id != chain_id_of(root)}
        if other:
            raise LocalError(f"--file {args.file}: the interchange is of chain {_hex(root)}, the key(s) "
                             f"{', '.join(i.key_id for i in other.values())} of another "
                             f"({', '.join(sorted({i.chain_id for i in other.values()}))}): refused, nothing imported")
        if not held:
            raise LocalError(f"--file {args.file}: no enabled key of this domain has a public key the interchange "
                             "names: nothing imported")
        client.eth_slashing_import(interchange, {pub: info.key_id for pub, info in held.items()})
    emit(args, [{"public_key": _hex(pub), "key_id": held[pub].key_id if pub in held else None,
                 "status": "merged" if pub in held else "skipped (no key here)"} for pub in sorted(named)],
         ("public_key", "key_id", "status"))
