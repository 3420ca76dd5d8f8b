"""Parsing of DCAP ECDSA quotes: v3 (SGX) and v4 with an SGX report body."""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from cryptography import x509

from kms.attestation.errors import QuoteFormatError

HEADER_SIZE = 48
REPORT_BODY_SIZE = 384
V3_MIN_SIZE = 1020

# (offset, size) of each field of an SGX report body (`sgx_report_body_t`); integers are little-endian.
# docs/attestation.md §2a holds the same table, tested against this one and against real quotes.
REPORT_BODY_FIELDS: dict[str, tuple[int, int]] = {
    "cpusvn": (0, 16), "miscselect": (16, 4), "isvextprodid": (32, 16), "attributes": (48, 16),
    "mrenclave": (64, 32), "mrsigner": (128, 32), "configid": (192, 64), "isvprodid": (256, 2),
    "isvsvn": (258, 2), "configsvn": (260, 2), "isvfamilyid": (304, 16), "report_data": (320, 64),
}
ATT_KEY_TYPE_ECDSA_P256 = 2
TEE_TYPE_SGX = 0x00000000
TEE_TYPE_TDX = 0x00000081
INTEL_QE_VENDOR_ID = bytes.fromhex("939A7233F79C4CA9940A0DB3957F0607")

CERT_DATA_PPID_CLEARTEXT = 1
CERT_DATA_PCK_LEAF = 4
CERT_DATA_PCK_CHAIN = 5
CERT_DATA_QE_REPORT = 6

ATTR_INIT = 0x01
ATTR_DEBUG = 0x02
ATTR_MODE64BIT = 0x04
ATTR_PROVISIONKEY = 0x10
ATTR_EINITTOKEN_KEY = 0x20
ATTR_KSS = 0x80

_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----")


@dataclass(frozen=True)
class ReportBody:
    """An SGX report body (`sgx_report_body_t`, 384 bytes), fields in report memory order."""

    raw: bytes
    cpusvn: bytes
    miscselect: bytes
    isvextprodid: bytes
    attributes: bytes
    mrenclave: bytes
    mrsigner: bytes
    configid: bytes
    isvprodid: int
    isvsvn: int
    configsvn: int
    isvfamilyid: bytes
    report_data: bytes

    @property
    def flags(self) -> int:
        return int.from_bytes(self.attributes[:8], "little")

    @property
    def xfrm(self) -> int:
        return int.from_bytes(self.attributes[8:], "little")

    @property
    def debug(self) -> bool:
        return bool(self.flags & ATTR_DEBUG)


@dataclass(frozen=True)
class QuoteHeader:
    """The 48-byte quote header shared by v3 and v4."""

    version: int
    att_key_type: int
    tee_type: int
    qe_svn: int
    pce_svn: int
    qe_vendor_id: bytes
    user_data: bytes


@dataclass(frozen=True)
class Quote:
    """A parsed, not yet verified, SGX ECDSA quote."""

    raw: bytes
    header: QuoteHeader
    body: ReportBody
    signed_data: bytes
    isv_signature: bytes
    attestation_key: bytes
    qe_report: ReportBody
    qe_report_signature: bytes
    qe_auth_data: bytes
    cert_data_type: int
    cert_data: bytes

    @property
    def version(self) -> int:
        return self.header.version

    def embedded_pck_chain(self) -> tuple[x509.Certificate, ...]:
        """The certificates carried in the quote (type 5: leaf, CA, root; type 4: the leaf)."""
        if self.cert_data_type in (CERT_DATA_PCK_LEAF, CERT_DATA_PCK_CHAIN):
            return parse_pem_chain(self.cert_data)
        return ()


def parse_report_body(raw: bytes) -> ReportBody:
    """Split a 384-byte SGX report body into its fields (reference §1.2)."""
    if len(raw) != REPORT_BODY_SIZE:
        raise QuoteFormatError(f"report body is {len(raw)} bytes, expected {REPORT_BODY_SIZE}")
    fields = {name: raw[at : at + size] for name, (at, size) in REPORT_BODY_FIELDS.items()}
    for name in ("isvprodid", "isvsvn", "configsvn"):
        fields[name] = int.from_bytes(fields[name], "little")
    return ReportBody(raw=bytes(raw), **fields)


def parse_pem_chain(data: bytes) -> tuple[x509.Certificate, ...]:
    """PEM certificates concatenated, optionally followed by NUL bytes, and nothing else."""
    text = data.rstrip(b"\x00")
    blocks = list(_PEM_CERT.finditer(text))
    rest = _PEM_CERT.sub(b"", text)
    if not blocks or rest.strip():
        raise QuoteFormatError("certification data is not a concatenation of PEM certificates")
    try:
        return tuple(x509.load_pem_x509_certificate(m.group(0)) for m in blocks)
    except ValueError as exc:
        raise QuoteFormatError(f"certification data holds an unparseable certificate: {exc}") from exc


class _Reader:
    """Bounds-checked little-endian reads over the quote bytes."""

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos

    def take(self, size: int, what: str) -> bytes:
        if size < 0 or self.pos + size > len(self.data):
            raise QuoteFormatError(f"quote is truncated in {what}")
        out = self.data[self.pos : self.pos + size]
        self.pos += size
        return out

    def u16(self, what: str) -> int:
        return int.from_bytes(self.take(2, what), "little")

    def u32(self, what: str) -> int:
        return int.from_bytes(self.take(4, what), "little")


def _parse_header(data: bytes) -> QuoteHeader:
    version, key_type, tee_type, qe_svn, pce_svn = struct.unpack_from("<HHIHH", data, 0)
    header = QuoteHeader(version, key_type, tee_type, qe_svn, pce_svn, data[12:28], data[28:48])
    if version not in (3, 4):
        raise QuoteFormatError(f"unsupported quote version {version} (3 and SGX 4 are supported)")
    if key_type != ATT_KEY_TYPE_ECDSA_P256:
        raise QuoteFormatError(f"attestation key type {key_type} is not ECDSA-256-with-P-256 (2)")
    if version == 3 and tee_type != 0:
        raise QuoteFormatError("quote v3 has a non-zero reserved field at offset 4")
    if version == 4 and tee_type == TEE_TYPE_TDX:
        raise QuoteFormatError("TDX quotes are not supported by this verifier")
    if version == 4 and tee_type != TEE_TYPE_SGX:
        raise QuoteFormatError(f"unknown TEE type 0x{tee_type:08x}")
    if header.qe_vendor_id != INTEL_QE_VENDOR_ID:
        raise QuoteFormatError(f"QE vendor ID {header.qe_vendor_id.hex()} is not Intel's")
    return header


def _inner_cert_data(reader: _Reader, what: str) -> tuple[int, bytes]:
    cert_type = reader.u16(f"{what} type")
    size = reader.u32(f"{what} size")
    return cert_type, reader.take(size, what)


def parse_quote(data: bytes) -> Quote:
    """Parse and structurally validate a quote (reference §2.3 step 1). No signature is checked."""
    data = bytes(data)
    if len(data) < V3_MIN_SIZE:
        raise QuoteFormatError(f"quote is {len(data)} bytes, shorter than the minimum {V3_MIN_SIZE}")
    header = _parse_header(data)
    signed_end = HEADER_SIZE + REPORT_BODY_SIZE
    body = parse_report_body(data[HEADER_SIZE:signed_end])
    reader = _Reader(data, signed_end)
    sig_len = reader.u32("signature data length")
    if sig_len != len(data) - reader.pos:
        raise QuoteFormatError(
            f"signature data length {sig_len} does not match the {len(data) - reader.pos} bytes present"
        )
    isv_signature = reader.take(64, "ISV report signature")
    attestation_key = reader.take(64, "attestation key")
    if header.version == 4:
        outer_type, outer = _inner_cert_data(reader, "certification data")
        if outer_type != CERT_DATA_QE_REPORT:
            raise QuoteFormatError(f"quote v4 certification data type is {outer_type}, expected 6")
        if reader.pos != len(data):
            raise QuoteFormatError("bytes left over after the QE report certification data")
        reader = _Reader(outer, 0)
    qe_raw = reader.take(REPORT_BODY_SIZE, "QE report")
    qe_signature = reader.take(64, "QE report signature")
    auth_size = reader.u16("QE authentication data size")
    auth_data = reader.take(auth_size, "QE authentication data")
    cert_type, cert_data = _inner_cert_data(reader, "certification data")
    if reader.pos != len(reader.data):
        raise QuoteFormatError("bytes left over after the certification data")
    if not 1 <= cert_type <= 5:
        raise QuoteFormatError(f"certification data type {cert_type} is not supported (1..5)")
    return Quote(
        raw=data,
        header=header,
        body=body,
        signed_data=data[:signed_end],
        isv_signature=isv_signature,
        attestation_key=attestation_key,
        qe_report=parse_report_body(qe_raw),
        qe_report_signature=qe_signature,
        qe_auth_data=auth_data,
        cert_data_type=cert_type,
        cert_data=cert_data,
    )
