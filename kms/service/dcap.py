"""The platform's quoting enclave through Intel's DCAP quote library (libsgx_dcap_ql.so.1), loaded with ctypes.

The three calls of its quote-generation API (sgx_dcap_ql_wrapper.h):

    quote3_error_t sgx_qe_get_target_info(sgx_target_info_t *p_qe_target_info);          512 bytes out
    quote3_error_t sgx_qe_get_quote_size(uint32_t *p_quote_size);
    quote3_error_t sgx_qe_get_quote(const sgx_report_t *p_app_report,                      432 bytes in
                                    uint32_t quote_size, uint8_t *p_quote);

quote3_error_t is a 32-bit enum: 0 is success, errors are 0xE001..0xE0FF (sgx_ql_lib_common.h). The library
quotes in-process (it loads Intel's QE3 and PCE) or, with SGX_AESM_ADDR=1, through aesmd's socket; which
one is the library's business. Loading fails closed: no library or a missing symbol is a start-up error.
"""

from __future__ import annotations

import ctypes
import threading
from datetime import UTC, datetime

from kms.attestation.collateral import Collateral
from kms.attestation.errors import AttestationError
from kms.attestation.pccs import PccsClient
from kms.attestation.pck import pck_ca_of, sgx_extension
from kms.attestation.quote import parse_quote
from kms.errors import KmsError

LIBRARY = "libsgx_dcap_ql.so.1"
TARGET_INFO_SIZE, REPORT_SIZE, REPORT_BODY_SIZE, QUOTE_HEADER_SIZE = 512, 432, 384, 48
MAX_QUOTE_SIZE = 8192  # what the enclave accepts (InstallQuoteRequest.quote in proto/.../boundary.options)
SYMBOLS = ("sgx_qe_get_target_info", "sgx_qe_get_quote_size", "sgx_qe_get_quote")

# The quote3_error_t values quote generation can return (names as in sgx_ql_lib_common.h).
STATUS_NAMES = {
    0xE001: "SGX_QL_ERROR_UNEXPECTED", 0xE002: "SGX_QL_ERROR_INVALID_PARAMETER",
    0xE003: "SGX_QL_ERROR_OUT_OF_MEMORY", 0xE004: "SGX_QL_ERROR_ECDSA_ID_MISMATCH",
    0xE005: "SGX_QL_PATHNAME_BUFFER_OVERFLOW_ERROR", 0xE006: "SGX_QL_FILE_ACCESS_ERROR",
    0xE007: "SGX_QL_ERROR_STORED_KEY", 0xE008: "SGX_QL_ERROR_PUB_KEY_ID_MISMATCH",
    0xE009: "SGX_QL_ERROR_INVALID_PCE_SIG_SCHEME", 0xE00A: "SGX_QL_ATT_KEY_BLOB_ERROR",
    0xE00B: "SGX_QL_UNSUPPORTED_ATT_KEY_ID", 0xE00C: "SGX_QL_UNSUPPORTED_LOADING_POLICY",
    0xE00D: "SGX_QL_INTERFACE_UNAVAILABLE", 0xE00E: "SGX_QL_PLATFORM_LIB_UNAVAILABLE",
    0xE00F: "SGX_QL_ATT_KEY_NOT_INITIALIZED", 0xE010: "SGX_QL_ATT_KEY_CERT_DATA_INVALID",
    0xE011: "SGX_QL_NO_PLATFORM_CERT_DATA", 0xE012: "SGX_QL_OUT_OF_EPC", 0xE013: "SGX_QL_ERROR_REPORT",
    0xE014: "SGX_QL_ENCLAVE_LOST", 0xE015: "SGX_QL_INVALID_REPORT", 0xE016: "SGX_QL_ENCLAVE_LOAD_ERROR",
    0xE017: "SGX_QL_UNABLE_TO_GENERATE_QE_REPORT", 0xE018: "SGX_QL_KEY_CERTIFCATION_ERROR",
    0xE019: "SGX_QL_NETWORK_ERROR", 0xE01A: "SGX_QL_MESSAGE_ERROR", 0xE035: "SGX_QL_ERROR_INVALID_PRIVILEGE",
    0xE03F: "SGX_QL_NO_DEVICE", 0xE040: "SGX_QL_SERVICE_UNAVAILABLE", 0xE041: "SGX_QL_NETWORK_FAILURE",
    0xE042: "SGX_QL_SERVICE_TIMEOUT", 0xE043: "SGX_QL_ERROR_BUSY", 0xE047: "SGX_QL_PLATFORM_UNKNOWN",
    0xE049: "SGX_QL_CERTS_UNAVAILABLE", 0xE052: "SGX_QL_PSW_NOT_AVAILABLE",
}


class QuotingError(KmsError):
    """Quote generation failed; `status` is the quote3_error_t (0 when the library answered nonsense)."""

    def __init__(self, message: str, status: int = 0) -> None:
        name = STATUS_NAMES.get(status, "unknown quote3_error_t") if status else ""
        super().__init__(f"{message} ({name} 0x{status:04x})" if status else message)
        self.status = status
        self.status_name = name


class QuotingUnavailable(QuotingError):
    """The quote library, or the QE and PCE it loads (device, EPC, aesmd, privilege), cannot be used."""


class QuotingCertificationError(QuotingError):
    """The platform's attestation key is not certified: no PCK certificate data (PCCS, network, provisioning)."""


class QuotingReportRejected(QuotingError):
    """The QE refused the enclave's REPORT (not made for its TARGETINFO, or not on this CPU)."""


_UNAVAILABLE = {0xE00C, 0xE00D, 0xE012, 0xE014, 0xE016, 0xE035, 0xE03F, 0xE040, 0xE043, 0xE052}
_CERTIFICATION = {0xE00E, 0xE00F, 0xE010, 0xE011, 0xE018, 0xE019, 0xE01A, 0xE041, 0xE042, 0xE047, 0xE049}
_REPORT = {0xE013, 0xE015, 0xE017}


def error_for_status(status: int, call: str) -> QuotingError:
    """The typed error for a failed call's quote3_error_t."""
    kind = (QuotingUnavailable if status in _UNAVAILABLE else QuotingCertificationError if status in _CERTIFICATION
            else QuotingReportRejected if status in _REPORT else QuotingError)
    return kind(f"{call} failed", status)


class DcapQuotingEnclave:
    """Quotes REPORTs with the platform's QE3 through the DCAP quote library (one call at a time)."""

    simulated = False

    def __init__(self, library: str = LIBRARY, *, collateral_url: str = "") -> None:
        try:
            lib = ctypes.CDLL(library)
        except OSError as exc:
            raise QuotingUnavailable(
                f"quoting = dcap: cannot load Intel's DCAP quote library {library}: {exc}. Install the platform's "
                "DCAP packages (libsgx-dcap-ql), or use quoting = simulated on the simulated platform") from exc
        try:
            functions = [getattr(lib, name) for name in SYMBOLS]
        except AttributeError as exc:
            raise QuotingUnavailable(f"quoting = dcap: {library} lacks a quote-generation symbol: {exc}") from exc
        u32p, u8p = ctypes.POINTER(ctypes.c_uint32), ctypes.POINTER(ctypes.c_uint8)
        for fn, argtypes in zip(functions, ([u8p], [u32p], [u8p, ctypes.c_uint32, u8p]), strict=True):
            fn.argtypes, fn.restype = argtypes, ctypes.c_uint32
        self._target_info, self._quote_size, self._quote = functions
        self.library = library
        self.collateral_url = collateral_url
        self._pccs: PccsClient | None = None
        self._lock = threading.Lock()

    @staticmethod
    def _check(status: int, call: str) -> None:
        if status != 0:
            raise error_for_status(status, call)

    def target_info(self) -> bytes:
        """The QE's 512-byte TARGETINFO, for the enclave's REPORT."""
        buf = (ctypes.c_uint8 * TARGET_INFO_SIZE)()
        with self._lock:
            self._check(self._target_info(buf), "sgx_qe_get_target_info")
        return bytes(buf)

    def collateral(self, quote: bytes) -> Collateral:
        """The collateral of a quote this QE made, from the platform's PCCS (`collateral_url`), cached until its
        earliest nextUpdate; for the attested join, whose peer verifies it inside (docs/cluster.md)."""
        if not self.collateral_url:
            raise QuotingCertificationError("quoting = dcap: the attested join sends the quote's collateral: set "
                                            "collateral_url to the platform's PCCS")
        try:
            chain = parse_quote(quote).embedded_pck_chain()
            if not chain:
                raise QuotingCertificationError("the quote carries no PCK certificate (certification data type 5)")
            ca = pck_ca_of(chain[0])
            fmspc = sgx_extension(chain[0], ca).fmspc
            with self._lock:
                if self._pccs is None:
                    self._pccs = PccsClient(self.collateral_url)
                return self._pccs.collateral_for(fmspc, ca, at=datetime.now(UTC))
        except (AttestationError, ValueError) as exc:
            raise QuotingCertificationError(f"quoting = dcap: no collateral for the quote from {self.collateral_url}: "
                                            f"{exc}") from exc

    def quote(self, report: bytes) -> bytes:
        """The ECDSA quote of a 432-byte REPORT targeted at this QE; checked to carry that REPORT's body."""
        if len(report) != REPORT_SIZE:
            raise QuotingError(f"a REPORT is {REPORT_SIZE} bytes, not {len(report)}")
        size = ctypes.c_uint32()
        with self._lock:
            self._check(self._quote_size(ctypes.byref(size)), "sgx_qe_get_quote_size")
            if not QUOTE_HEADER_SIZE + REPORT_BODY_SIZE < size.value <= MAX_QUOTE_SIZE:
                raise QuotingError(f"sgx_qe_get_quote_size: {size.value} bytes is not a quote size the enclave "
                                   f"accepts (at most {MAX_QUOTE_SIZE})")
            out = (ctypes.c_uint8 * size.value)()
            self._check(self._quote((ctypes.c_uint8 * REPORT_SIZE).from_buffer_copy(report), size.value, out),
                        "sgx_qe_get_quote")
        quote = bytes(out)
        if quote[QUOTE_HEADER_SIZE:QUOTE_HEADER_SIZE + REPORT_BODY_SIZE] != report[:REPORT_BODY_SIZE]:
            raise QuotingError("sgx_qe_get_quote returned a quote that does not carry this enclave's REPORT")
        return quote
