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


class DomainMismatch(VerificationFailed):
    """The verified enclave serves another domain than the pinned one (or none, or one where none was expected):
    refused before any Session was opened, so nothing was sent. Never retried.

    `expected` is the pinned domain id (None: a server without a domain was expected, to create or recover one),
    `actual` the domain id the enclave's certificate claims (None: it serves no domain)."""

    def __init__(self, message: str, *, expected: bytes | None, actual: bytes | None) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class RollbackDetected(VerificationFailed):
    """The server's state is older than, or forked from, a state head this client saw before (its store was
    rolled back: an old backup, a consistent older copy). Raised after the identity probe and before any
    request of the caller was sent. Never retried.

    `known` is the client's highest head (seq, hash) for the domain, `server` the head the enclave answered,
    `check` the enclave's verdict on the known head (HEAD_AHEAD, HEAD_FORKED, ...)."""

    def __init__(self, message: str, *, domain_id: bytes, known: tuple[int, bytes], server: tuple[int, bytes],
                 check: str) -> None:
        super().__init__(message)
        self.domain_id = domain_id
        self.known = known
        self.server = server
        self.check = check


class ClientStateError(ClientError):
    """The client's state file (pinned domain, highest heads) is unreadable, corrupt or cannot be written.
    It is never reset silently: a lost head would let a rolled-back server through."""


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
    """A non-idempotent request (create, rotate, init, add principal; kms.client.idempotency) may or may not have
    run: its session broke after it was sent. It is not sent again, to this replica or another. `operation` names
    it (create_key, ...), `server` the replica it was sent to."""

    def __init__(self, message: str, *, grpc_code: str | None = None, operation: str | None = None,
                 server: str | None = None) -> None:
        super().__init__(message, sent=True, grpc_code=grpc_code)
        self.operation = operation
        self.server = server


class ClientClosed(ClientError):
    """The client was closed."""


class InvalidMessage(ClientError):
    """An envelope message (kms.client.stream) was refused: malformed, truncated, tampered with, an algorithm
    suite or key not accepted, or another encryption context than the caller's. What was written of its
    plaintext must be discarded."""


class EthFormatError(ClientError, ValueError):
    """An EIP-2335 keystore or EIP-3076 interchange the SDK cannot accept (malformed, an unsupported version,
    KDF, cipher or checksum, a field missing or of the wrong length): refused before anything was sent."""
