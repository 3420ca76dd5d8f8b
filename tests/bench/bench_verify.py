"""Benchmark: DCAP quote verification of the dcap-qvl vector with cached (in-memory) collateral,
next to the cost of the ECDSA P-256 verifications alone that the algorithm performs, in one run.

Run: `./dev bench` or `.venv/bin/python -m tests.bench.bench_verify [--iterations N]`.
The ECDSA set is the one verify_quote does for this quote: root self-signature, Processor CA,
PCK leaf, root CA CRL, PCK CRL, TCB Signing certificate, TCB Info, QE Identity, QE report, ISV
report (10). Figures depend on the machine; compare the two lines of one run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from kms.attestation import AttestationPolicy, Collateral, load_collateral_json, parse_quote, verify_quote

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "dcap" / "dcap-qvl"
AT = datetime(2025, 7, 1, tzinfo=UTC)


def measure(fn: Callable[[], object], iterations: int) -> tuple[float, float, float]:
    """(ops/s, p50 µs, p99 µs) over `iterations` calls after a short warm-up."""
    for _ in range(min(100, iterations)):
        fn()
    lat = []
    start = time.perf_counter()
    for _ in range(iterations):
        t = time.perf_counter_ns()
        fn()
        lat.append(time.perf_counter_ns() - t)
    total = time.perf_counter() - start
    q = statistics.quantiles(lat, n=100)
    return iterations / total, q[49] / 1000, q[98] / 1000


def _raw(sig: bytes) -> bytes:
    return encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))


def ecdsa_set(quote_bytes: bytes, collateral: Collateral) -> list[tuple[ec.EllipticCurvePublicKey, bytes, bytes]]:
    """(key, DER signature, data) for every ECDSA verification verify_quote performs on this quote."""
    quote = parse_quote(quote_bytes)
    leaf, ca, root = quote.embedded_pck_chain()
    signer = collateral.tcb_info_issuer_chain[0]
    att = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + quote.attestation_key)

    def cert(c: x509.Certificate, issuer: x509.Certificate) -> tuple[ec.EllipticCurvePublicKey, bytes, bytes]:
        return issuer.public_key(), c.signature, c.tbs_certificate_bytes  # type: ignore[return-value]

    return [
        cert(root, root), cert(ca, root), cert(leaf, ca),
        (root.public_key(), collateral.root_ca_crl.signature, collateral.root_ca_crl.tbs_certlist_bytes),
        (ca.public_key(), collateral.pck_crl.signature, collateral.pck_crl.tbs_certlist_bytes),
        cert(signer, root),
        (signer.public_key(), _raw(collateral.tcb_info.signature), collateral.tcb_info.body),
        (signer.public_key(), _raw(collateral.qe_identity.signature), collateral.qe_identity.body),
        (leaf.public_key(), _raw(quote.qe_report_signature), quote.qe_report.raw),
        (att, _raw(quote.isv_signature), quote.signed_data),
    ]  # type: ignore[list-item]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000)
    args = parser.parse_args(argv)
    if not VECTORS.is_dir():
        print(f"skipped: vectors not present at {VECTORS}")
        return 0
    quote = (VECTORS / "sgx_quote").read_bytes()
    collateral = load_collateral_json(VECTORS / "sgx_quote_collateral.json")
    policy = AttestationPolicy(allow_any_enclave_insecure=True,
                               allowed_tcb_statuses=frozenset({"ConfigurationAndSWHardeningNeeded"}))
    if not verify_quote(quote, collateral, policy, at=AT).ok:
        raise SystemExit("the dcap-qvl vector does not verify; benchmark meaningless")
    checks = ecdsa_set(quote, collateral)
    algorithm = ec.ECDSA(hashes.SHA256())

    def all_ecdsa() -> None:
        for key, signature, data in checks:
            key.verify(signature, data, algorithm)

    full = measure(lambda: verify_quote(quote, collateral, policy, at=AT), args.iterations)
    alone = measure(all_ecdsa, args.iterations)
    print(f"{'verify_quote, dcap-qvl, cached collateral':<48} {full[0]:9.0f} verifications/s  "
          f"p50 {full[1]:7.0f} µs  p99 {full[2]:7.0f} µs")
    print(f"{f'ECDSA P-256 verifications alone ({len(checks)} per quote)':<48} {alone[0]:9.0f} sets/s           "
          f"p50 {alone[1]:7.0f} µs  p99 {alone[2]:7.0f} µs")
    print(f"ECDSA share of one verification: {100 * alone[1] / full[1]:.0f}% (p50); "
          f"the rest is quote and PEM parsing, name, extension and CRL lookups, Python control flow")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
