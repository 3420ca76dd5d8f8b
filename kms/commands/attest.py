"""`kms attest verify-quote|verify-cert|show`: DCAP quote and RA-TLS verification (exit 0 accepted, 2 rejected,
1 usage or local error), and the built enclave's evidence on the simulated platform, verified end to end."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from cryptography import x509

from kms import paths
from kms.attestation.errors import AttestationError, Step
from kms.attestation.policy import AttestationPolicy
from kms.attestation.ratls import verify_ratls_certificate
from kms.attestation.result import VerificationResult
from kms.attestation.verify import verify_quote
from kms.commands.attestation_flags import (
    add_policy_flags,
    collateral_from_flags,
    policy_from_flags,
    trust_anchor_from_flags,
    verification_time,
)
from kms.commands.flags import add_output, checked, hex_text

_T = TypeVar("_T")

EXIT_OK, EXIT_LOCAL, EXIT_REJECTED = 0, 1, 2


def _common(parser: argparse.ArgumentParser, report_data: bool) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--collateral", type=Path, metavar="FILE",
                        help="collateral JSON file (the dcap-qvl sgx_quote_collateral.json format)")
    source.add_argument("--pccs", metavar="URL", help="PCCS or Intel PCS base URL, e.g. "
                        "https://pccs:8081/sgx/certification/v4 or https://api.trustedservices.intel.com/sgx/certification/v4")
    source.add_argument("--no-collateral", action="store_true",
                        help="check parsing and every signature up to the PCK chain only: the TCB status, advisories "
                             "and revocation are NOT evaluated, so the result is never ACCEPTED (exit 2, failed step "
                             "tcb_not_evaluated when every signature verified)")
    parser.add_argument("--pccs-api-version", type=int, choices=(3, 4), help="when the URL does not name it")
    parser.add_argument("--pccs-ca", type=Path, metavar="FILE", help="CA bundle for the PCCS TLS certificate")
    parser.add_argument("--root-ca-crl-url", metavar="URL",
                        help="root CA CRL location (default: the PCCS 'rootcacrl', or Intel's CDP for Intel PCS)")
    parser.add_argument("--collateral-cache", type=Path, metavar="DIR", help="keep fetched collateral here")
    add_output(parser)
    add_policy_flags(parser, "policy", report_data=report_data)


def register(parser: argparse.ArgumentParser) -> None:
    """Add `verify-quote`, `verify-cert` and `show` to the `kms attest` group (each sets func(args) -> exit code)."""
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    quote = subparsers.add_parser("verify-quote", help="verify a DCAP quote against collateral and a policy")
    quote.add_argument("--quote", type=Path, required=True, metavar="FILE", help="quote, binary or hex")
    quote.add_argument("--pck-chain", type=Path, metavar="FILE",
                       help="PEM PCK leaf, CA and root, for quotes without a PCK chain (types 1-4)")
    _common(quote, report_data=True)
    quote.set_defaults(func=run_verify_quote)
    cert = subparsers.add_parser("verify-cert", help="verify an RA-TLS certificate (DICE or Gramine legacy)")
    cert.add_argument("--cert", type=Path, required=True, metavar="FILE", help="certificate, PEM or DER")
    cert.add_argument("--nonce", metavar="HEX", type=checked(hex_text), help="required 'nonce' claim")
    cert.add_argument("--no-legacy-gramine", action="store_true", help="refuse Gramine's legacy extension")
    cert.add_argument("--no-legacy-rats-tls", action="store_true",
                      help="refuse rats-tls 2021 certificates (RSA key, SHA-256 of its PKCS#1 form in REPORTDATA)")
    _common(cert, report_data=False)
    cert.set_defaults(func=run_verify_cert)
    show = subparsers.add_parser("show", help="quote and verify the built enclave on the simulated platform")
    show.add_argument("--data-dir", default=paths.server_data_dir(), type=Path,
                      help="data directory of the simulated platform (default: %(default)s)")
    show.add_argument("--out-dir", type=Path, help="write quote.bin, cert.der, collateral.json and root-ca.pem here")
    add_output(show)
    show.set_defaults(func=run_show)


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
    if info.get("tcb_evaluated"):
        lines += [f"tcb status: {info['tcb_status']} (platform {info['platform_tcb_status']}, "
                  f"QE {info['qe_tcb_status']})",
                  f"advisories: {', '.join(info['advisory_ids']) or 'none'}",
                  f"collateral: {collateral_line(info)}"]
    elif "pck_chain_status" in info:
        lines += ["tcb status: NOT EVALUATED (advisories and revocation neither: "
                  + ("no collateral was used)" if result.failed_step is Step.TCB_NOT_EVALUATED
                     else "verification stopped first)"),
                  f"pck chain: {info['pck_chain_status']} ({info['pck_chain_valid_from']} to "
                  f"{info['pck_chain_expiry']})"]
    if "identity" in info:
        note = "" if info["identity_signature_verified"] else " (signature NOT verified)"
        lines += [f"{k}: {v}{note}" for k, v in info["identity"].items()]
    print("\n".join(lines))


def collateral_line(info: dict[str, object]) -> str:
    """The collateral's own result, apart from the TCB status."""
    status = info["collateral_status"]
    if status == "not_yet_valid":
        return f"NOT YET VALID before {info['collateral_valid_from']} ({info['collateral_valid_from_source']})"
    expiry = f"{info['collateral_expiry']} ({info['collateral_expiry_source']})"
    return f"EXPIRED at {expiry}" if status == "expired" else f"valid until {expiry}"


def _exit(result: VerificationResult, output: str) -> int:
    _print(result, output)
    if result.ok:
        return EXIT_OK
    return EXIT_LOCAL if result.failed_step is Step.COLLATERAL_FETCH else EXIT_REJECTED


def _named(flag: str, path: Path, load: Callable[[Path], _T]) -> _T:
    """load(path), or a ValueError that names the flag and the file."""
    try:
        return load(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{flag} {path}: {getattr(exc, 'strerror', None) or exc}") from None


def _local_error(exc: BaseException) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return EXIT_LOCAL


def run_verify_quote(args: argparse.Namespace) -> int:
    try:
        at, anchor, policy = verification_time(args.at), trust_anchor_from_flags(args), policy_from_flags(args)
        quote = _named("--quote", args.quote, _read_quote)
        chain = _named("--pck-chain", args.pck_chain, lambda p: x509.load_pem_x509_certificates(p.read_bytes())) \
            if args.pck_chain else None
        source = collateral_from_flags(args)  # None with --no-collateral (the parser requires one of the three)
    except (OSError, ValueError, AttestationError) as exc:
        return _local_error(exc)
    return _exit(verify_quote(quote, source, policy, at=at, trust_anchor=anchor, pck_chain=chain), args.output)


def run_verify_cert(args: argparse.Namespace) -> int:
    try:
        at, anchor, policy = verification_time(args.at), trust_anchor_from_flags(args), policy_from_flags(args)
        cert = _named("--cert", args.cert, Path.read_bytes)
        nonce = bytes.fromhex(args.nonce) if args.nonce else None
        source = collateral_from_flags(args)  # None with --no-collateral (the parser requires one of the three)
    except (OSError, ValueError, AttestationError) as exc:
        return _local_error(exc)
    result = verify_ratls_certificate(cert, source, policy, at=at, trust_anchor=anchor,
                                      accept_legacy_gramine=not args.no_legacy_gramine, expected_nonce=nonce,
                                      accept_legacy_rats_tls=not args.no_legacy_rats_tls)
    return _exit(result, args.output)


def _built_evidence(data_dir: Path) -> tuple[bytes, bytes, AttestationPolicy]:
    """The built enclave's evidence (simulated QE), and a policy pinning the identity its SIGSTRUCT declares."""
    from kms.enclave import sigstruct
    from kms.enclave.bridge import Enclave
    from kms.service.evidence import install_evidence
    from kms.sim.qe import SimQuotingEnclave

    with Enclave(data_dir) as enclave:
        ev = install_evidence(enclave, SimQuotingEnclave.open(data_dir))
        signed = sigstruct.parse(enclave.sigstruct.read_bytes())
    policy = AttestationPolicy(mrenclaves=frozenset({signed.mrenclave}), mrsigner=signed.mrsigner,
                               isvprodid=signed.isv_prod_id, min_isvsvn=signed.isv_svn, allow_simulation_insecure=True)
    return ev.certificate, ev.quote, policy


def run_show(args: argparse.Namespace) -> int:
    """0 when the evidence verifies (simulation explicitly allowed), 2 when it does not, 1 on local errors."""
    from kms.errors import KmsError
    from kms.sim.collateral import build_collateral
    from kms.sim.errors import SimError
    from kms.sim.platform import SimPlatform

    try:
        certificate, quote, policy = _built_evidence(args.data_dir)
        platform = SimPlatform(args.data_dir)
        collateral = build_collateral(platform)
    except (KmsError, SimError, OSError, ValueError) as exc:
        return _local_error(exc)
    result = verify_ratls_certificate(certificate, collateral.to_collateral(), policy, at=datetime.now(UTC),
                                      trust_anchor=platform.trust_anchor())
    info = result.to_dict()
    info["quote_bytes"], info["certificate_bytes"] = len(quote), len(certificate)
    if args.out_dir:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        (args.out_dir / "quote.bin").write_bytes(quote)
        (args.out_dir / "cert.der").write_bytes(certificate)
        collateral.write_json(args.out_dir / "collateral.json")
        (args.out_dir / "root-ca.pem").write_bytes(platform.root_pem())
        info["written_to"] = str(args.out_dir)
    print("WARNING: simulated SGX platform: this evidence proves nothing about real hardware", file=sys.stderr)
    if args.output == "json":
        print(json.dumps(info, indent=2, default=str))
    else:
        for key, value in info.items():
            print(f"{key:28} {value}")
    return EXIT_OK if result.ok else EXIT_REJECTED
