"""Random mutations of quotes, certificates and collateral: always a typed rejection, never a crash."""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime

import pytest
import test_attest_ratls as ratls
from attest_testpki import MRENCLAVE, NOW, SynthPlatform, vectors
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kms.attestation import AttestationPolicy, Collateral, load_collateral_json, verify_quote, verify_ratls_certificate

JULY = datetime(2025, 7, 1, tzinfo=UTC)
QVL_POLICY = AttestationPolicy(allow_any_enclave_insecure=True,
                               allowed_tcb_statuses=frozenset({"ConfigurationAndSWHardeningNeeded"}))


def mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    choice = rng.random()
    if choice < 0.6:
        for _ in range(rng.randint(1, 3)):
            out[rng.randrange(len(out))] ^= rng.randrange(1, 256)
    elif choice < 0.8:
        del out[rng.randrange(len(out)):]
    else:
        pos = rng.randrange(len(out))
        out[pos:pos] = rng.randbytes(rng.randint(1, 8))
    return bytes(out)


def test_mutated_real_quotes_are_rejected_with_a_step() -> None:
    d = vectors("dcap", "dcap-qvl")
    quote, collateral = (d / "sgx_quote").read_bytes(), load_collateral_json(d / "sgx_quote_collateral.json")
    rng = random.Random(20250701)
    for _ in range(400):
        mutated = mutate(quote, rng)
        result = verify_quote(mutated, collateral, QVL_POLICY, at=JULY)
        if result.ok:  # only a mutation of the unsigned PEM text that leaves the same certificates
            assert result.verified.quote.signed_data == quote[:432]
        else:
            assert result.failed_step is not None and result.message


def test_mutated_ratls_certificates_are_rejected() -> None:
    p = SynthPlatform()
    key = ec.generate_private_key(ec.SECP256R1())
    cert, collateral = ratls.dice_cert(p, key), p.collateral()
    policy = AttestationPolicy(mrenclaves=frozenset({MRENCLAVE}))
    rng = random.Random(7)
    for _ in range(300):
        mutated = mutate(cert, rng)
        result = verify_ratls_certificate(mutated, collateral, policy, at=NOW, trust_anchor=p.anchor)
        assert not result.ok or mutated == cert


def _mutated_certs(certs: tuple[x509.Certificate, ...], rng: random.Random) -> tuple[x509.Certificate, ...] | None:
    out = list(certs)
    k = rng.randrange(len(out))
    der = bytearray(out[k].public_bytes(serialization.Encoding.DER))
    der[rng.randrange(len(der))] ^= 1 << rng.randrange(8)
    try:
        out[k] = x509.load_der_x509_certificate(bytes(der))
    except (ValueError, x509.InvalidVersion):
        return None
    return tuple(out)


@pytest.mark.parametrize("field", ["pck_crl_issuer_chain", "tcb_info_issuer_chain", "qe_identity_issuer_chain"])
def test_mutated_collateral_chains_are_rejected(field: str) -> None:
    p = SynthPlatform()
    quote, collateral = p.quote(), p.collateral()
    policy = AttestationPolicy(mrenclaves=frozenset({MRENCLAVE}))
    rng = random.Random(field)
    for _ in range(150):
        chain = _mutated_certs(getattr(collateral, field), rng)
        if chain is None:
            continue
        tampered: Collateral = dataclasses.replace(collateral, **{field: chain})
        assert not verify_quote(quote, tampered, policy, at=NOW, trust_anchor=p.anchor).ok
