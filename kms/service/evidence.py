"""The enclave's RA-TLS evidence: report -> quoting enclave -> quote -> certificate, installed in the enclave.

The quoting enclave is a setting (`quoting`): the simulated platform's QE (kms.sim.qe), or the platform's
QE3 through Intel's DCAP quote library (kms.service.dcap). Each can quote only REPORTs of its own kind of
CPU, so a mismatch is refused before anything is quoted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kms.attestation.collateral import Collateral
from kms.enclave.bridge import Enclave
from kms.errors import KmsError
from kms.proto.enclave.v1 import boundary_pb2 as pb


class QuotingEnclave(Protocol):
    """What the front end needs from a quoting enclave."""

    simulated: bool  # True: it quotes the simulated CPU's REPORTs (and its quotes protect nothing)

    def target_info(self) -> bytes: ...

    def quote(self, report: bytes) -> bytes: ...

    def collateral(self, quote: bytes) -> Collateral:
        """The verification collateral of a quote this QE made (the join's peers verify it inside)."""
        ...


class QuotingMismatch(KmsError):
    """The quoting enclave and the enclave's CPU are not of the same kind (simulated vs SGX hardware)."""


def open_quoting_enclave(quoting: str, data_dir: Path, collateral_url: str = "") -> QuotingEnclave:
    """The quoting enclave the `quoting` setting names; raises a typed error when it cannot be used.
    `collateral_url`: the platform's PCCS, where `dcap` fetches its quotes' collateral for the join."""
    if quoting == "simulated":
        from kms.sim.qe import SimQuotingEnclave

        return SimQuotingEnclave.open(data_dir)
    if quoting == "dcap":
        from kms.service.dcap import DcapQuotingEnclave

        return DcapQuotingEnclave(collateral_url=collateral_url)
    raise ValueError(f"quoting: {quoting!r} is not simulated or dcap")


def install_evidence(enclave: Enclave, qe: QuotingEnclave) -> pb.EvidenceResponse:
    """Have the enclave's current RA-TLS key quoted and get the certificate that carries the quote."""
    simulated_cpu = enclave.identity().simulated
    if simulated_cpu != qe.simulated:
        raise QuotingMismatch(
            "quoting = dcap, but the enclave runs on the SIMULATED CPU: only the simulated QE can quote it "
            "(use quoting = simulated)" if simulated_cpu else
            "quoting = simulated, but the enclave runs on SGX hardware: use quoting = dcap")
    report = enclave.report(qe.target_info())
    quote = qe.quote(report)
    return enclave.call(pb.Request(install_quote=pb.InstallQuoteRequest(quote=quote))).evidence


def quote_collateral(collateral: Collateral) -> pb.QuoteCollateral:
    """Collateral as the join's messages carry it: CRLs DER, chains PEM, JSON bodies as signed, r||s signatures."""
    der, pem = serialization.Encoding.DER, serialization.Encoding.PEM

    def chain(certs: tuple[x509.Certificate, ...]) -> bytes:
        return b"".join(c.public_bytes(pem) for c in certs)

    return pb.QuoteCollateral(
        pck_crl=collateral.pck_crl.public_bytes(der),
        pck_crl_issuer_chain=chain(collateral.pck_crl_issuer_chain),
        root_ca_crl=collateral.root_ca_crl.public_bytes(der),
        tcb_info=collateral.tcb_info.body,
        tcb_info_signature=collateral.tcb_info.signature,
        tcb_info_issuer_chain=chain(collateral.tcb_info_issuer_chain),
        qe_identity=collateral.qe_identity.body,
        qe_identity_signature=collateral.qe_identity.signature,
        qe_identity_issuer_chain=chain(collateral.qe_identity_issuer_chain),
    )
