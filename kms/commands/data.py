"""`kms encrypt|decrypt|sign|verify|public-key`: data in from files or stdin, never from argv."""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO

from kms.client.envelope import ENVELOPE_PREFIX, is_envelope
from kms.client.errors import InvalidMessage
from kms.client.types import MAX_PLAINTEXT
from kms.commands.common import (
    SECRET_MAX,
    LocalError,
    add_key_id,
    b64,
    emit,
    make_client,
    parse_context,
    read_input,
    run_command,
    write_file,
)
from kms.commands.flags import checked, one_of
from kms.proto.enclave.v1 import boundary_pb2 as pb

_IN_HELP = "file to read, or - for stdin (default -)"
_OUT_HELP = "write the raw result to FILE (or - for raw bytes on stdout) instead of printing it base64-encoded"


def register(groups: Any, parent: argparse.ArgumentParser) -> None:
    """Add the data commands as top-level `kms` commands."""
    enc = groups.add_parser("encrypt", parents=[parent], help="encrypt a plaintext of any size (file or stdin)",
                            description=f"Up to {MAX_PLAINTEXT} bytes (the enclave's limit) are encrypted by the "
                                        "enclave itself; larger input is envelope-encrypted (an AWS Encryption SDK "
                                        "message: a data key from the KMS, the data encrypted locally in frames) "
                                        "and needs --out. `kms decrypt` tells the two apart.")
    add_key_id(enc, "the SYMMETRIC_DEFAULT key")
    enc.add_argument("--in", dest="input", default="-", metavar="FILE", help=_IN_HELP)
    enc.add_argument("--context", action="append", metavar="KEY=VALUE", help="encryption context (repeatable)")
    enc.add_argument("--out", metavar="FILE", help=_OUT_HELP)
    enc.add_argument("--envelope", choices=("auto", "always", "never"), default="auto",
                     help=f"envelope encryption: auto (above {MAX_PLAINTEXT} bytes; default), always, or never "
                          "(refuse larger input)")
    enc.set_defaults(func=run_command(_encrypt))

    dec = groups.add_parser("decrypt", parents=[parent], help="decrypt a ciphertext or an envelope message",
                            description="An envelope message's plaintext goes to --out: a file appears only once "
                                        "the whole message verified; with --out - each frame is written once its "
                                        "tag verified, and a non-zero exit means: discard what was written.")
    dec.add_argument("--in", dest="input", default="-", metavar="FILE", help=_IN_HELP)
    dec.add_argument("--in-base64", action="store_true", help="the input is base64 text (as --output json prints)")
    dec.add_argument("--context", action="append", metavar="KEY=VALUE", help="encryption context (repeatable)")
    dec.add_argument("--out", metavar="FILE", help=_OUT_HELP + " (a file is created 0600)")
    dec.set_defaults(func=run_command(_decrypt))

    algorithm_names = [n for n in pb.SigningAlgorithm.keys() if not n.endswith("UNSPECIFIED")]
    algorithms = ", ".join(algorithm_names)
    for name, func in (("sign", _sign), ("verify", _verify)):
        p = groups.add_parser(name, parents=[parent], help=f"{name} a message or a digest (file or stdin)")
        add_key_id(p, "the signing key")
        p.add_argument("--in", dest="input", default="-", metavar="FILE", help=_IN_HELP)
        p.add_argument("--digest", action="store_true", help="the input is a precomputed digest (not Ed25519)")
        p.add_argument("--algorithm", type=checked(one_of(algorithm_names, "algorithm")),
                       help=f"{algorithms} (default by key spec)")
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


class _Prefixed:
    """A source whose first bytes were read already."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self.head, self.rest = head, rest

    def read(self, n: int = -1) -> bytes:
        if not self.head:
            return self.rest.read(n)
        if n < 0:
            out, self.head = self.head, b""
            return out + self.rest.read()
        out, self.head = self.head[:n], self.head[n:]
        return out  # a short read, as a pipe may give


@contextmanager
def _source(path: str, what: str) -> Iterator[BinaryIO]:
    """A file or stdin ('-'), opened for streaming."""
    if path == "-":
        yield sys.stdin.buffer
        return
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise LocalError(f"cannot read {what} from {path}: {exc.strerror or exc}") from exc
    with f:
        yield f


def _read_up_to(src: BinaryIO, n: int, path: str, what: str) -> bytes:
    parts, left = [], n
    try:
        while left and (part := src.read(left)):
            parts.append(part)
            left -= len(part)
    except OSError as exc:
        raise LocalError(f"cannot read {what} from {path}: {exc.strerror or exc}") from exc
    return b"".join(parts)


@contextmanager
def _output(path: str, *, private: bool) -> Iterator[BinaryIO]:
    """Stdout ('-'), or a new file next to `path` that replaces it only when the block succeeds (on any error it
    is removed: no partial output is left behind)."""
    if path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    target = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")  # 0600
    except OSError as exc:
        raise LocalError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        if not private:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o644 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise


def _encrypt(args: argparse.Namespace) -> None:
    context = parse_context(args.context)
    with _source(args.input, "plaintext") as src:
        head = _read_up_to(src, MAX_PLAINTEXT + 1, args.input, "plaintext")
        if len(head) > MAX_PLAINTEXT and args.envelope == "never":
            raise LocalError(f"the plaintext is larger than {MAX_PLAINTEXT} bytes, the enclave's limit for a direct "
                             "Encrypt: drop --envelope never (larger input is envelope-encrypted: a data key from "
                             "the KMS, the data encrypted locally)")
        if len(head) > MAX_PLAINTEXT or args.envelope == "always":
            _encrypt_envelope(args, context, _Prefixed(head, src))
            return
    with make_client(args) as client:
        r = client.encrypt(args.key_id, head, context)
    _result(args, {"key_id": r.key_id, "key_version": r.key_version}, "ciphertext", r.ciphertext, private=False)


def _encrypt_envelope(args: argparse.Namespace, context: dict[str, str], src: _Prefixed) -> None:
    if not args.out:
        raise LocalError(f"input above {MAX_PLAINTEXT} bytes (the enclave's limit for a direct Encrypt) is "
                         "envelope-encrypted and written raw: give --out FILE (or --out - for stdout)")
    with make_client(args) as client, _output(args.out, private=False) as dst:
        r = client.encrypt_stream(args.key_id, src, dst, context)
    if args.out != "-":
        emit(args, {"key_id": r.key_id, "key_version": r.key_version, "format": "envelope",
                    "plaintext_bytes": r.plaintext_length, "ciphertext_file": args.out})


def _decrypt(args: argparse.Namespace) -> None:
    context = parse_context(args.context)
    if args.in_base64:
        ciphertext = read_input(args.input, base64_text=True, what="ciphertext")
        if is_envelope(ciphertext):
            _decrypt_envelope(args, context, io.BytesIO(ciphertext))
            return
    else:
        with _source(args.input, "ciphertext") as src:
            head = _read_up_to(src, ENVELOPE_PREFIX, args.input, "ciphertext")
            if is_envelope(head):
                _decrypt_envelope(args, context, _Prefixed(head, src))
                return
            ciphertext = head + _read_up_to(src, SECRET_MAX + 1 - len(head), args.input, "ciphertext")
        if len(ciphertext) > SECRET_MAX:
            raise LocalError(f"ciphertext larger than {SECRET_MAX} bytes and not an envelope message")
    with make_client(args) as client:
        r = client.decrypt(ciphertext, context)
    _result(args, {"key_id": r.key_id, "key_version": r.key_version}, "plaintext", r.plaintext, private=True)


def _decrypt_envelope(args: argparse.Namespace, context: dict[str, str], src: BinaryIO | _Prefixed) -> None:
    if not args.out:
        raise LocalError("an envelope message's plaintext is written raw: give --out FILE (or --out - for stdout)")
    with make_client(args) as client, _output(args.out, private=True) as dst:
        try:
            r = client.decrypt_stream(src, dst, context)
        except InvalidMessage as exc:
            if args.out != "-":
                raise
            raise InvalidMessage(f"{exc} (what was written to stdout is not authentic: discard it)") from exc
    if args.out != "-":
        emit(args, {"key_id": r.key_id, "key_version": r.key_version, "format": "envelope",
                    "plaintext_bytes": r.plaintext_length, "plaintext_file": args.out})


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
