"""The simulated quoting enclave: REPORT MAC checks against real enclave reports, quote v3 layout (§1.3)."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from kms.attestation import parse_quote
from kms.attestation.quote import INTEL_QE_VENDOR_ID
from kms.sim import ReportError, ReportMacError, RootSecretError, SimPlatform, SimQuotingEnclave
from kms.sim.qe import QE_FLAGS, QE_MRENCLAVE, QE_MRSIGNER, QE_XFRM, target_info

Report = Callable[..., bytes]


def flip(data: bytes, offset: int) -> bytes:
    out = bytearray(data)
    out[offset] ^= 0x01
    return bytes(out)


def ecdsa_ok(point: bytes, signature: bytes, data: bytes) -> bool:
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + point)
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    try:
        key.verify(der, data, ec.ECDSA(hashes.SHA256()))
    except Exception:
        return False
    return True


def test_target_info_is_the_simulated_qe() -> None:
    ti = target_info()
    assert len(ti) == 512 and ti[:32] == QE_MRENCLAVE
    assert struct.unpack_from("<QQ", ti, 32) == (QE_FLAGS, QE_XFRM) and ti[52:56] == bytes(4)
    assert ti[48:52] == bytes(4) and ti[56:] == bytes(512 - 56)


def test_quote_of_a_real_report_has_the_v3_layout(platform: SimPlatform, enclave_report: Report) -> None:
    report = enclave_report(platform.data_dir)
    raw = SimQuotingEnclave(platform).quote(report)
    quote = parse_quote(raw)
    assert struct.unpack_from("<HHIHH", raw, 0) == (3, 2, 0, 8, 13)
    assert raw[12:28] == INTEL_QE_VENDOR_ID and raw[28:48] == platform.qe_id + bytes(4)
    assert quote.body.raw == report[:384] and quote.body.cpusvn == platform.cpusvn()
    assert struct.unpack_from("<I", raw, 432)[0] == len(raw) - 436
    assert quote.qe_auth_data == bytes(range(32)) and quote.cert_data_type == 5
    binding = hashlib.sha256(quote.attestation_key + quote.qe_auth_data).digest()
    assert quote.qe_report.report_data == binding + bytes(32)
    assert quote.qe_report.mrenclave == QE_MRENCLAVE and quote.qe_report.mrsigner == QE_MRSIGNER
    assert (quote.qe_report.isvprodid, quote.qe_report.isvsvn) == (1, 8)
    assert ecdsa_ok(quote.attestation_key, quote.isv_signature, raw[:432])
    leaf, ca, root = platform.pck_chain()
    assert quote.embedded_pck_chain() == (leaf, ca, root)
    pck_point = leaf.public_key().public_numbers()
    point = pck_point.x.to_bytes(32, "big") + pck_point.y.to_bytes(32, "big")
    assert ecdsa_ok(point, quote.qe_report_signature, quote.qe_report.raw)


@pytest.mark.parametrize("offset", [0, 100, 320, 383, 384, 415, 416, 431])
def test_a_flipped_report_byte_is_refused(platform: SimPlatform, enclave_report: Report, offset: int) -> None:
    report = enclave_report(platform.data_dir)
    with pytest.raises(ReportMacError):
        SimQuotingEnclave(platform).quote(flip(report, offset))


def test_a_report_for_another_target_or_platform_is_refused(
    platform: SimPlatform, enclave_report: Report, tmp_path: Path
) -> None:
    qe = SimQuotingEnclave(platform)
    with pytest.raises(ReportMacError):
        qe.quote(enclave_report(platform.data_dir, bytes(512)))
    with pytest.raises(ReportMacError):
        qe.quote(enclave_report(tmp_path / "other"))


def test_a_report_from_before_a_tcb_change_is_refused_with_a_hint(
    platform: SimPlatform, enclave_report: Report
) -> None:
    report = enclave_report(platform.data_dir)
    platform.set_tcb("OutOfDate")
    with pytest.raises(ReportMacError, match="restart the enclave"):
        SimQuotingEnclave(platform).quote(report)


def test_malformed_input_and_missing_fuses(platform: SimPlatform) -> None:
    qe = SimQuotingEnclave(platform)
    with pytest.raises(ReportError):
        qe.quote(bytes(431))
    with pytest.raises(RootSecretError, match="does not exist"):
        qe.quote(bytes(432))
    secret = platform.directory / "root.secret"
    secret.write_bytes(b"KMSSIMR1" + bytes(56))
    secret.chmod(0o644)
    with pytest.raises(RootSecretError, match="0600"):
        qe.quote(bytes(432))
    secret.chmod(0o600)
    with pytest.raises(ReportMacError):
        qe.quote(bytes(432))
    secret.write_bytes(b"NOTMAGIC" + bytes(56))
    with pytest.raises(RootSecretError, match="malformed"):
        qe.quote(bytes(432))
