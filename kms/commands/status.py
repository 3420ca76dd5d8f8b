"""`kms status`: fetch and verify the server's evidence and summarize it: identity, TCB status, simulated or not,
domain id (the certificate's claim) and, with credentials, the state head read in an attested session.

Exit 0 when the evidence verified against the policy flags (and, with credentials, the domain pin and the state
head check passed), 2 when the server is unreachable or its evidence is refused (the summary still shows what was
established, marked NOT verified), 1 on usage and local errors (no policy pinned, unreadable files).

Without credentials nothing is sent but the evidence request: the state head is unknown (it is answered only
inside an attested session, which needs a client certificate), and `state_head` says so.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kms.attestation.errors import AttestationError
from kms.client.errors import ServerError, VerificationFailed
from kms.client.evidence import DOMAIN_CLAIM, CollateralSources, VerifiedEvidence, verify_evidence
from kms.client.transport import fetch_evidence, open_channel
from kms.commands.attest import collateral_line
from kms.commands.attestation_flags import (
    collateral_from_flags,
    policy_from_flags,
    trust_anchor_from_flags,
    verification_time,
)
from kms.commands.common import EXIT_REMOTE, LocalError, emit, head_line, make_client, run_command
from kms.proto.v1 import kms_pb2_grpc

NO_HEAD = "unknown without --credentials (the state head is read inside an attested session)"


def register(groups: Any, parent: argparse.ArgumentParser) -> None:
    """Add `kms status` to kms's groups."""
    p = groups.add_parser(
        "status", parents=[parent],
        help="verify the server's evidence and show its identity, TCB status, domain and state head",
        description="Fetches the enclave's RA-TLS evidence and verifies it against the policy flags (as every "
                    "command does before it sends anything), then prints the identity, TCB status and advisories, "
                    "whether the platform is simulated, the domain id the certificate claims and, with "
                    "--credentials, the state head read in an attested session (after the domain pin and the "
                    "credentials' known head are checked). Exit 0 verified, 2 unreachable or refused, 1 local error.")
    p.set_defaults(func=run_command(_status))


def summary(server: str, info: dict[str, Any], ok: bool) -> dict[str, Any]:
    """The status fields from a VerificationResult.to_dict() (+ the evidence's flags), accepted or not."""
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
        "domain_id": info.get("domain_id"),
        "initialized": info.get("initialized"),
        "enclave_version": info.get("enclave_version"),
        "collateral_url": info.get("collateral_url"),
        "state_head": None,
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
        response = fetch_evidence(kms_pb2_grpc.KeyManagementServiceStub(channel), args.timeout)
    finally:
        channel.close()
    return verify_evidence(response, policy, trust_anchor=anchor, collateral=CollateralSources(collateral), at=at)


def _print(args: argparse.Namespace, out: dict[str, Any]) -> None:
    if args.output == "json":
        emit(args, out)
        return
    table = dict(out)
    table["verified"] = "yes" if out["verified"] else f"NO (refused at {out['failed_step']})"
    table["advisory_ids"] = ", ".join(out["advisory_ids"] or []) or ("none" if out["advisory_ids"] == [] else None)
    table["domain_id"] = out["domain_id"] or "none (the enclave serves no domain: not initialized)"
    table["state_head"] = out["state_head"] or NO_HEAD
    if out["simulated"] is not None:
        table["simulated"] = "yes: a SIMULATED SGX platform protects nothing" if out["simulated"] else "no"
    table.pop("failed_step")
    table.pop("state_head_source", None)
    emit(args, table)


def _status(args: argparse.Namespace) -> int:
    try:
        if args.credentials is not None:
            with make_client(args) as client:  # verify, check the domain pin, then the head in a session
                evidence = client.evidence
                head = head_line(client)["state_head"]
        else:
            evidence, head = _evidence_only(args), None
    except ServerError as exc:
        if exc.grpc_code != "UNIMPLEMENTED":
            raise
        raise ServerError(f"{exc} ({args.server} speaks gRPC but not the KMS API: --server takes the API port, "
                          "not the health port)", grpc_code=exc.grpc_code) from exc
    except VerificationFailed as exc:
        if exc.result is None:
            raise
        out = summary(args.server, exc.result.to_dict(), ok=False)
        claims = dict(exc.result.ratls_evidence.claims) if exc.result.ratls_evidence is not None else {}
        domain = claims.get(DOMAIN_CLAIM)
        out["domain_id"] = domain.hex() if domain else None  # as claimed; nothing here is verified
        _print(args, out)
        print(f"error: server NOT trusted: {exc}", file=sys.stderr)
        return EXIT_REMOTE
    out = summary(args.server, evidence.to_dict(), ok=True)
    out["state_head"] = head
    out["state_head_source"] = "an attested session (get_identity)" if head is not None else None
    _print(args, out)
    return 0
