"""Parsers: quote structure, PCK SGX extension, TCB Info / QE Identity JSON, DER reader, policy rules."""

from __future__ import annotations

import json
import struct

import pytest
from attest_testpki import COMPONENTS, FMSPC, SynthPlatform, der_oid, sgx_extension_der, vectors

from kms.attestation import AttestationPolicy, PckCa, QuoteFormatError, Step, TcbStatus, parse_quote
from kms.attestation import der as derlib
from kms.attestation.errors import CollateralError
from kms.attestation.pck import decode_sgx_extension
from kms.attestation.tcb import converge, parse_qe_identity, parse_tcb_info


@pytest.fixture(scope="module")
def platform() -> SynthPlatform:
    return SynthPlatform()


def test_real_quote_fields() -> None:
    quote = parse_quote((vectors("dcap", "dcap-qvl") / "sgx_quote").read_bytes())
    assert (quote.version, quote.cert_data_type, len(quote.raw)) == (3, 5, 4600)
    assert quote.cert_data.endswith(b"\x00") and len(quote.embedded_pck_chain()) == 3
    assert quote.body.flags == 0x05 and not quote.body.debug
    assert quote.qe_auth_data == bytes(range(32))


@pytest.mark.parametrize(("mutate", "text"), [
    (lambda q: q[:1019], "shorter than the minimum"),
    (lambda q: struct.pack("<H", 5) + q[2:], "unsupported quote version 5"),
    (lambda q: q[:2] + struct.pack("<H", 3) + q[4:], "attestation key type 3"),
    (lambda q: q[:12] + bytes(16) + q[28:], "not Intel's"),
    (lambda q: q[:4] + b"\x01" + q[5:], "reserved field"),
    (lambda q: q + b"\x00", "signature data length"),
    (lambda q: q[:432] + struct.pack("<I", len(q) - 436 - 1) + q[436:-1], "truncated"),
])
def test_malformed_quotes(platform: SynthPlatform, mutate, text: str) -> None:
    with pytest.raises(QuoteFormatError, match=text) as info:
        parse_quote(mutate(platform.quote()))
    assert info.value.step is Step.QUOTE_FORMAT


def test_v4_tdx_and_wrong_outer_type(platform: SynthPlatform) -> None:
    v4 = platform.quote(version=4)
    with pytest.raises(QuoteFormatError, match="TDX"):
        parse_quote(v4[:4] + struct.pack("<I", 0x81) + v4[8:])
    with pytest.raises(QuoteFormatError, match="expected 6"):
        parse_quote(v4[:564] + struct.pack("<H", 5) + v4[566:])


def test_cert_data_must_be_pem_only(platform: SynthPlatform) -> None:
    quote = parse_quote(platform.quote(chain=b"junk" + b"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----"))
    with pytest.raises(QuoteFormatError):
        quote.embedded_pck_chain()


def test_sgx_extension_parsing() -> None:
    ext = decode_sgx_extension(sgx_extension_der(COMPONENTS, 200, FMSPC, PckCa.PLATFORM), PckCa.PLATFORM)
    assert ext.tcb_components == COMPONENTS and ext.pcesvn == 200 and ext.fmspc == FMSPC
    assert ext.configuration is not None and ext.platform_instance_id == bytes(16)
    with pytest.raises(derlib.DerError, match="platform instance ID"):
        decode_sgx_extension(sgx_extension_der(COMPONENTS, 13, FMSPC, PckCa.PROCESSOR), PckCa.PLATFORM)


def test_der_reader_is_strict() -> None:
    assert derlib.decode_oid(der_oid("1.2.840.113741.1.13.1")[2:]) == "1.2.840.113741.1.13.1"
    assert derlib.decode_oid(bytes.fromhex("06092a864886f84d8a3906")) == "0.6.9.42.840.113741.1337.6"
    assert derlib.decode_uint(b"\x00\xff") == 255
    for bad in (b"\x00\x7f", b"\xff"):
        with pytest.raises(derlib.DerError):
            derlib.decode_uint(bad)
    for bad in (b"\x30\x80\x00\x00", b"\x30\x81\x01\x00", b"\x30\x05\x00", b"\x04\x00\x00"):
        with pytest.raises(derlib.DerError):
            derlib.parse(bad)


def test_tcb_info_parsing_rejects_bad_documents(platform: SynthPlatform) -> None:
    good = platform.tcb_info()
    assert parse_tcb_info(json.dumps(good).encode()).levels[0].components == COMPONENTS
    for change in ({"version": 4}, {"tcbType": 1}, {"fmspc": "00"}, {"tcbLevels": []}, {"issueDate": "yesterday"},
                   {"tcbEvaluationDataNumber": True}):
        with pytest.raises(CollateralError) as info:
            parse_tcb_info(json.dumps({**good, **change}).encode())
        assert info.value.step is Step.TCB_INFO
    with pytest.raises(CollateralError, match="JSON"):
        parse_tcb_info(b'{"version":3,"version":3}')
    with pytest.raises(CollateralError, match="JSON"):
        parse_tcb_info(b'{"version":NaN}')
    with pytest.raises(CollateralError):
        parse_qe_identity(json.dumps({**platform.qe_identity(), "version": 1}).encode())


def test_convergence_table() -> None:
    s = TcbStatus
    assert converge(s.SW_HARDENING_NEEDED, s.OUT_OF_DATE) is s.OUT_OF_DATE
    assert converge(s.CONFIGURATION_AND_SW_HARDENING_NEEDED, s.OUT_OF_DATE) is s.OUT_OF_DATE_CONFIGURATION_NEEDED
    assert converge(s.OUT_OF_DATE, s.OUT_OF_DATE) is s.OUT_OF_DATE
    assert converge(s.UP_TO_DATE, s.REVOKED) is s.REVOKED
    assert converge(s.CONFIGURATION_NEEDED, s.UP_TO_DATE) is s.CONFIGURATION_NEEDED


def test_policy_construction_rules() -> None:
    with pytest.raises(ValueError, match="allow_any_enclave_insecure"):
        AttestationPolicy()
    with pytest.raises(ValueError, match="allow_outdated_tcb_insecure"):
        AttestationPolicy(mrsigner=bytes(32), allowed_tcb_statuses=frozenset({TcbStatus.OUT_OF_DATE}))
    with pytest.raises(ValueError, match="Revoked"):
        AttestationPolicy(mrsigner=bytes(32), allowed_tcb_statuses=frozenset({TcbStatus.REVOKED}),
                          allow_outdated_tcb_insecure=True)
    with pytest.raises(ValueError):
        AttestationPolicy(mrsigner=bytes(31))
    with pytest.raises(ValueError):
        AttestationPolicy(mrsigner=bytes(32), report_data=bytes(65))
    policy = AttestationPolicy.build(mrenclave="11" * 32, allowed_tcb_statuses=["SWHardeningNeeded"])
    assert policy.mrenclaves == frozenset({bytes([0x11]) * 32})
    assert policy.allowed_tcb_statuses == frozenset({TcbStatus.SW_HARDENING_NEEDED})
    insecure = [f for f in AttestationPolicy.__dataclass_fields__ if f.startswith("allow_")]
    assert insecure and all(f.endswith("_insecure") for f in insecure)
    assert not any(getattr(policy, f) for f in insecure)
