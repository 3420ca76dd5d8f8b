"""`kms validator run|status|create|import|import-state`: CometBFT remote signing through the KMS;
`kms validator eth serve`: the Web3Signer-compatible API for Ethereum validators (the eth key commands:
validator_eth.py)."""

from __future__ import annotations

import argparse
import base64
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from kms import errors
from kms.client.client import KmsClient
from kms.commands import validator_eth
from kms.commands.common import (
    LocalError,
    add_key_id,
    connection_parent,
    emit,
    make_client,
    read_input,
    run_command,
)
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.validator.canonical import STEP_NAMES
from kms.validator.config import ValidatorConfigError
from kms.validator.keyfiles import KeyFileError, import_request, parse_state, parse_validator_key
from kms.validator.kms_link import SPECS, ValidatorLink, ValidatorPublicKey

_PUB_TYPES = {"ed25519": "tendermint/PubKeyEd25519", "secp256k1": "tendermint/PubKeySecp256k1"}


def register(parser: argparse.ArgumentParser, parent: argparse.ArgumentParser) -> None:
    """Add the validator commands under `kms validator`."""
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="sign for CometBFT nodes (dials each node's priv_validator_laddr)",
                         description="Reads a TOML file: [kms] (server, credentials and the attestation policy, "
                                     "named like this CLI's flags), [signer] and one [[validator]] per chain "
                                     "(chain_id, key_id, addr). Stops on SIGTERM. See docs/validators.md.")
    run.add_argument("--config", type=Path, required=True, metavar="FILE", help="the signer's TOML configuration")
    run.set_defaults(func=_run)

    status = sub.add_parser("status", parents=[parent], help="the guard's last signed height/round/step of a key")
    add_key_id(status, "the validator key")
    status.set_defaults(func=run_command(_status))

    create = sub.add_parser("create", parents=[parent], help="a new validator key, generated in the enclave (admins)")
    create.add_argument("--chain-id", required=True, help="the chain the key signs for (e.g. cosmoshub-4)")
    create.add_argument("--spec", choices=sorted(SPECS), default="ed25519", help="key type (default ed25519)")
    create.add_argument("--description", default="", help="free text shown by describe and list")
    create.set_defaults(func=run_command(_create))

    imp = sub.add_parser("import", parents=[parent], help="import priv_validator_key.json and its state (admins)",
                         description="Stop the old signer first. The key is sent only after the server's enclave "
                                     "verified against the policy, inside the attested session.")
    imp.add_argument("--key", required=True, metavar="FILE", help="priv_validator_key.json (or a tmkms seed file)")
    imp.add_argument("--state", required=True, metavar="FILE", help="priv_validator_state.json of the old signer")
    imp.add_argument("--chain-id", required=True, help="the chain the key signs for (e.g. cosmoshub-4)")
    imp.add_argument("--description", default="", help="free text shown by describe and list")
    imp.set_defaults(func=run_command(_import))

    eth = sub.add_parser("eth", help="Ethereum validators: BLS keys, slashing protection and the Web3Signer-compatible "
                                     "HTTP API (docs/ethereum.md)")
    eth_sub = eth.add_subparsers(dest="eth_command", required=True, metavar="COMMAND")
    serve = eth_sub.add_parser("serve", help="serve the Web3Signer-compatible signing API to consensus clients",
                               description="Reads a TOML file: [kms] (as for `kms validator run`) and [eth] (listen, "
                                           "preset, genesis_fork_version, state_dir, keymanager_token_file, "
                                           "metrics_listen, log_level). Stops on SIGTERM. See docs/ethereum.md.")
    serve.add_argument("--config", type=Path, required=True, metavar="FILE", help="the signer's TOML configuration")
    serve.set_defaults(func=_eth_serve)
    validator_eth.register(eth_sub, parent)

    restore = sub.add_parser("import-state", parents=[parent],
                             help="move a key's guard forward to a signed state export (from `status --output json`)")
    restore.add_argument("--export", required=True, metavar="FILE", help="base64 export (or '-' for stdin)")
    restore.set_defaults(func=run_command(_import_state))


def _run(args: argparse.Namespace) -> int:
    from kms.validator.runner import run

    return run(args.config, connect)


def _eth_serve(args: argparse.Namespace) -> int:
    from kms.validator.eth.runner import run

    return run(args.config, connect)


class _TableParser(argparse.ArgumentParser):
    """The [kms] table read as flags: a bad value is the configuration's error, not a usage screen."""

    def error(self, message: str) -> NoReturn:
        raise ValidatorConfigError(f"[kms] {message}")


def connect(kms_argv: Sequence[str]) -> KmsClient:
    """The verified session `kms validator run` signs through: its [kms] table, as this CLI's flags."""
    parser = _TableParser(parents=[connection_parent()], add_help=False)
    try:
        return make_client(parser.parse_args(list(kms_argv)))
    except LocalError as exc:  # credentials or policy settings: the configuration's fault
        raise ValidatorConfigError(str(exc)) from exc


def _address(key: ValidatorPublicKey) -> str | None:
    digest = hashlib.sha256(key.raw).digest()
    if key.key_type == "ed25519":
        return digest[:20].hex().upper()
    try:
        return hashlib.new("ripemd160", digest).hexdigest().upper()
    except ValueError:  # OpenSSL without the legacy provider
        return None


def _key_view(info: dict, key: ValidatorPublicKey) -> dict:
    return {**info, "pub_key_type": _PUB_TYPES[key.key_type], "pub_key": base64.b64encode(key.raw).decode(),
            "address": _address(key)}


def _state_view(e: pb.ValidatorStateExport) -> dict:
    return {"key_id": e.key_id, "chain_id": e.chain_id, "height": e.height, "round": e.round,
            "step": STEP_NAMES.get(e.step, "none"), "revision": e.revision,
            "block_id_hash": e.block_id_hash.hex() or None}


def _status(args: argparse.Namespace) -> None:
    with make_client(args) as client:
        export = ValidatorLink(client).state(args.key_id)
    view = _state_view(export)
    if args.output == "json":
        view["export"] = base64.b64encode(export.SerializeToString()).decode()
    emit(args, view)


def _create(args: argparse.Namespace) -> None:
    with make_client(args) as client:
        link = ValidatorLink(client)
        info = link.create(args.chain_id, args.spec, args.description)
        emit(args, _key_view(info.to_dict(), link.public_key(info.key_id)))


def _import(args: argparse.Namespace) -> None:
    try:
        key = parse_validator_key(read_input(args.key, what="the key file").decode())
    except (KeyFileError, UnicodeDecodeError) as exc:
        raise LocalError(f"--key {args.key}: {exc}") from exc
    try:
        state = parse_state(read_input(args.state, what="the state file").decode())
    except (KeyFileError, UnicodeDecodeError) as exc:
        raise LocalError(f"--state {args.state}: {exc}") from exc
    with make_client(args) as client:  # verifies the enclave before any session, hence before the key is sent
        link = ValidatorLink(client)
        info = link.import_validator(import_request(key, state, args.chain_id, args.description))
        public = link.public_key(info.key_id)
    if public.raw != key.public_key:
        raise LocalError("the imported key's public key differs from the file's: do not use it")
    view = _key_view(info.to_dict(), public)
    view.update(height=state.height, round=state.round, step=STEP_NAMES.get(state.step, "none"))
    emit(args, view)


def _import_state(args: argparse.Namespace) -> None:
    export = pb.ValidatorStateExport()
    data = read_input(args.export, base64_text=True, what="--export")
    try:
        export.ParseFromString(data)
    except Exception as exc:
        raise LocalError(f"--export {args.export}: not a state export (base64 from `kms validator status --output "
                         "json`)") from exc
    with make_client(args) as client:
        try:
            emit(args, _state_view(ValidatorLink(client).import_state(export)))
        except errors.InvalidSignature as exc:
            raise errors.KmsError("the state export is not authentic (its MAC does not verify): refused") from exc
