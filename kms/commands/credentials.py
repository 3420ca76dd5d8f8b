"""`kms credentials new|show|pin|forget-head`: client key pairs, and the domain and state head kept with them."""

from __future__ import annotations

import argparse
from pathlib import Path

from kms.client.credentials import Credentials
from kms.client.errors import ClientStateError
from kms.client.state import STATE_FILE, ClientState
from kms.commands.common import (
    LocalError,
    add_credentials_arg,
    credentials_arg,
    domain_arg,
    emit,
    load_credentials,
    run_command,
)
from kms.commands.flags import add_output


def register(parser: argparse.ArgumentParser) -> None:
    """Add `kms credentials new|show|pin|forget-head`."""
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    new = sub.add_parser("new", help="create a client key pair and certificate; prints the principal id")
    add_credentials_arg(new, "where to write key.pem (0600) and cert.pem", flag="--out")
    new.add_argument("--name", default="kms-client", help="the certificate's common name")
    _pin_source(new, required=False)
    _output(new)
    new.set_defaults(func=run_command(_new))

    show = sub.add_parser("show", help="the principal id, the pinned domain and the highest state head seen")
    _credentials(show)
    _output(show)
    show.set_defaults(func=run_command(_show))

    pin = sub.add_parser("pin", help="pin the credentials to a domain: every command refuses any other server",
                         description="Commands refuse a server whose verified certificate names another domain, "
                                     "and refuse to connect at all with credentials that are not pinned. `kms admin "
                                     "init` pins the admin's credentials; pin everyone else's with the domain id "
                                     "the admin gives them (or with --from the admin's credentials directory, which "
                                     "copies its highest state head too).")
    _credentials(pin)
    _pin_source(pin, required=True)
    pin.add_argument("--replace", action="store_true", help="replace a pin to another domain")
    _output(pin)
    pin.set_defaults(func=run_command(_pin))

    forget = sub.add_parser("forget-head", help="accept a server whose state is older than the one seen (after a "
                                                "restore you made on purpose)",
                            description="The next connection then accepts whatever state head the server of the "
                                        "pinned domain has. Only after you restored its store yourself: otherwise a "
                                        "rolled-back server is exactly what the head protects you from.")
    _credentials(forget)
    forget.add_argument("--domain", metavar="HEX", help="the domain (default: the pinned one)")
    _output(forget)
    forget.set_defaults(func=run_command(_forget))


def _credentials(p: argparse.ArgumentParser) -> None:
    add_credentials_arg(p, "the credentials")


def _output(p: argparse.ArgumentParser) -> None:
    add_output(p)


def _pin_source(p: argparse.ArgumentParser, *, required: bool) -> None:
    src = p.add_mutually_exclusive_group(required=required)
    src.add_argument("--domain", metavar="HEX", help="the domain id (32 hex digits, as `kms admin init` printed)")
    src.add_argument("--from", dest="pin_from", type=credentials_arg, metavar="NAME|DIR",
                     help="other credentials (a name or a directory): their pinned domain and highest state head")


def _state(directory: Path | None) -> ClientState:
    if not (directory / "cert.pem").exists():
        raise LocalError(f"{directory} holds no credentials (cert.pem)")
    try:
        return ClientState.for_credentials(directory)
    except ClientStateError as exc:
        raise LocalError(str(exc)) from exc


def _source(args: argparse.Namespace) -> tuple[bytes, ClientState | None]:
    """The domain to pin, and the state it comes from (--from)."""
    if args.domain is not None:
        return domain_arg(args.domain, "--domain"), None
    other = _state(args.pin_from)
    if other.domain_id is None:
        raise LocalError(f"{args.pin_from} is not pinned to a domain")
    return other.domain_id, other


def _apply_pin(state: ClientState, domain: bytes, source: ClientState | None) -> None:
    state.pin(domain)
    head = None if source is None else source.head(domain)
    if head is not None:
        state.observe(domain, head)
    try:
        state.save()
    except ClientStateError as exc:
        raise LocalError(str(exc)) from exc


def _describe(directory: Path, state: ClientState) -> dict[str, str | None]:
    pin = state.domain_id
    head = None if pin is None else state.head(pin)
    return {"domain_id": None if pin is None else pin.hex(), "state_head": None if head is None else str(head),
            "state_file": str(directory / STATE_FILE)}


def _new(args: argparse.Namespace) -> None:
    if (args.out / "key.pem").exists():
        raise LocalError(f"{args.out / 'key.pem'} already exists: refusing to overwrite a key")
    pin = _source(args) if args.domain is not None or args.pin_from is not None else None
    creds = Credentials.generate(args.name)
    try:
        creds.save(args.out)
    except OSError as exc:
        raise LocalError(f"cannot write credentials to {args.out}: {exc.strerror or exc}") from exc
    info: dict[str, str | None] = {"principal_id": creds.principal_id.hex(), "certificate": str(args.out / "cert.pem"),
                                   "private_key": str(args.out / "key.pem")}
    if pin is not None:
        state = _state(args.out)
        _apply_pin(state, *pin)
        info.update(_describe(args.out, state))
    emit(args, info)


def _show(args: argparse.Namespace) -> None:
    creds = load_credentials(args)
    try:
        principal = creds.principal_id
    except ValueError as exc:
        raise LocalError(f"{args.credentials}/cert.pem is not a certificate: {exc}") from exc
    state = _state(args.credentials)
    emit(args, {"principal_id": principal.hex(), "certificate": str(args.credentials / "cert.pem"),
                **_describe(args.credentials, state)})


def _pin(args: argparse.Namespace) -> None:
    state = _state(args.credentials)
    domain, source = _source(args)
    pinned = state.domain_id
    if pinned is not None and pinned != domain and not args.replace:
        raise LocalError(f"{args.credentials} is pinned to domain {pinned.hex()}: pass --replace to pin "
                         f"{domain.hex()} instead")
    _apply_pin(state, domain, source)
    emit(args, _describe(args.credentials, state))


def _forget(args: argparse.Namespace) -> None:
    state = _state(args.credentials)
    domain = domain_arg(args.domain, "--domain") if args.domain else state.domain_id
    if domain is None:
        raise LocalError(f"{args.credentials} is not pinned: name the domain with --domain")
    forgotten = state.forget_head(domain)
    try:
        state.save()
    except ClientStateError as exc:
        raise LocalError(str(exc)) from exc
    emit(args, {"domain_id": domain.hex(), "forgotten_head": None if forgotten is None else str(forgotten)})
