"""`kms key create|list|describe|enable|disable|rotate|schedule-deletion|cancel-deletion|update|import` (who may use
a key: `kms grant`, `kms policy`)."""

from __future__ import annotations

import argparse

from cryptography.hazmat.primitives import serialization

from kms.client.byok import key_material
from kms.client.types import SPEC_ALIASES, KeyInfo
from kms.commands.common import (
    LocalError,
    add_key_id,
    emit,
    make_client,
    read_input,
    run_command,
)
from kms.commands.flags import checked, int_range, one_of
from kms.proto.enclave.v1 import boundary_pb2 as pb

_SPECS = [n for n in pb.KeySpec.keys() if not n.endswith("UNSPECIFIED")]
_SPEC = checked(one_of(_SPECS, "key spec", SPEC_ALIASES))
_USAGE = checked(one_of([n for n in pb.KeyUsage.keys() if not n.endswith("UNSPECIFIED")], "key usage"))
_COLUMNS = ("key_id", "spec", "usage", "state", "current_version", "created_at", "description")


def register(parser: argparse.ArgumentParser, parent: argparse.ArgumentParser) -> None:
    """Add the key commands under `kms key`."""
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    specs = ", ".join(_SPECS)

    create = sub.add_parser("create", parents=[parent], help="create a key (admins)")
    create.add_argument("--spec", type=_SPEC, default="SYMMETRIC_DEFAULT",
                        help=f"key spec: {specs} (default SYMMETRIC_DEFAULT)")
    create.add_argument("--usage", type=_USAGE,
                        help="ENCRYPT_DECRYPT, SIGN_VERIFY, GENERATE_VERIFY_MAC or KEY_AGREEMENT (default by spec)")
    create.add_argument("--description", default="", help="free text shown by describe and list")
    create.set_defaults(func=run_command(_create))

    listing = sub.add_parser("list", parents=[parent], help="list the keys you may see")
    listing.add_argument("--page-size", type=int, default=32, choices=range(1, 33), metavar="1..32",
                         help="keys fetched per request (default 32)")
    listing.set_defaults(func=run_command(_list))

    for name, help_text, func in (("describe", "show a key's metadata", _describe),
                                  ("enable", "enable a key (admins)", _enable),
                                  ("disable", "disable a key: no use until enabled again (admins)", _disable),
                                  ("rotate", "new key version; old versions still decrypt/verify (admins)", _rotate)):
        p = sub.add_parser(name, parents=[parent], help=help_text)
        add_key_id(p)
        p.set_defaults(func=run_command(func))
    _register_lifecycle(sub, parent, specs)


def _register_lifecycle(sub: argparse._SubParsersAction, parent: argparse.ArgumentParser, specs: str) -> None:
    sched = sub.add_parser("schedule-deletion", parents=[parent],
                           help="PENDING_DELETION: every use refused; destroyed after the window (admins)")
    add_key_id(sched)
    sched.add_argument("--pending-window-days", type=int, default=30, choices=range(7, 31), metavar="7..30",
                       help="days before the server may destroy it (default 30)")
    sched.set_defaults(func=run_command(_schedule))
    cancel = sub.add_parser("cancel-deletion", parents=[parent],
                            help="take a key out of PENDING_DELETION; it comes back DISABLED (admins)")
    add_key_id(cancel)
    cancel.set_defaults(func=run_command(_cancel))

    update = sub.add_parser("update", parents=[parent], help="change a key's settings (admins)")
    add_key_id(update)
    update.add_argument("--min-decrypt-version", type=checked(int_range(1, 2**32 - 1)), metavar="N",
                        help="retire versions below N: their ciphertexts no longer decrypt")
    update.add_argument("--rotation-period-days", type=checked(int_range(0, 3650)), metavar="D",
                        help="rotate every D days (1..3650; 0 turns scheduled rotation off; AES keys)")
    update.add_argument("--description", help="new free text")
    update.set_defaults(func=run_command(_update))

    imp = sub.add_parser("import", parents=[parent], help="import your own key material (BYOK; admins)",
                         description="Verify the server, fetch a wrapping key generated in its enclave, wrap the "
                                     "material locally and import it. The material never leaves this machine "
                                     "unwrapped.")
    imp.add_argument("--spec", type=_SPEC, required=True, help=f"key spec: {specs}")
    imp.add_argument("--usage", type=_USAGE, help="default by spec")
    imp.add_argument("--material", required=True, metavar="FILE",
                     help="raw key bytes (AES 32, HMAC 32/48/64) or a private key (PEM or DER, PKCS#8 or "
                          "traditional); - for stdin")
    imp.add_argument("--wrapping", choices=("auto", "RSAES_OAEP_SHA_256_WRAP", "RSA_AES_KEY_WRAP_SHA_256"),
                     default="auto", help="wrapping algorithm (default: RSA-OAEP when the material fits)")
    imp.add_argument("--description", default="", help="free text shown by describe and list")
    imp.set_defaults(func=run_command(_import))


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


def _schedule(args: argparse.Namespace) -> None:
    with make_client(args) as client:
        _show(args, client.schedule_key_deletion(args.key_id, args.pending_window_days))


def _cancel(args: argparse.Namespace) -> None:
    with make_client(args) as client:
        _show(args, client.cancel_key_deletion(args.key_id))


def _update(args: argparse.Namespace) -> None:
    if args.min_decrypt_version is None and args.rotation_period_days is None and args.description is None:
        raise LocalError("give --min-decrypt-version, --rotation-period-days or --description")
    with make_client(args) as client:
        _show(args, client.update_key(args.key_id, min_decrypt_version=args.min_decrypt_version,
                                      rotation_period_days=args.rotation_period_days, description=args.description))


def _material(data: bytes, spec: str) -> bytes:
    """Symmetric specs take the raw bytes; asymmetric ones a private key file, sent as PKCS#8 DER."""
    if spec.upper().startswith(("SYMMETRIC", "HMAC", "AES")):
        return data
    try:
        key = (serialization.load_pem_private_key(data, None) if data.lstrip().startswith(b"-----")
               else serialization.load_der_private_key(data, None))
    except (ValueError, TypeError) as exc:
        raise LocalError(f"--material is not an unencrypted private key (PEM or DER): {exc}") from exc
    return key_material(key)  # type: ignore[arg-type]


def _import(args: argparse.Namespace) -> None:
    material = _material(read_input(args.material, what="key material"), args.spec)
    algorithm = None if args.wrapping == "auto" else args.wrapping
    with make_client(args) as client:  # verified before anything is fetched or wrapped
        _show(args, client.import_key(args.spec, material, args.usage, description=args.description,
                                      algorithm=algorithm))
