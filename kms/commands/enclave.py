"""`kms enclave keygen|sign|measure`: the development signer, SIGSTRUCT signing and enclave identity."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from kms import paths
from kms.commands.flags import add_output
from kms.enclave import sigstruct as ss

EXIT_OK, EXIT_LOCAL, EXIT_VERIFY = 0, 1, 2
# Where `make` puts the build, whatever the working directory; KMS_BUILD_DIR overrides it (the
# container image sets it). Resolved without importing the native bridge.
DEFAULT_IMAGE = str(paths.build_dir() / "kms_enclave.so")
DEFAULT_SIGSTRUCT = str(paths.build_dir() / "kms_enclave.sigstruct")


_LABELS = {"sigstruct": "SIGSTRUCT", "image": "IMAGE", "mrenclave": "MRENCLAVE", "mrsigner": "MRSIGNER",
           "isv_prod_id": "ISVPRODID", "isv_svn": "ISVSVN", "debug": "DEBUG", "date": "DATE",
           "signature_valid": "SIGNATURE VALID", "image_matches": "IMAGE MATCHES"}


def register(parser: argparse.ArgumentParser) -> None:
    """Add the enclave subcommands to the `kms enclave` group parser."""
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("keygen", help="create a development signer key (RSA-3072, e=3); prints MRSIGNER")
    p.add_argument("--out", required=True, help="PEM file to create (0600; never overwritten)")
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser("sign", help="sign an enclave image into a SIGSTRUCT")
    p.add_argument("--key", required=True, help="signer key, PEM (RSA-3072, e=3)")
    p.add_argument("--config", required=True, help="enclave config TOML (ISVPRODID, ISVSVN, debug, ...)")
    p.add_argument("--image", required=True, help="enclave image (.so)")
    p.add_argument("--out", required=True, help="SIGSTRUCT file to write (atomically)")
    p.set_defaults(func=cmd_sign)

    p = sub.add_parser("measure", help="print the identity of a built enclave and check its signature")
    p.add_argument("--image", help=f"enclave image (default {DEFAULT_IMAGE}, skipped if absent)")
    p.add_argument("--sigstruct", default=DEFAULT_SIGSTRUCT, help=f"SIGSTRUCT (default {DEFAULT_SIGSTRUCT})")
    add_output(p)
    p.set_defaults(func=cmd_measure)


def _fail(message: str, code: int = EXIT_LOCAL) -> int:
    print(f"kms enclave: {message}", file=sys.stderr)
    return code


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise _LocalError(f"cannot read {what} {path}: {e.strerror or e}") from None


class _LocalError(Exception):
    """A usage or local-file problem: exit 1 with a one-line message."""


def _write_atomic(path: str, data: bytes) -> None:
    """Write via a temporary file in the same directory, fsync, then rename over `path`."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cmd_keygen(args: argparse.Namespace) -> int:
    """Create the development signer key and print its MRSIGNER."""
    try:
        key = ss.generate_signer_key(args.out)
    except FileExistsError as e:
        if Path(args.out).exists():
            return _fail(str(e))
        return _fail(f"cannot create signer key {args.out}: {e.strerror or e}")
    except OSError as e:
        return _fail(f"cannot create signer key {args.out}: {e.strerror or e}")
    print(f"kms enclave: wrote development signer key {args.out} (0600); never commit it", file=sys.stderr)
    print(ss.mrsigner_of(key).hex())
    return EXIT_OK


def cmd_sign(args: argparse.Namespace) -> int:
    """Sign --image with --key and --config into --out."""
    try:
        config = ss.load_config(args.config)
        key = ss.load_signer_key(args.key)
        image = _read(args.image, "enclave image")
        blob = ss.sign_image(image, config, key)
        ss.verify(blob, image)  # never publish a SIGSTRUCT that does not verify
        _write_atomic(args.out, blob)
    except (_LocalError, ss.ConfigError, ss.SignerKeyError) as e:
        return _fail(str(e))
    except ss.SigStructError as e:
        return _fail(f"refusing to write {args.out}: {e}", EXIT_VERIFY)
    except OSError as e:
        return _fail(f"cannot write {args.out}: {e.strerror or e}")
    s = ss.parse(blob)
    print(f"signed {args.out}: MRENCLAVE={s.mrenclave.hex()} MRSIGNER={s.mrsigner.hex()} "
          f"ISVPRODID={s.isv_prod_id} ISVSVN={s.isv_svn} DEBUG={str(s.debug).lower()}")
    return EXIT_OK


def cmd_measure(args: argparse.Namespace) -> int:
    """Print MRENCLAVE, MRSIGNER, ISVPRODID, ISVSVN, DEBUG, date and the verification verdicts."""
    image_path = args.image
    if image_path is None and Path(DEFAULT_IMAGE).is_file():
        image_path = DEFAULT_IMAGE
    try:
        blob = _read(args.sigstruct, "SIGSTRUCT")
        image = _read(image_path, "enclave image") if image_path is not None else None
    except _LocalError as e:
        return _fail(str(e))
    try:
        s = ss.parse(blob)
    except ss.SigStructError as e:
        return _fail(f"{args.sigstruct}: {e}", EXIT_VERIFY)
    errors: list[str] = []
    try:
        ss.verify(s)
        signature_ok = True
    except ss.SigStructError as e:
        signature_ok = False
        errors.append(str(e))
    image_ok: bool | None = None
    if image is not None:
        image_ok = ss.measure_image(image) == s.mrenclave
        if not image_ok:
            errors.append(f"image {image_path} does not match MRENCLAVE (it measures "
                          f"{ss.measure_image(image).hex()})")
    report: dict[str, Any] = {
        "sigstruct": args.sigstruct, "image": image_path, "mrenclave": s.mrenclave.hex(),
        "mrsigner": s.mrsigner.hex(), "isv_prod_id": s.isv_prod_id, "isv_svn": s.isv_svn,
        "debug": s.debug, "date": s.date_iso, "signature_valid": signature_ok, "image_matches": image_ok,
    }
    if args.output == "json":
        print(json.dumps(report, indent=2))
    else:
        width = max(map(len, _LABELS.values()))
        for k, v in report.items():
            shown = "n/a" if v is None else str(v).lower() if isinstance(v, bool) else v
            print(f"{_LABELS[k]:<{width}}  {shown}")
    for message in errors:
        print(f"kms enclave: {message}", file=sys.stderr)
    return EXIT_OK if not errors else EXIT_VERIFY
