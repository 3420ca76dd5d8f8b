"""Client-side errors: attestation refusals (never retried) and transport failures (sometimes retried)."""

from __future__ import annotations

from kms.attestation.errors import Step
from kms.attestation.result import VerificationResult
from kms.errors import KmsError


class ClientError(KmsError):
    """Base of the errors the SDK raises itself (enclave refusals are kms.errors.EnclaveFailure)."""


class VerificationFailed(ClientError):
    """The server's evidence did not verify against the policy: nothing was sent. Never retried."""

    def __init__(self, message: str, *, step: Step | None = None, result: VerificationResult | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.result = result

    @classmethod
    def from_result(cls, result: VerificationResult) -> VerificationFailed:
        step = result.failed_step
        where = step.value if step is not None else "unknown step"
        return cls(f"enclave evidence rejected at {where}: {result.message}", step=step, result=result)


class TransportError(ClientError):
    """The gRPC transport failed. `sent` is False when the request certainly never left the client."""

    def __init__(self, message: str, *, sent: bool = True, grpc_code: str | None = None) -> None:
        super().__init__(message)
        self.sent = sent
        self.grpc_code = grpc_code


class CollateralUnavailable(TransportError):
    """The verification collateral (PCK CRL, TCB Info, QE Identity) could not be downloaded: no
    verdict on the evidence, nothing was sent. Retried like any transport failure."""


class ServerError(ClientError):
    """The server answered a call with a non-transient gRPC error (e.g. UNIMPLEMENTED, INVALID_ARGUMENT)."""

    def __init__(self, message: str, *, grpc_code: str | None = None) -> None:
        super().__init__(message)
        self.grpc_code = grpc_code


class OutcomeUnknown(TransportError):
    """A non-idempotent request (create, rotate, init, add principal) may or may not have run."""


class ClientClosed(ClientError):
    """The client was closed."""
