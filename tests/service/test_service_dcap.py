"""The DCAP quoting adapter (kms.service.dcap) against a fake libsgx_dcap_ql.so.1 compiled here: the calling
convention (buffers, sizes, the REPORT passed through whole), quote3_error_t -> typed errors, and failing
closed when the library or one of its symbols is missing."""

from __future__ import annotations

import ctypes
import json
from pathlib import Path

import pytest

from kms.errors import KmsError
from kms.service import dcap
from kms.service.dcap import (
    DcapQuotingEnclave,
    QuotingCertificationError,
    QuotingError,
    QuotingReportRejected,
    QuotingUnavailable,
)
from kms.service.evidence import open_quoting_enclave
from kms.sim import SimPlatform
from kms.sim.pccs import PccsServer
from kms.sim.qe import SimQuotingEnclave
from tests.service.fake_dcap import build_fake_dcap

REPORT = bytes((i * 13 + 5) % 256 for i in range(432))


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fake_dcap(tmp_path_factory.mktemp("dcap"))


def _set(fake: Path, target: int = 0, size: int = 0, quote: int = 0, quote_size: int = 48 + 432 + 64) -> None:
    """Program the fake (dlopen hands the adapter the same loaded library, so it sees this)."""
    ctypes.CDLL(str(fake)).fake_set(target, size, quote, quote_size)


@pytest.fixture
def qe(fake: Path) -> DcapQuotingEnclave:
    _set(fake)
    return DcapQuotingEnclave(str(fake))


def test_target_info_and_quote_marshal_as_the_c_api_says(qe: DcapQuotingEnclave, fake: Path) -> None:
    assert qe.simulated is False
    assert qe.target_info() == bytes((i * 7 + 1) % 256 for i in range(512))
    quote = qe.quote(REPORT)
    assert len(quote) == 48 + 432 + 64  # the size sgx_qe_get_quote_size announced
    assert quote[0] == 3 and quote[48:480] == REPORT and quote[480:] == b"\xab" * 64
    lib = ctypes.CDLL(str(fake))
    lib.fake_seen_report.restype = ctypes.POINTER(ctypes.c_uint8 * 432)
    assert lib.fake_seen_size() == len(quote) and bytes(lib.fake_seen_report().contents) == REPORT


@pytest.mark.parametrize(("where", "status", "kind", "name"), [
    ("target", 0xE00D, QuotingUnavailable, "SGX_QL_INTERFACE_UNAVAILABLE"),
    ("target", 0xE03F, QuotingUnavailable, "SGX_QL_NO_DEVICE"),
    ("size", 0xE011, QuotingCertificationError, "SGX_QL_NO_PLATFORM_CERT_DATA"),
    ("quote", 0xE019, QuotingCertificationError, "SGX_QL_NETWORK_ERROR"),
    ("quote", 0xE015, QuotingReportRejected, "SGX_QL_INVALID_REPORT"),
    ("quote", 0xE002, QuotingError, "SGX_QL_ERROR_INVALID_PARAMETER"),
    ("quote", 0xE0FE, QuotingError, "unknown quote3_error_t"),
])
def test_status_codes_become_typed_errors(qe: DcapQuotingEnclave, fake: Path, where: str, status: int,
                                          kind: type[QuotingError], name: str) -> None:
    _set(fake, **{where: status})
    call = qe.target_info if where == "target" else lambda: qe.quote(REPORT)
    with pytest.raises(kind) as info:
        call()
    assert type(info.value) is kind and isinstance(info.value, KmsError)
    assert info.value.status == status and info.value.status_name == name
    assert f"0x{status:04x}" in str(info.value) and name in str(info.value)


@pytest.mark.parametrize("quote_size", [0, 432, 8193])
def test_a_quote_size_the_enclave_cannot_take_is_refused(qe: DcapQuotingEnclave, fake: Path, quote_size: int) -> None:
    _set(fake, quote_size=quote_size)
    with pytest.raises(QuotingError, match="quote size"):
        qe.quote(REPORT)


def test_a_quote_without_this_report_is_refused(qe: DcapQuotingEnclave, fake: Path) -> None:
    _set(fake, quote_size=470)  # too short for the fake to copy the REPORT in
    with pytest.raises(QuotingError, match="does not carry this enclave's REPORT"):
        qe.quote(REPORT)


def test_the_join_collateral_comes_from_the_pccs(fake: Path, tmp_path: Path) -> None:
    """The join's collateral for a quote: fetched from `collateral_url` for the quote's FMSPC and PCK CA (here
    the simulated PCCS and a quote of its platform); without a URL, or from a PCCS that fails, a typed error."""
    platform = SimPlatform(tmp_path / "node")

    class Unchecked(SimQuotingEnclave):  # a quote of this platform without a running enclave's REPORT
        def verify_report(self, report: bytes) -> None:
            pass

    quote = Unchecked(platform).quote(bytes(432))
    with pytest.raises(QuotingCertificationError, match="set collateral_url"):
        DcapQuotingEnclave(str(fake)).collateral(quote)
    with PccsServer(platform) as pccs:
        got = DcapQuotingEnclave(str(fake), collateral_url=pccs.url).collateral(quote)
        with pytest.raises(QuotingCertificationError, match="no collateral for the quote"):
            DcapQuotingEnclave(str(fake), collateral_url=pccs.url).collateral(quote[:600])
    assert json.loads(got.tcb_info.body)["fmspc"] == platform.fmspc.hex().upper()
    assert got.pck_crl.issuer == platform.cas[platform.pck_ca()].subject
    with pytest.raises(QuotingCertificationError, match="no collateral for the quote"):  # the PCCS is gone
        DcapQuotingEnclave(str(fake), collateral_url=pccs.url).collateral(quote)


def test_a_report_of_the_wrong_size_never_reaches_the_library(qe: DcapQuotingEnclave, fake: Path) -> None:
    _set(fake, quote=0xE001)  # a call that reached the library would fail differently
    with pytest.raises(QuotingError, match="a REPORT is 432 bytes, not 431") as info:
        qe.quote(REPORT[:431])
    assert info.value.status == 0


def test_a_missing_library_fails_closed_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / dcap.LIBRARY
    with pytest.raises(QuotingUnavailable, match=rf"{missing}.*quoting = simulated"):
        DcapQuotingEnclave(str(missing))
    assert dcap.LIBRARY == "libsgx_dcap_ql.so.1" and DcapQuotingEnclave.__init__.__defaults__ == (dcap.LIBRARY,)


def test_the_setting_chooses_the_quoting_enclave(tmp_path: Path) -> None:
    from kms.sim.qe import SimQuotingEnclave

    assert isinstance(open_quoting_enclave("simulated", tmp_path), SimQuotingEnclave)
    with pytest.raises(ValueError, match="not simulated or dcap"):
        open_quoting_enclave("sgx", tmp_path)


def test_a_library_without_a_symbol_fails_closed_naming_it(tmp_path: Path) -> None:
    partial = build_fake_dcap(tmp_path, name="libpartial.so", without="sgx_qe_get_quote")
    with pytest.raises(QuotingUnavailable, match="sgx_qe_get_quote"):
        DcapQuotingEnclave(str(partial))
