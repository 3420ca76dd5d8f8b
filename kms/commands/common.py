"""Shared CLI plumbing: connection and policy flags, the client, secret I/O, output and exit codes."""

from __future__ import annotations

import argparse
import base64
import functools
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from kms import paths
from kms.attestation.errors import AttestationError
from kms.client.client import KmsClient
from kms.client.credentials import Credentials, principal_id_of
from kms.client.errors import ClientError, ClientStateError, ServerError, TransportError, VerificationFailed
from kms.client.state import ClientState
from kms.commands.attestation_flags import (
    add_policy_flags,
    collateral_from_flags,
    policy_from_flags,
    trust_anchor_from_flags,
    verification_time,
)
from kms.commands.flags import add_output, checked, env_default, positive_number, server_address
from kms.errors import InvalidSignature, KmsError

EXIT_OK, EXIT_LOCAL, EXIT_REMOTE = 0, 1, 2
DEFAULT_SERVER = "127.0.0.1:7443"
SECRET_MAX = 1024 * 1024


class LocalError(Exception):
    """A local or usage problem (exit 1)."""


class RemoteError(Exception):
    """The server cannot be reached or is not the KMS (exit 2)."""


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def connection_parent() -> argparse.ArgumentParser:
    """Flags every command that talks to a server takes (a parent parser; env defaults read now, checked when
    the command line is parsed)."""
    p = argparse.ArgumentParser(add_help=False)
    conn = p.add_argument_group("server and identity")
    conn.add_argument("--server", type=checked(server_address), default=env_default("KMS_SERVER", DEFAULT_SERVER),
                      metavar="HOST:PORT[,...]",
                      help="the KMS's gRPC API address, as `kms serve` prints it first; several (comma-separated) or a "
                           "DNS name with several records are replicas to spread over and fail over between (env "
                           f"KMS_SERVER; default {DEFAULT_SERVER})")
    add_credentials_arg(conn, "client key and certificate from `kms credentials new`")
    conn.add_argument("--timeout", type=checked(positive_number), default=30.0, metavar="SECONDS",
                      help="seconds per call (default 30)")
    add_output(conn)
    add_policy_flags(p, "attestation policy (checked before anything is sent)", env=os.environ)
    col = p.add_argument_group("collateral (default: the PCCS the server names; its answers are signed)")
    src = col.add_mutually_exclusive_group()
    src.add_argument("--collateral", type=Path, metavar="FILE", help="collateral JSON file")
    src.add_argument("--pccs", default=env_default("KMS_PCCS"), metavar="URL",
                     help="PCCS or Intel PCS base URL (env KMS_PCCS)")
    col.add_argument("--pccs-ca", type=Path, metavar="FILE", help="CA bundle for the PCCS TLS certificate")
    col.add_argument("--collateral-cache", type=Path, metavar="DIR", help="keep fetched collateral here")
    return p


def _credentials_path(text: str) -> Path:
    return paths.credentials_dir(text)


# `--credentials NAME|DIR` (and the like): a bare name is <KMS home>/credentials/NAME, anything with a '/' a
# directory (kms.paths.credentials_dir); a bad KMS_CREDENTIALS is refused naming the variable.
credentials_arg = checked(_credentials_path)
credentials_arg.__name__ = "credentials"


def add_credentials_arg(p: argparse.ArgumentParser | Any, what: str, flag: str = "--credentials") -> None:
    """The credentials flag: NAME or DIR, default env KMS_CREDENTIALS, else the name "default"."""
    p.add_argument(flag, type=credentials_arg, default=env_default("KMS_CREDENTIALS", paths.DEFAULT_CREDENTIALS),
                   metavar="NAME|DIR", help=f"{what}: a name in <KMS home>/credentials/ or a directory path with a "
                                            "'/' (env KMS_CREDENTIALS; default: the name \"default\")")


def load_credentials(args: argparse.Namespace) -> Credentials:
    if not (args.credentials / "cert.pem").exists():
        raise LocalError(f"--credentials {args.credentials}: no client credentials there: create them with "
                         "`kms credentials new` (or pass --credentials NAME|DIR, or set KMS_CREDENTIALS)")
    try:
        creds = Credentials.load(args.credentials)
        creds.principal_id  # noqa: B018 - a certificate that does not parse is refused here, not mid-handshake
    except OSError as exc:
        raise LocalError(f"--credentials {args.credentials}: cannot read {Path(exc.filename or '').name or 'it'}: "
                         f"{exc.strerror or exc} (create credentials with `kms credentials new --out DIR`)") from exc
    except ValueError as exc:
        raise LocalError(f"--credentials {args.credentials}: cert.pem is not a certificate: {exc}") from exc
    return creds


def domain_arg(text: str, flag: str = "--domain-id") -> bytes:
    """A domain id from 32 hex digits."""
    try:
        value = bytes.fromhex(text)
    except ValueError:
        value = b""
    if len(value) != 16:
        raise LocalError(f"{flag} is 32 hex digits (as `kms admin init` printed)")
    return value


def load_state(args: argparse.Namespace) -> ClientState:
    """The pinned domain and known heads kept with the credentials (`<credentials>/state.json`)."""
    try:
        return ClientState.for_credentials(args.credentials)
    except ClientStateError as exc:
        raise LocalError(str(exc)) from exc


def make_client(args: argparse.Namespace, *, new_domain: bool = False, retries: int = 4, connect: bool = True,
                recheck_s: float = 5.0) -> KmsClient:
    """Verify the server (policy from the flags), check its domain against the credentials' pin and its state
    against the highest head they saw, then open the session; raises before anything is sent.

    Credentials that are not pinned to a domain are refused (exit 1) unless the command creates or recovers
    one (`new_domain`: init, recover; the server must then have no domain). --server may name several replicas
    (comma-separated; a DNS name: each of its records), `connect=False` defers the verification to the first
    call (`kms agent`)."""
    creds = load_credentials(args)
    try:
        policy, anchor = policy_from_flags(args), trust_anchor_from_flags(args)
        at = verification_time(args.at) if args.at else None  # None: "now" at every verification
        collateral = collateral_from_flags(args)
    except (OSError, ValueError, AttestationError) as exc:
        raise LocalError(str(exc)) from exc
    state = load_state(args)
    if state.domain_id is None and not new_domain:
        raise LocalError(f"the credentials {args.credentials} are not pinned to a domain, so no server can be "
                         "trusted with them: `kms credentials pin --credentials DIR --domain HEX` (the domain id "
                         "`kms admin init` printed) or `--from ADMIN_CREDENTIALS_DIR`")
    try:
        return KmsClient(args.server, credentials=creds, policy=policy, trust_anchor=anchor, collateral=collateral,
                         at=at, timeout=args.timeout, state=state, new_domain=new_domain, retries=retries,
                         connect=connect, recheck_s=recheck_s)
    except ValueError as exc:   # a --server value that is not host:port (several: comma-separated)
        raise LocalError(f"--server: {exc}") from exc
    except (TransportError, ServerError) as exc:  # reaching the server, before anything was sent
        raise RemoteError(f"--server: {exc}") from exc


def head_line(client: KmsClient) -> dict[str, str | None]:
    """The pinned domain and the state head this client knows now (what `kms admin` commands show)."""
    domain, head = client.domain_id, client.state_head
    return {"domain_id": None if domain is None else domain.hex(), "state_head": None if head is None else str(head)}


# --- inputs -----------------------------------------------------------------------------------------


def read_input(path: str, *, base64_text: bool = False, what: str = "input") -> bytes:
    """Bytes from a file or stdin ('-'); never from argv. Optionally base64-decoded."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read(SECRET_MAX + 1)
        else:
            with open(path, "rb") as f:
                data = f.read(SECRET_MAX + 1)
    except OSError as exc:
        raise LocalError(f"cannot read {what} from {path}: {exc.strerror or exc}") from exc
    if len(data) > SECRET_MAX:
        raise LocalError(f"{what} larger than {SECRET_MAX} bytes")
    if base64_text:
        try:
            return base64.b64decode(b"".join(data.split()), validate=True)
        except ValueError as exc:
            raise LocalError(f"{what} in {path} is not base64") from exc
    return data


def principal_arg(args: argparse.Namespace) -> bytes:
    """A principal id from --principal-id HEX or --certificate FILE (the principal's cert.pem)."""
    if getattr(args, "certificate", None):
        try:
            return principal_id_of(Path(args.certificate).read_bytes())
        except (OSError, ValueError) as exc:
            raise LocalError(f"cannot read a certificate from {args.certificate}: {exc}") from exc
    try:
        value = bytes.fromhex(args.principal_id)
    except ValueError:
        value = b""
    if len(value) != 32:
        raise LocalError("--principal-id is 64 hex digits (as `kms credentials new` prints)")
    return value


def add_key_id(p: argparse.ArgumentParser, what: str = "the key") -> None:
    """--key-id: how every command names a key (an id, or an alias)."""
    p.add_argument("--key-id", required=True, metavar="KEY_ID", help=f"{what}: its key id or alias/NAME")


def add_principal_args(p: argparse.ArgumentParser) -> None:
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--principal-id", metavar="HEX", help="SHA-256 of the principal's SubjectPublicKeyInfo")
    who.add_argument("--certificate", metavar="FILE", help="the principal's cert.pem")


def parse_context(pairs: list[str] | None, flag: str = "--context") -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise LocalError(f"{flag} takes KEY=VALUE, not {pair!r}")
        if key in out:
            raise LocalError(f"{flag} key {key!r} given twice")
        out[key] = value
    return out


# --- outputs ----------------------------------------------------------------------------------------


def write_file(path: str, data: bytes, *, private: bool) -> None:
    """Raw bytes to a new file (0600 when private) or to stdout ('-')."""
    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except OSError as exc:
        raise LocalError(f"cannot write {path}: {exc.strerror or exc}") from exc


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def emit(args: argparse.Namespace, info: Mapping[str, Any] | list[Mapping[str, Any]],
         columns: tuple[str, ...] | None = None) -> None:
    """Print a result (or a list of them) as JSON or as a table."""
    if args.output == "json":
        print(json.dumps(info, indent=2, default=str))
        return
    if isinstance(info, list):
        cols = columns or (tuple(info[0]) if info else ())
        rows = [[("" if r.get(c) is None else str(r.get(c))) for c in cols] for r in info]
        widths = [max([len(c), *(len(row[i]) for row in rows)]) for i, c in enumerate(cols)]
        print("  ".join(c.upper().ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip())
        for row in rows:
            print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        return
    width = max((len(k) for k in info), default=0)
    for key, value in info.items():
        print(f"{key.ljust(width)}  {'' if value is None else value}")


def run_command(fn: Callable[[argparse.Namespace], int | None]) -> Callable[[argparse.Namespace], int]:
    """Wrap a command: one-line messages on stderr, exit 1 for local errors, 2 for server/verification."""

    @functools.wraps(fn)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return int(fn(args) or EXIT_OK)
        except LocalError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_LOCAL
        except RemoteError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_REMOTE
        except VerificationFailed as exc:
            print(f"error: server NOT trusted, nothing was sent: {exc}", file=sys.stderr)
            return EXIT_REMOTE
        except ClientStateError as exc:  # the state file next to the credentials: local, never reset
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_LOCAL
        except InvalidSignature:
            print("error: the signature is NOT valid", file=sys.stderr)
            return EXIT_REMOTE
        except (ClientError, KmsError) as exc:
            print(f"error: {exc}{_subject(args)}", file=sys.stderr)
            return EXIT_REMOTE
        except (ValueError, OSError) as exc:  # SDK argument checks (unknown spec, bad threshold), local files
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_LOCAL
        except Exception as exc:  # a one-line message, never a traceback (KMS_DEBUG=1 shows it)
            if _env_flag("KMS_DEBUG"):
                raise
            print(f"error: unexpected {type(exc).__name__}: {exc} (set KMS_DEBUG=1 for details)", file=sys.stderr)
            return EXIT_REMOTE

    return wrapper


_SUBJECTS = (("key_id", "--key-id"), ("destination_key_id", "--destination-key-id"), ("alias", "ALIAS"),
             ("principal_id", "--principal-id"), ("grant_id", "--grant-id"), ("replica_id", "--replica-id"))


def _subject(args: argparse.Namespace) -> str:
    """What a server's refusal was about, from the command line (the enclave's codes name no value)."""
    values = {attr: value.hex() if isinstance(value := getattr(args, attr, None), bytes) else value
              for attr, _ in _SUBJECTS}
    named = [f"{flag} {values[attr]!r}" for attr, flag in _SUBJECTS if isinstance(values[attr], str)]
    return f" ({', '.join(named)})" if named else ""
