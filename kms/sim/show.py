"""`kms attest show`: the evidence of the built enclave on the simulated platform, verified end to end.

Loads the enclave on a data directory, has its RA-TLS key quoted by the simulated quoting
enclave, verifies the resulting certificate with the full DCAP algorithm against the simulated
root and freshly built collateral, and prints identity, TCB status and where the files went.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from kms.attestation import AttestationPolicy, verify_ratls_certificate
from kms.errors import KmsError
from kms.sim.collateral import build_collateral
from kms.sim.errors import SimError
from kms.sim.platform import SimPlatform
from kms.sim.qe import SimQuotingEnclave


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `show` to the `kms attest` group."""
    show = subparsers.add_parser("show", help="quote and verify the built enclave on the simulated platform")
    show.add_argument("--data-dir", default="data", type=Path, help="data directory of the simulated platform")
    show.add_argument("--out-dir", type=Path, help="write quote.bin, cert.der, collateral.json and root-ca.pem here")
    show.add_argument("--output", choices=("table", "json"), default="table")
    show.set_defaults(func=run)


def _evidence(data_dir: Path) -> tuple[bytes, bytes, AttestationPolicy]:
    """The evidence, and a policy pinning the identity the built SIGSTRUCT declares."""
    from kms.enclave import sigstruct
    from kms.enclave.bridge import Enclave
    from kms.service.evidence import install_evidence

    with Enclave(data_dir) as enclave:
        ev = install_evidence(enclave, SimQuotingEnclave.open(data_dir))
        signed = sigstruct.parse(enclave.sigstruct.read_bytes())
    policy = AttestationPolicy(mrenclaves=frozenset({signed.mrenclave}), mrsigner=signed.mrsigner,
                               isvprodid=signed.isv_prod_id, min_isvsvn=signed.isv_svn, allow_simulation_insecure=True)
    return ev.certificate, ev.quote, policy


def run(args: argparse.Namespace) -> int:
    """0 when the evidence verifies (simulation explicitly allowed), 2 when it does not, 1 on local errors."""
    try:
        certificate, quote, policy = _evidence(args.data_dir)
        platform = SimPlatform(args.data_dir)
        collateral = build_collateral(platform)
    except (KmsError, SimError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
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
    return 0 if result.ok else 2
