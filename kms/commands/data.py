"""`kms encrypt|decrypt|sign|verify|public-key`: data in from files or stdin, never from argv."""

from __future__ import annotations

import argparse
from typing import Any

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
from kms.proto.enclave.v1 import boundary_pb2 as pb

_IN_HELP = "file to read, or - for stdin (default -)"
_OUT_HELP = "write the raw result to FILE (or - for raw bytes on stdout) instead of printing it base64-encoded"


def register(groups: Any, parent: argparse.ArgumentParser) -> None:
    """Add the data commands as top-level `kms` commands."""
    enc = groups.add_parser("encrypt", parents=[parent], help="encrypt a plaintext (file or stdin)")
    add_key_id(enc, "the SYMMETRIC_DEFAULT key")
    enc.add_argument("--in", dest="input", default="-", metavar="FILE", help=_IN_HELP)
    enc.add_argument("--context", action="append", metavar="KEY=VALUE", help="encryption context (repeatable)")
    enc.add_argument("--out", metavar="FILE", help=_OUT_HELP)
    enc.set_defaults(func=run_command(_encrypt))

    dec = groups.add_parser("decrypt", parents=[parent], help="decrypt a ciphertext (file or stdin)")
    dec.add_argument("--in", dest="input", default="-", metavar="FILE", help=_IN_HELP)
    dec.add_argument("--in-base64", action="store_true", help="the input is base64 text (as --output json prints)")
    dec.add_argument("--context", action="append", metavar="KEY=VALUE", help="encryption context (repeatable)")
    dec.add_argument("--out", metavar="FILE", help=_OUT_HELP + " (a file is created 0600)")
    dec.set_defaults(func=run_command(_decrypt))

    algorithms = ", ".join(n for n in pb.SigningAlgorithm.keys() if not n.endswith("UNSPECIFIED"))
    for name, func in (("sign", _sign), ("verify", _verify)):
        p = groups.add_parser(name, parents=[parent], help=f"{name} a message or a digest (file or stdin)")
        add_key_id(p, "the signing key")
        p.add_argument("--in", dest="input", default="-", metavar="FILE", help=_IN_HELP)
        p.add_argument("--digest", action="store_true", help="the input is a precomputed digest (not Ed25519)")
        p.add_argument("--algorithm", help=f"{algorithms} (default by key spec)")
        p.add_argument("--p1363", action="store_true", help="ECDSA signature as r||s instead of DER")
        if name == "sign":
            p.add_argument("--out", metavar="FILE", help=_OUT_HELP)
        else:
            p.add_argument("--signature", required=True, metavar="FILE", help="the signature (raw bytes)")
            p.add_argument("--signature-base64", action="store_true", help="the signature file is base64 text")
            p.add_argument("--key-version", type=int, default=0, help="verify with this version (default current)")
        p.set_defaults(func=run_command(func))

    pub = groups.add_parser("public-key", parents=[parent], help="an asymmetric key's public key")
    add_key_id(pub, "the asymmetric key")
    pub.add_argument("--pem", action="store_true", help="PEM instead of DER SubjectPublicKeyInfo")
    pub.add_argument("--out", metavar="FILE", help="write the key to FILE (or - for stdout)")
    pub.set_defaults(func=run_command(_public_key))


def _result(args: argparse.Namespace, info: dict[str, Any], field: str, data: bytes, *, private: bool) -> None:
    """Raw bytes to --out (then the metadata alone is printed), else printed with the data base64-encoded."""
    if args.out:
        write_file(args.out, data, private=private)
        if args.out == "-":
            return
        info[f"{field}_file"] = args.out
    else:
        info[field] = b64(data)
    emit(args, info)


def _encrypt(args: argparse.Namespace) -> None:
    context = parse_context(args.context)
    plaintext = read_input(args.input, what="plaintext")
    with make_client(args) as client:
        r = client.encrypt(args.key_id, plaintext, context)
    _result(args, {"key_id": r.key_id, "key_version": r.key_version}, "ciphertext", r.ciphertext, private=False)


def _decrypt(args: argparse.Namespace) -> None:
    context = parse_context(args.context)
    ciphertext = read_input(args.input, base64_text=args.in_base64, what="ciphertext")
    with make_client(args) as client:
        r = client.decrypt(ciphertext, context)
    _result(args, {"key_id": r.key_id, "key_version": r.key_version}, "plaintext", r.plaintext, private=True)


def _message(args: argparse.Namespace) -> dict[str, bytes]:
    data = read_input(args.input, what="message")
    return {"digest": data} if args.digest else {"message": data}


def _sign(args: argparse.Namespace) -> None:
    message = _message(args)
    with make_client(args) as client:
        r = client.sign(args.key_id, algorithm=args.algorithm, p1363=args.p1363, **message)
    info = {"key_id": r.key_id, "key_version": r.key_version, "algorithm": r.algorithm}
    _result(args, info, "signature", r.signature, private=False)


def _verify(args: argparse.Namespace) -> None:
    message = _message(args)
    signature = read_input(args.signature, base64_text=args.signature_base64, what="signature")
    with make_client(args) as client:
        valid = client.verify(args.key_id, signature=signature, algorithm=args.algorithm, p1363=args.p1363,
                              key_version=args.key_version, **message)
    emit(args, {"key_id": args.key_id, "valid": valid})


def _public_key(args: argparse.Namespace) -> None:
    with make_client(args) as client:
        r = client.get_public_key(args.key_id, pem=args.pem)
    info: dict[str, Any] = {"key_id": r.key_id, "key_version": r.key_version, "spec": r.spec}
    if args.out:
        write_file(args.out, r.public_key, private=False)
        if args.out == "-":
            return
        info["public_key_file"] = args.out
    elif args.pem:
        info["public_key_pem"] = r.public_key.decode("ascii")
    else:
        info["public_key"] = b64(r.public_key)
    emit(args, info)
