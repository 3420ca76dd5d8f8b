"""`verify-quote` and `verify-cert` subcommands (exit 0 accepted, 2 rejected, 1 usage/local error)."""

from __future__ import annotations

import argparse
import json
import ssl
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from cryptography import x509

from kms.attestation.anchor import INTEL_SGX_ROOT, TrustAnchor
from kms.attestation.collateral import CollateralSource, load_collateral_json
from kms.attestation.errors import AttestationError, Step
from kms.attestation.pccs import CollateralCache, PccsClient
from kms.attestation.policy import AttestationPolicy
from kms.attestation.ratls import verify_ratls_certificate
from kms.attestation.result import VerificationResult
from kms.attestation.tcb import TcbStatus
from kms.attestation.verify import verify_quote

EXIT_OK, EXIT_LOCAL, EXIT_REJECTED = 0, 1, 2
_INSECURE = ("debug", "expired-collateral", "outdated-tcb", "any-enclave", "simulation")


def _common(parser: argparse.ArgumentParser, report_data: bool) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--collateral", type=Path, metavar="FILE",
                        help="collateral JSON file (the dcap-qvl sgx_quote_collateral.json format)")
    source.add_argument("--pccs", metavar="URL", help="PCCS or Intel PCS base URL, e.g. "
                        "https://pccs:8081/sgx/certification/v4 or https://api.trustedservices.intel.com/sgx/certification/v4")
    parser.add_argument("--pccs-api-version", type=int, choices=(3, 4), help="when the URL does not name it")
    parser.add_argument("--pccs-ca", type=Path, metavar="FILE", help="CA bundle for the PCCS TLS certificate")
    parser.add_argument("--root-ca-crl-url", metavar="URL",
                        help="root CA CRL location (default: the PCCS 'rootcacrl', or Intel's CDP for Intel PCS)")
    parser.add_argument("--collateral-cache", type=Path, metavar="DIR", help="keep fetched collateral here")
    anchor = parser.add_mutually_exclusive_group()
    anchor.add_argument("--root", type=Path, metavar="FILE",
                        help="trust anchor: root certificate or public key, PEM or DER (default: Intel's SGX root key)")
    anchor.add_argument("--simulated-root", type=Path, metavar="FILE",
                        help="a simulated platform's root (marks evidence simulated)")
    parser.add_argument("--at", metavar="RFC3339", help="verification time (default: now), e.g. 2025-07-01T00:00:00Z")
    parser.add_argument("--output", choices=("text", "json"), default="text")
    policy = parser.add_argument_group("policy")
    policy.add_argument("--mrenclave", action="append", default=[], metavar="HEX",
                        help="accepted MRENCLAVE (repeatable)")
    policy.add_argument("--mrsigner", metavar="HEX")
    policy.add_argument("--isvprodid", type=int)
    policy.add_argument("--min-isvsvn", type=int, default=0)
    policy.add_argument("--allow-tcb-status", action="append", default=[], metavar="STATUS",
                        choices=[s.value for s in TcbStatus], help="accepted TCB status (repeatable; default UpToDate)")
    if report_data:
        policy.add_argument("--report-data", metavar="HEX", help="expected REPORTDATA (zero-padded to 64 bytes)")
    for name in _INSECURE:
        policy.add_argument(f"--allow-{name}-insecure", action="store_true")


def _usage_exits_1(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """argparse exits 2 on usage errors; here 2 means "rejected", so usage errors exit 1."""

    def error(message: str) -> NoReturn:
        parser.print_usage(sys.stderr)
        parser.exit(EXIT_LOCAL, f"{parser.prog}: error: {message}\n")

    parser.error = error  # type: ignore[method-assign]
    return parser


def register(target: Any) -> Any:
    """Add `verify-quote` and `verify-cert` (each sets func(args) -> exit code).

    `target` is an argparse subparsers object, or a group parser (`kms attest`), in which case
    the subparsers are created here. Returns the subparsers object, for further commands.
    """
    subparsers = target
    if isinstance(target, argparse.ArgumentParser):
        subparsers = target.add_subparsers(dest="command", required=True, metavar="COMMAND")
    quote = _usage_exits_1(subparsers.add_parser(
        "verify-quote", help="verify a DCAP quote against collateral and a policy"))
    quote.add_argument("--quote", type=Path, required=True, metavar="FILE", help="quote, binary or hex")
    quote.add_argument("--pck-chain", type=Path, metavar="FILE",
                       help="PEM PCK leaf, CA and root, for quotes without a PCK chain (types 1-4)")
    _common(quote, report_data=True)
    quote.set_defaults(func=run_verify_quote)
    cert = _usage_exits_1(subparsers.add_parser(
        "verify-cert", help="verify an RA-TLS certificate (DICE or Gramine legacy)"))
    cert.add_argument("--cert", type=Path, required=True, metavar="FILE", help="certificate, PEM or DER")
    cert.add_argument("--nonce", metavar="HEX", help="required 'nonce' claim")
    cert.add_argument("--no-legacy-gramine", action="store_true", help="refuse Gramine's legacy extension")
    _common(cert, report_data=False)
    cert.set_defaults(func=run_verify_cert)
    return subparsers


def _at(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"--at {text!r} has no time zone (add Z)")
    return value


def _anchor(args: argparse.Namespace) -> TrustAnchor:
    if args.simulated_root is not None:
        return TrustAnchor.load(args.simulated_root.read_bytes(), simulated=True)
    if args.root is not None:
        return TrustAnchor.load(args.root.read_bytes())
    return INTEL_SGX_ROOT


def _policy(args: argparse.Namespace) -> AttestationPolicy:
    flags = {f"allow_{n.replace('-', '_')}_insecure": getattr(args, f"allow_{n.replace('-', '_')}_insecure")
             for n in _INSECURE}
    return AttestationPolicy.build(
        mrenclave=args.mrenclave or None, mrsigner=args.mrsigner, isvprodid=args.isvprodid,
        min_isvsvn=args.min_isvsvn, allowed_tcb_statuses=args.allow_tcb_status or ("UpToDate",),
        report_data=getattr(args, "report_data", None), **flags,
    )


def _source(args: argparse.Namespace) -> CollateralSource:
    if args.collateral is not None:
        return load_collateral_json(args.collateral)
    context = ssl.create_default_context(cafile=str(args.pccs_ca)) if args.pccs_ca else None
    cache = CollateralCache(args.collateral_cache) if args.collateral_cache else None
    return PccsClient(args.pccs, api_version=args.pccs_api_version, root_ca_crl_url=args.root_ca_crl_url,
                      ssl_context=context, cache=cache)


def _read_quote(path: Path) -> bytes:
    data = path.read_bytes()
    try:
        text = data.decode("ascii").strip().removeprefix("0x")
        return bytes.fromhex("".join(text.split()))
    except ValueError:
        return data


def _print(result: VerificationResult, output: str) -> None:
    info = result.to_dict()
    if output == "json":
        print(json.dumps(info, indent=2))
        return
    lines = [f"result: {'ACCEPTED' if result.ok else 'REJECTED'}"]
    if not result.ok:
        lines += [f"failed step: {info['failed_step']}", f"reason: {info['message']}"]
    if "tcb_status" in info:
        lines += [f"tcb status: {info['tcb_status']} (platform {info['platform_tcb_status']}, "
                  f"QE {info['qe_tcb_status']})",
                  f"advisories: {', '.join(info['advisory_ids']) or 'none'}",
                  f"collateral expiry: {info['collateral_expiry']} ({info['collateral_expiry_source']})"
                  + (" EXPIRED" if info["collateral_expired"] else "")]
    if "identity" in info:
        note = "" if info["identity_signature_verified"] else " (signature NOT verified)"
        lines += [f"{k}: {v}{note}" for k, v in info["identity"].items()]
    print("\n".join(lines))


def _exit(result: VerificationResult, output: str) -> int:
    _print(result, output)
    if result.ok:
        return EXIT_OK
    return EXIT_LOCAL if result.failed_step is Step.COLLATERAL_FETCH else EXIT_REJECTED


def _local_error(exc: BaseException) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return EXIT_LOCAL


def run_verify_quote(args: argparse.Namespace) -> int:
    try:
        at, anchor, policy = _at(args.at), _anchor(args), _policy(args)
        quote = _read_quote(args.quote)
        chain = x509.load_pem_x509_certificates(args.pck_chain.read_bytes()) if args.pck_chain else None
        source = _source(args)
    except (OSError, ValueError, AttestationError) as exc:
        return _local_error(exc)
    return _exit(verify_quote(quote, source, policy, at=at, trust_anchor=anchor, pck_chain=chain), args.output)


def run_verify_cert(args: argparse.Namespace) -> int:
    try:
        at, anchor, policy = _at(args.at), _anchor(args), _policy(args)
        cert = args.cert.read_bytes()
        nonce = bytes.fromhex(args.nonce) if args.nonce else None
        source = _source(args)
    except (OSError, ValueError, AttestationError) as exc:
        return _local_error(exc)
    result = verify_ratls_certificate(cert, source, policy, at=at, trust_anchor=anchor,
                                      accept_legacy_gramine=not args.no_legacy_gramine, expected_nonce=nonce)
    return _exit(result, args.output)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point: python -m kms.attestation.cli verify-quote ..."""
    parser = _usage_exits_1(
        argparse.ArgumentParser(prog="kms-attest", description="DCAP quote and RA-TLS verification"))
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
