"""`kms data-key generate` and `kms re-encrypt`: envelope encryption without plaintext on the command line."""

from __future__ import annotations

import argparse
from typing import Any

from kms.client.envelope import PAIR_SPECS
from kms.commands.common import (
    add_key_id,
    b64,
    emit,
    make_client,
    parse_context,
    read_input,
    run_command,
    write_file,
)


def register(groups: Any, parent: argparse.ArgumentParser) -> None:
    """Add `kms data-key generate` and `kms re-encrypt`."""
    data_key = groups.add_parser("data-key", help="envelope encryption: data keys and data key pairs")
    sub = data_key.add_subparsers(dest="command", required=True, metavar="COMMAND")
    gen = sub.add_parser("generate", parents=[parent], help="a fresh data key (or key pair) and its ciphertext",
                         description="The plaintext key is printed base64-encoded, or written 0600 to "
                                     "--plaintext-out; the ciphertext decrypts later with `kms decrypt` and the "
                                     "same --context.")
    add_key_id(gen, "the SYMMETRIC_DEFAULT key that encrypts the data key")
    gen.add_argument("--bytes", type=int, default=32, choices=range(16, 65), metavar="16..64",
                     help="data key length (default 32; not with --pair)")
    gen.add_argument("--pair", metavar="SPEC", type=str.upper, choices=PAIR_SPECS,
                     help=f"a key pair instead: {', '.join(PAIR_SPECS)}")
    gen.add_argument("--no-plaintext", action="store_true", help="only the ciphertext (and a pair's public key)")
    gen.add_argument("--context", action="append", metavar="KEY=VALUE", help="encryption context (repeatable)")
    gen.add_argument("--plaintext-out", metavar="FILE", help="write the plaintext key here (0600), raw")
    gen.add_argument("--ciphertext-out", metavar="FILE", help="write the ciphertext here, raw")
    gen.add_argument("--public-key-out", metavar="FILE", help="--pair: write the public key (DER SPKI) here")
    gen.set_defaults(func=run_command(_generate))

    re = groups.add_parser("re-encrypt", parents=[parent],
                           help="move a ciphertext to another key or context inside the enclave")
    re.add_argument("--in", dest="input", default="-", metavar="FILE", help="the ciphertext (default stdin)")
    re.add_argument("--in-base64", action="store_true", help="the input is base64 text")
    re.add_argument("--destination-key-id", required=True, metavar="KEY_ID",
                    help="the key that encrypts the new ciphertext: its key id or alias/NAME")
    re.add_argument("--source-context", action="append", metavar="KEY=VALUE",
                    help="the encryption context the ciphertext was made with (repeatable)")
    dest = re.add_mutually_exclusive_group()
    dest.add_argument("--destination-context", action="append", metavar="KEY=VALUE",
                      help="the new ciphertext's context instead of the source context (repeatable)")
    dest.add_argument("--no-destination-context", action="store_true",
                      help="the new ciphertext has no encryption context (default: the source context is kept)")
    re.add_argument("--out", metavar="FILE", help="write the new ciphertext raw to FILE (- for stdout)")
    re.set_defaults(func=run_command(_re_encrypt))


def _put(args: argparse.Namespace, info: dict[str, Any], field: str, data: bytes, path: str | None, *,
         private: bool) -> None:
    if not data:
        return
    if path:
        write_file(path, data, private=private)
        info[f"{field}_file"] = path
    else:
        info[field] = b64(data)


def _generate(args: argparse.Namespace) -> None:
    context = parse_context(args.context)
    with make_client(args) as client:
        if args.pair:
            pair = client.generate_data_key_pair(args.key_id, args.pair, context, with_plaintext=not args.no_plaintext)
            info: dict[str, Any] = {"key_id": pair.key_id, "key_version": pair.key_version, "pair_spec": pair.pair_spec}
            _put(args, info, "public_key", pair.public_key, args.public_key_out, private=False)
            _put(args, info, "private_key", pair.private_key, args.plaintext_out, private=True)
            _put(args, info, "private_key_ciphertext", pair.private_key_ciphertext, args.ciphertext_out,
                 private=False)
        else:
            dk = client.generate_data_key(args.key_id, args.bytes, context, with_plaintext=not args.no_plaintext)
            info = {"key_id": dk.key_id, "key_version": dk.key_version}
            _put(args, info, "plaintext", dk.plaintext, args.plaintext_out, private=True)
            _put(args, info, "ciphertext", dk.ciphertext, args.ciphertext_out, private=False)
    emit(args, info)


def _re_encrypt(args: argparse.Namespace) -> None:
    source = parse_context(args.source_context, "--source-context")
    destination = None  # the source context is kept
    if args.no_destination_context:
        destination = {}
    elif args.destination_context:
        destination = parse_context(args.destination_context, "--destination-context")
    ciphertext = read_input(args.input, base64_text=args.in_base64, what="ciphertext")
    with make_client(args) as client:
        r = client.re_encrypt(ciphertext, args.destination_key_id, source, destination)
    info: dict[str, Any] = {"key_id": r.key_id, "key_version": r.key_version}
    if args.out:
        write_file(args.out, r.ciphertext, private=False)
        if args.out == "-":
            return
        info["ciphertext_file"] = args.out
    else:
        info["ciphertext"] = b64(r.ciphertext)
    emit(args, info)
