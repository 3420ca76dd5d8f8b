"""`kms status`: fetch and verify the server's evidence with the policy every command uses, and summarize it:
identity, TCB status and advisories, simulated or not, the domain id and, with pinned credentials, the state head.

Exit 0 when the evidence verified (and, with credentials, the domain pin and the state head check passed), 2 when
the server is unreachable or its evidence or state is refused (a refused evidence's summary is still printed,
marked NOT verified: it says which check failed), 1 on usage and local errors (no policy pinned, unreadable or
unpinned credentials named on purpose).

Credentials: `--credentials` or KMS_CREDENTIALS must name pinned credentials; without either, the default ones
(`credentials/default`) are used when they exist and are pinned, else only the evidence is checked. With
credentials a session is opened as by every command: the certificate's domain must be the pinned one, the
server's state head (read with get_identity inside the attested session) must not be older than the one they
saw, and the new head is kept in their state.json. Without, the state head is unknown (it is answered only inside
an attested session) and the domain id is the certificate's claim, bound by the verified quote.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import grpc

from kms import paths
from kms.attestation.errors import AttestationError
from kms.client.errors import ClientStateError, ServerError, TransportError, VerificationFailed
from kms.client.evidence import DOMAIN_CLAIM, CollateralSources, VerifiedEvidence, verify_evidence
from kms.client.state import ClientState
from kms.client.transport import fetch_evidence, open_channel
from kms.commands.attest import collateral_line
from kms.commands.attestation_flags import (
    collateral_from_flags,
    policy_from_flags,
    trust_anchor_from_flags,
    verification_time,
)
from kms.commands.common import (
    EXIT_REMOTE,
    LocalError,
    connection_parent,
    emit,
    head_line,
    make_client,
    run_command,
)
from kms.commands.health import wrong_port_hint
from kms.proto.v1 import kms_pb2_grpc

NO_HEAD = "unknown without pinned credentials (the state head is read inside an attested session)"


def register(groups: Any) -> None:
    """Add `kms status` to kms's groups (with a parent of its own: its --credentials has no default)."""
    parent = connection_parent()
    p = groups.add_parser(
        "status", parents=[parent],
        help="verify the server's evidence; show its identity, TCB status, domain and state head",
        description="Fetches the enclave's RA-TLS evidence and verifies it against the policy flags (as every "
                    "command does before it sends anything), then prints the identity, TCB status and advisories, "
                    "whether the platform is simulated, the domain id and, with pinned credentials (--credentials, "
                    "KMS_CREDENTIALS, else the default ones if pinned), the state head read in an attested session "
                    "after the domain pin and the credentials' known head are checked. Exit 0 verified, 2 "
                    "unreachable or refused, 1 local error.")
    p.set_defaults(func=run_command(_status), credentials=None)


def _credentials(args: argparse.Namespace) -> Path | None:
    """The credentials to open a session with, or None for the evidence alone (see the module's docstring)."""
    if args.credentials is not None:
        return Path(args.credentials)
    if os.environ.get("KMS_CREDENTIALS"):
        try:
            return paths.credentials_dir(os.environ["KMS_CREDENTIALS"])
        except ValueError as exc:
            raise LocalError(f"KMS_CREDENTIALS: {exc}") from exc
    default = paths.credentials_dir(None)
    if not (default / "cert.pem").is_file():
        return None
    try:
        pinned = ClientState.for_credentials(default).domain_id is not None
    except ClientStateError:  # a damaged state file: make_client reports it (exit 1), it is never passed over
        return default
    return default if pinned else None


def summary(server: str, info: dict[str, Any], ok: bool) -> dict[str, Any]:
    """The status fields from a VerifiedEvidence/VerificationResult to_dict(), accepted or not."""
    ident = info.get("identity") or {}
    tcb = info.get("tcb_status")
    return {
        "server": server,
        "verified": ok,
        "failed_step": info.get("failed_step"),
        "mrenclave": ident.get("mrenclave"),
        "mrsigner": ident.get("mrsigner"),
        "isvprodid": ident.get("isvprodid"),
        "isvsvn": ident.get("isvsvn"),
        "debug": ident.get("debug"),
        "tcb_status": tcb if tcb is not None else "not evaluated",
        "advisory_ids": info.get("advisory_ids"),
        "collateral": collateral_line(info) if info.get("tcb_evaluated") else None,
        "simulated": info.get("simulated"),
        "enclave_version": info.get("enclave_version"),
        "initialized": info.get("initialized"),
        "domain_id": info.get("domain_id"),
        "state_head": None,
        "credentials": None,
    }


def _evidence_only(args: argparse.Namespace) -> VerifiedEvidence:
    """Verify the evidence without a session (no credentials): GetEvidence is all that is sent."""
    try:
        policy, anchor = policy_from_flags(args), trust_anchor_from_flags(args)
        at = verification_time(args.at) if args.at else None
        collateral = collateral_from_flags(args)
    except (OSError, ValueError, AttestationError) as exc:
        raise LocalError(str(exc)) from exc
    channel = open_channel(args.server)
    try:
        response = fetch_evidence(kms_pb2_grpc.KeyManagementServiceStub(channel), args.timeout, args.server)
    finally:
        channel.close()
    return verify_evidence(response, policy, trust_anchor=anchor, collateral=CollateralSources(collateral), at=at)


def _print(args: argparse.Namespace, out: dict[str, Any]) -> None:
    if args.output == "json":
        emit(args, out)
        return
    table = dict(out)
    table["verified"] = "yes" if out["verified"] else f"NO (refused at {out['failed_step']}; what follows is claimed)"
    table["advisory_ids"] = ", ".join(out["advisory_ids"] or []) or ("none" if out["advisory_ids"] == [] else None)
    table["domain_id"] = out["domain_id"] or "none (the enclave serves no domain: not initialized)"
    table["state_head"] = out["state_head"] or NO_HEAD
    table["credentials"] = out["credentials"] or "none: the evidence alone"
    if out["simulated"] is not None:
        table["simulated"] = "yes: a SIMULATED SGX platform protects nothing" if out["simulated"] else "no"
    del table["failed_step"]
    emit(args, table)


def _with_hint(exc: TransportError | ServerError, server: str) -> TransportError | ServerError:
    code = getattr(grpc.StatusCode, exc.grpc_code or "", None)
    hint = wrong_port_hint(code, str(exc))
    if hint is None:
        return exc
    message = f"{exc} ({server}: {hint})"
    if isinstance(exc, ServerError):
        return ServerError(message, grpc_code=exc.grpc_code)
    return TransportError(message, sent=exc.sent, grpc_code=exc.grpc_code)


def _status(args: argparse.Namespace) -> int:
    args.credentials = _credentials(args)
    try:
        if args.credentials is not None:
            with make_client(args) as client:  # verify, check the domain pin, then the head in a session
                out = summary(args.server, client.evidence.to_dict(), ok=True)
                out.update(head_line(client), credentials=str(args.credentials))
        else:
            out = summary(args.server, _evidence_only(args).to_dict(), ok=True)
    except (TransportError, ServerError) as exc:
        raise _with_hint(exc, args.server) from exc
    except VerificationFailed as exc:
        if exc.result is None:
            raise
        out = summary(args.server, exc.result.to_dict(), ok=False)
        claims = dict(exc.result.ratls_evidence.claims) if exc.result.ratls_evidence is not None else {}
        domain = claims.get(DOMAIN_CLAIM)
        out["domain_id"] = domain.hex() if domain else None  # as claimed: nothing refused is trusted
        _print(args, out)
        print(f"error: server NOT trusted: {exc}", file=sys.stderr)
        return EXIT_REMOTE
    _print(args, out)
    return 0
