"""Attestation flags -> what the verifier takes: an AttestationPolicy, a trust anchor, a time, a collateral source.

Every front end that verifies an enclave before it trusts it (`kms attest verify-quote|verify-cert`, each `kms`
command that connects to a server, `kms validator`, whose [kms] table becomes these flags) declares the policy
flags and reads all of them here, so a flag means the same thing in each.
"""

from __future__ import annotations

import argparse
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from kms.attestation.anchor import INTEL_SGX_ROOT, TrustAnchor
from kms.attestation.collateral import CollateralSource, load_collateral_json
from kms.attestation.errors import AttestationError
from kms.attestation.pccs import CollateralCache, PccsClient
from kms.attestation.policy import RELAXATIONS, AttestationPolicy
from kms.attestation.tcb import TcbStatus
from kms.commands.flags import FromEnv, checked, env_default, env_truth, hex_bytes, hex_text, uint16

_RELAXED = {  # what each relaxation accepts (tests/unit/test_cli_surface.py: one per RELAXATIONS entry)
    "allow_debug_insecure": "accept a DEBUG enclave (its memory is readable by the host)",
    "allow_expired_collateral_insecure": "accept collateral past its nextUpdate",
    "allow_outdated_tcb_insecure": "allow --allow-tcb-status OutOfDate and its kin",
    "allow_any_enclave_insecure": "accept any MRENCLAVE and MRSIGNER (no identity pinned)",
    "allow_simulation_insecure": "accept evidence from the simulated SGX platform (it protects nothing)",
}


def flag(setting: str) -> str:
    """The flag of a policy setting: allow_debug_insecure -> --allow-debug-insecure."""
    return "--" + setting.replace("_", "-")


def env_name(setting: str) -> str:
    """The environment variable that gives a policy setting's default: KMS_ALLOW_DEBUG_INSECURE."""
    return "KMS_" + setting.upper()


def add_policy_flags(parser: argparse.ArgumentParser, title: str, *, env: Mapping[str, str] | None = None,
                     report_data: bool = False) -> None:
    """The policy, trust-anchor and time flags, in one group. With `env`, KMS_* variables give their defaults."""
    env = env if env is not None else {}

    def note(name: str) -> str:
        return f" (env {name})" if env else ""

    pol = parser.add_argument_group(title)
    pol.add_argument("--mrsigner", type=checked(hex_bytes(32)), default=env_default("KMS_MRSIGNER", None, env),
                     metavar="HEX", help="required MRSIGNER, 64 hex digits" + note("KMS_MRSIGNER"))
    mrenclave = [FromEnv(v, "KMS_MRENCLAVE") for v in env.get("KMS_MRENCLAVE", "").replace(",", " ").split() if v]
    pol.add_argument("--mrenclave", type=checked(hex_bytes(32)), action="append", default=mrenclave, metavar="HEX",
                     help="accepted MRENCLAVE, 64 hex digits, repeatable" + note("KMS_MRENCLAVE, comma-separated"))
    pol.add_argument("--isvprodid", type=checked(uint16), metavar="0..65535", help="required ISVPRODID")
    pol.add_argument("--min-isvsvn", type=checked(uint16), default=0, metavar="0..65535",
                     help="lowest accepted ISVSVN (default 0)")
    pol.add_argument("--allow-tcb-status", action="append", default=[], metavar="STATUS",
                     choices=[s.value for s in TcbStatus], help="accepted TCB status (repeatable; default UpToDate)")
    if report_data:
        pol.add_argument("--report-data", metavar="HEX", type=checked(hex_text),
                         help="expected REPORTDATA (zero-padded to 64 bytes)")
    anchor = pol.add_mutually_exclusive_group()
    anchor.add_argument("--root", type=Path, default=env.get("KMS_ROOT"), metavar="FILE",
                        help="trust anchor: root certificate or public key, PEM or DER (default: Intel's SGX root "
                             "key)" + note("KMS_ROOT"))
    anchor.add_argument("--simulated-root", type=Path, default=env.get("KMS_SIMULATED_ROOT"), metavar="FILE",
                        help="a simulated platform's root, <data>/sgx-sim/root-ca.pem (marks evidence simulated)"
                             + note("KMS_SIMULATED_ROOT"))
    pol.add_argument("--at", metavar="RFC3339", help="verification time (default: now), e.g. 2025-07-01T00:00:00Z")
    for setting in RELAXATIONS:  # an env default stays text until policy_from_flags checks it
        pol.add_argument(flag(setting), action="store_true", default=env_default(env_name(setting), False, env),
                         help=f"relax the policy: {_RELAXED[setting]}" + note(f"{env_name(setting)}=1"))


def _env_hex(value: str) -> bytes:
    """An MRENCLAVE from KMS_MRENCLAVE (argparse checks only flags, not list defaults)."""
    try:
        return hex_bytes(32)(value)
    except ValueError as exc:
        where = f"{value.env}={str(value)!r}" if isinstance(value, FromEnv) else f"--mrenclave {value!r}"
        raise ValueError(f"{where}: {exc}") from None


def policy_from_flags(args: argparse.Namespace) -> AttestationPolicy:
    """The AttestationPolicy the flags describe (ValueError names what is wrong)."""
    relaxed = {setting: env_truth(getattr(args, setting), flag(setting)) for setting in RELAXATIONS}
    mrenclave = [_env_hex(v) if isinstance(v, str) else v for v in args.mrenclave]  # env: still text
    return AttestationPolicy.build(
        mrenclave=mrenclave or None, mrsigner=args.mrsigner, isvprodid=args.isvprodid,
        min_isvsvn=args.min_isvsvn, allowed_tcb_statuses=args.allow_tcb_status or ("UpToDate",),
        report_data=getattr(args, "report_data", None), **relaxed,
    )


def trust_anchor_from_flags(args: argparse.Namespace) -> TrustAnchor:
    """--simulated-root, --root, or Intel's SGX root key (OSError/ValueError for an unreadable file)."""
    if args.simulated_root is not None:
        return TrustAnchor.load(Path(args.simulated_root).read_bytes(), simulated=True)
    if args.root is not None:
        return TrustAnchor.load(Path(args.root).read_bytes())
    return INTEL_SGX_ROOT


def verification_time(text: str | None) -> datetime:
    """--at as an aware datetime (now when not given); a time without a zone is refused."""
    if text is None:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--at {text!r} is not an RFC 3339 time (e.g. 2025-07-01T00:00:00Z)") from None
    if value.tzinfo is None:
        raise ValueError(f"--at {text!r} has no time zone (add Z)")
    return value


def collateral_from_flags(args: argparse.Namespace) -> CollateralSource | None:
    """--collateral FILE, or a PCCS client for --pccs URL (with --pccs-ca, --collateral-cache and, where the
    command has them, --pccs-api-version and --root-ca-crl-url); None when neither is given."""
    if args.collateral is not None:
        try:
            return load_collateral_json(args.collateral)
        except (OSError, ValueError, AttestationError) as exc:
            raise ValueError(f"--collateral {args.collateral}: {getattr(exc, 'strerror', None) or exc}") from None
    if not args.pccs:
        return None
    context = ssl.create_default_context(cafile=str(args.pccs_ca)) if args.pccs_ca else None
    cache = CollateralCache(args.collateral_cache) if args.collateral_cache else None
    return PccsClient(args.pccs, api_version=getattr(args, "pccs_api_version", None),
                      root_ca_crl_url=getattr(args, "root_ca_crl_url", None), ssl_context=context, cache=cache)
