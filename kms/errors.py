"""The one error vocabulary on the Python side: every enclave ErrorCode maps to a typed exception."""

from __future__ import annotations

from kms.proto.enclave.v1 import errors_pb2

E = errors_pb2


class KmsError(Exception):
    """Base of every Enclave KMS error. `code` is the ErrorCode number (0 for host-side errors)."""

    code: int = 0

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def code_name(self) -> str:
        """The ErrorCode's name, e.g. KMS_ERR_KEY_NOT_FOUND."""
        return E.ErrorCode.Name(self.code) if self.code in E.ErrorCode.values() else "UNKNOWN"


class EnclaveUnavailable(KmsError):
    """The ECALL itself failed (sgx_status_t != SGX_SUCCESS): the enclave did not answer."""

    def __init__(self, message: str, sgx_status: int) -> None:
        super().__init__(f"{message} (sgx_status 0x{sgx_status:04x})")
        self.sgx_status = sgx_status


class EnclaveBoundaryViolation(EnclaveUnavailable):
    """The enclave refused an ECALL because a pointer it was handed (or the marshalling struct)
    is not wholly outside the enclave's memory (SGX_ERROR_INVALID_PARAMETER from the trusted
    edge, as the SGX SDK's edge code answers); nothing inside the enclave changed."""


class EnclaveLoadError(EnclaveUnavailable):
    """The enclave could not be created (bad image or signature, platform, memory); the
    message says why. A process without static TLS for the image gets this, naming
    GLIBC_TUNABLES (kms.enclave.runtime)."""


class EnclaveFailure(KmsError):
    """The enclave ran and refused the request with an ErrorCode."""


class InvalidRequest(EnclaveFailure):
    """Malformed, oversized or inconsistent request (boundary or handler checks)."""


class Unsupported(EnclaveFailure):
    """Valid request for a spec/algorithm combination the enclave does not offer."""


class NotInitialized(EnclaveFailure):
    """The enclave (or its domain key) is not ready for this request."""


class NotFound(EnclaveFailure):
    """No such key or key version."""


class KeyStateError(EnclaveFailure):
    """The key exists but its state or usage does not allow the operation."""


class KeyDestroyed(KeyStateError):
    """The key was destroyed after its deletion window: what it encrypted is gone for good."""


class InvalidCiphertext(EnclaveFailure):
    """Decryption failed. Deliberately opaque: wrong key, context, tag or format look the same."""


class InvalidSignature(EnclaveFailure):
    """A signature or MAC did not verify."""


class InvalidKey(EnclaveFailure):
    """A supplied public or private key is malformed or unusable."""


class SealError(EnclaveFailure):
    """A sealed blob could not be opened by this enclave on this platform."""


class StoreError(EnclaveFailure):
    """A stored record is corrupt, too large, or the store could not be read."""


class StaleRecord(StoreError):
    """A stored record is not the revision the enclave's state log says: the store was rolled back or
    altered. At load the message names the record; nothing is served until the store matches."""


class PermissionDenied(EnclaveFailure):
    """The caller's role or grants do not allow this operation (decided inside the enclave)."""


class PeerMismatch(PermissionDenied):
    """Export: the importing enclave is not the one the caller named (its domain id, MRENCLAVE or minimum
    ISVSVN); nothing was exported."""


class ReplicaNotApproved(PermissionDenied):
    """The replica is not approved in the domain's cluster (pending, or removed): it serves nothing
    (docs/cluster.md); a client should use another replica."""


class DoubleSignRefused(EnclaveFailure):
    """The double-sign guard refused: a regression or a conflicting message at the same height/round/step."""


class SlashingProtectionRefused(EnclaveFailure):
    """Ethereum slashing protection refused: a second block at a signed slot, a double or surround vote, or a
    slot or epoch below the key's watermark (docs/ethereum-keys.md). Nothing was signed."""


class SessionError(EnclaveFailure):
    """An attested session failed or could not be opened; it is closed."""


class Conflict(EnclaveFailure):
    """A concurrent change to the same key won; the request can be retried."""


class InternalError(EnclaveFailure):
    """The enclave failed where it should not (crypto, encoding, platform, memory)."""


_BY_CODE: dict[int, type[EnclaveFailure]] = {
    E.KMS_ERR_NOT_INITIALIZED: NotInitialized,
    E.KMS_ERR_ALREADY_INITIALIZED: InvalidRequest,
    E.KMS_ERR_REQUEST_TOO_LARGE: InvalidRequest,
    E.KMS_ERR_BUFFER_TOO_SMALL: InternalError,
    E.KMS_ERR_MALFORMED_REQUEST: InvalidRequest,
    E.KMS_ERR_UNKNOWN_OPERATION: InvalidRequest,
    E.KMS_ERR_UNSUPPORTED_VERSION: InvalidRequest,
    E.KMS_ERR_ENCODE: InternalError,
    E.KMS_ERR_BAD_PARAMETER: InvalidRequest,
    E.KMS_ERR_OUT_OF_MEMORY: InternalError,
    E.KMS_ERR_INVALID_ARGUMENT: InvalidRequest,
    E.KMS_ERR_UNSUPPORTED: Unsupported,
    E.KMS_ERR_KEY_NOT_FOUND: NotFound,
    E.KMS_ERR_INVALID_KEY_USAGE: KeyStateError,
    E.KMS_ERR_KEY_DISABLED: KeyStateError,
    E.KMS_ERR_RECORD_CORRUPT: StoreError,
    E.KMS_ERR_DOMAIN_NOT_LOADED: NotInitialized,
    E.KMS_ERR_DOMAIN_ALREADY_LOADED: InvalidRequest,
    E.KMS_ERR_STORE_UNAVAILABLE: StoreError,
    E.KMS_ERR_TOO_MANY_VERSIONS: KeyStateError,
    E.KMS_ERR_RECORD_TOO_LARGE: StoreError,
    E.KMS_ERR_KEY_VERSION_NOT_FOUND: NotFound,
    E.KMS_ERR_CONFLICT: Conflict,
    E.KMS_ERR_KEY_PENDING_DELETION: KeyStateError,
    E.KMS_ERR_KEY_DESTROYED: KeyDestroyed,
    E.KMS_ERR_KEY_VERSION_RETIRED: KeyStateError,
    E.KMS_ERR_ALIAS_NOT_FOUND: NotFound,
    E.KMS_ERR_NOT_DUE: InvalidRequest,
    E.KMS_ERR_IMPORT_TOKEN: InvalidRequest,
    E.KMS_ERR_STALE_RECORD: StaleRecord,
    E.KMS_ERR_SEAL_MALFORMED: SealError,
    E.KMS_ERR_SEAL_MAC_MISMATCH: SealError,
    E.KMS_ERR_SEAL_INVALID_ISVSVN: SealError,
    E.KMS_ERR_SEAL_INVALID_CPUSVN: SealError,
    E.KMS_ERR_SEAL_INVALID_POLICY: SealError,
    E.KMS_ERR_CRYPTO: InternalError,
    E.KMS_ERR_INVALID_CIPHERTEXT: InvalidCiphertext,
    E.KMS_ERR_INVALID_SIGNATURE: InvalidSignature,
    E.KMS_ERR_INVALID_KEY: InvalidKey,
    E.KMS_ERR_RANDOM: InternalError,
    E.KMS_ERR_PLATFORM: InternalError,
    E.KMS_ERR_REPORT: InternalError,
    E.KMS_ERR_EVIDENCE_NOT_READY: NotInitialized,
    E.KMS_ERR_QUOTE_MISMATCH: InvalidRequest,
    E.KMS_ERR_OCALL: StoreError,
    E.KMS_ERR_PERMISSION_DENIED: PermissionDenied,
    E.KMS_ERR_NOT_INITIALIZED_DOMAIN: NotInitialized,
    E.KMS_ERR_SESSION_NOT_FOUND: SessionError,
    E.KMS_ERR_SESSION_LIMIT: SessionError,
    E.KMS_ERR_SESSION_TLS: SessionError,
    E.KMS_ERR_SESSION_BUSY: SessionError,
    E.KMS_ERR_SESSION_FRAME: SessionError,
    E.KMS_ERR_DOUBLE_SIGN: DoubleSignRefused,
    E.KMS_ERR_SLASHING_PROTECTION: SlashingProtectionRefused,
    E.KMS_ERR_AUDIT_UNAVAILABLE: StoreError,
    E.KMS_ERR_AUDIT_CORRUPT: StoreError,
    E.KMS_ERR_PEER_MISMATCH: PeerMismatch,
    E.KMS_ERR_REPLICA_NOT_APPROVED: ReplicaNotApproved,
}


def error_for_code(code: int, detail: str = "") -> EnclaveFailure:
    """The exception for an ErrorCode returned by the enclave (never for KMS_OK), with the enclave's
    detail (Response.error_detail: never a secret) when it gave one."""
    cls = _BY_CODE.get(code, InternalError)
    name = E.ErrorCode.Name(code) if code in E.ErrorCode.values() else f"code {code}"
    return cls(f"enclave refused the request: {name}" + (f": {detail}" if detail else ""), code)


def mapped_codes() -> frozenset[int]:
    """Every ErrorCode with a dedicated exception (tests check this covers the whole enum)."""
    return frozenset(_BY_CODE)
