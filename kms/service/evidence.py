"""The enclave's RA-TLS evidence: report -> quoting enclave -> quote -> certificate, installed in the enclave."""

from __future__ import annotations

from typing import Protocol

from kms.enclave.bridge import Enclave
from kms.proto.enclave.v1 import boundary_pb2 as pb


class QuotingEnclave(Protocol):
    """What the front end needs from a quoting enclave (simulated here; DCAP's QE3 on hardware)."""

    def target_info(self) -> bytes: ...

    def quote(self, report: bytes) -> bytes: ...


def install_evidence(enclave: Enclave, qe: QuotingEnclave) -> pb.EvidenceResponse:
    """Have the enclave's current RA-TLS key quoted and get the certificate that carries the quote."""
    report = enclave.report(qe.target_info())
    quote = qe.quote(report)
    return enclave.call(pb.Request(install_quote=pb.InstallQuoteRequest(quote=quote))).evidence
