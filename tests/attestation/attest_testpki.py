"""A synthetic DCAP platform for tests: root/CA/PCK/TCB-signing PKI, CRLs, collateral, quotes."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from kms.attestation import Collateral, PckCa, SignedDocument, TrustAnchor, collateral_from_parts
from kms.attestation.quote import INTEL_QE_VENDOR_ID

REPO = Path(__file__).resolve().parents[2]
VECTORS = REPO.parent / "shared" / "vectors"
NOW = datetime(2025, 3, 1, tzinfo=UTC)
QE_MRSIGNER = bytes.fromhex("8C4F5775D796503E96137F77C68A829A0056AC8DED70140B081B094490C57BFF")
MRENCLAVE = hashlib.sha256(b"test enclave").digest()
MRSIGNER = hashlib.sha256(b"test signer").digest()
FMSPC = bytes.fromhex("00906ED50000")


def vectors(*parts: str) -> Path:
    """A vector directory; skip when ../shared/vectors is absent, fail when CI=true."""
    path = VECTORS.joinpath(*parts)
    if not path.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"test vectors missing under CI: {path}")
        pytest.skip(f"test vectors not present: {path} (expected in ../shared/vectors)")
    return path


# --- minimal DER encoding for the SGX extension ---------------------------------------------

def tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def der_oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return tlv(0x06, bytes(out))


def der_uint(value: int, tag: int = 0x02) -> bytes:
    raw = value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big")
    return tlv(tag, raw)


def seq(*items: bytes) -> bytes:
    return tlv(0x30, b"".join(items))


def sgx_extension_der(components: tuple[int, ...], pcesvn: int, fmspc: bytes, ca: PckCa) -> bytes:
    base = "1.2.840.113741.1.13.1"
    tcb = [seq(der_oid(f"{base}.2.{i + 1}"), der_uint(c)) for i, c in enumerate(components)]
    tcb += [seq(der_oid(f"{base}.2.17"), der_uint(pcesvn)), seq(der_oid(f"{base}.2.18"), tlv(0x04, bytes(components)))]
    entries = [
        seq(der_oid(f"{base}.1"), tlv(0x04, bytes(range(16)))),
        seq(der_oid(f"{base}.2"), seq(*tcb)),
        seq(der_oid(f"{base}.3"), tlv(0x04, b"\x00\x00")),
        seq(der_oid(f"{base}.4"), tlv(0x04, fmspc)),
        seq(der_oid(f"{base}.5"), der_uint(0, 0x0A)),
    ]
    if ca is PckCa.PLATFORM:
        flags = [seq(der_oid(f"{base}.7.{i}"), tlv(0x01, b"\x00")) for i in (1, 2, 3)]
        entries += [seq(der_oid(f"{base}.6"), tlv(0x04, bytes(16))), seq(der_oid(f"{base}.7"), seq(*flags))]
    return seq(*entries)


# --- certificates, CRLs, signed JSON -------------------------------------------------------

def name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test")])


def make_cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None,
              issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool,
              extra: list[x509.ExtensionType] = (), not_after: datetime | None = None) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(issuer.subject if issuer else name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2024, 1, 1, tzinfo=UTC))
        .not_valid_after(not_after or datetime(2035, 1, 1, tzinfo=UTC))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    for ext in extra:
        builder = builder.add_extension(ext, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_crl(issuer: x509.Certificate, key: ec.EllipticCurvePrivateKey,
             revoked: list[int]) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(NOW - timedelta(days=10))
        .next_update(NOW + timedelta(days=20))
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
    )
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(NOW - timedelta(days=30)).build())
    return builder.sign(key, hashes.SHA256())


def raw_sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def tcb_level(comps: tuple[int, ...], pcesvn: int, status: str, advisories: tuple[str, ...] = ()) -> dict:
    level: dict = {"tcb": {"sgxtcbcomponents": [{"svn": c} for c in comps], "pcesvn": pcesvn},
                   "tcbDate": "2024-11-13T00:00:00Z", "tcbStatus": status}
    if advisories:
        level["advisoryIDs"] = list(advisories)
    return level


def qe_level(isvsvn: int, status: str, advisories: tuple[str, ...] = ()) -> dict:
    level: dict = {"tcb": {"isvsvn": isvsvn}, "tcbDate": "2024-11-13T00:00:00Z", "tcbStatus": status}
    if advisories:
        level["advisoryIDs"] = list(advisories)
    return level


COMPONENTS = (12, 12, 3, 3, 255, 255, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0)
DEFAULT_TCB_LEVELS = (
    tcb_level(COMPONENTS, 13, "UpToDate"),
    tcb_level((12, 12, 3, 3, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), 13, "SWHardeningNeeded", ("INTEL-SA-00615",)),
    tcb_level((1,) * 2 + (0,) * 14, 5, "OutOfDate", ("INTEL-SA-00106", "INTEL-SA-00615")),
)
DEFAULT_QE_LEVELS = (qe_level(8, "UpToDate"), qe_level(6, "OutOfDate", ("INTEL-SA-00615",)))


@dataclass
class SynthPlatform:
    """A complete synthetic platform; change fields, then call collateral() and quote()."""

    ca: PckCa = PckCa.PROCESSOR
    root_cn: str = "Test SGX Root CA"
    components: tuple[int, ...] = COMPONENTS
    pcesvn: int = 13
    revoke_leaf: bool = False
    revoke_ca: bool = False
    keys: dict[str, ec.EllipticCurvePrivateKey] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for role in ("root", "ca", "pck", "tcb", "att"):
            self.keys[role] = ec.generate_private_key(ec.SECP256R1())
        usage = x509.KeyUsage(True, False, False, False, False, True, True, False, False)
        self.root = make_cert(self.root_cn, self.keys["root"], None, self.keys["root"], ca=True, extra=[usage])
        ca_cn = "Test SGX PCK Processor CA" if self.ca is PckCa.PROCESSOR else "Test SGX PCK Platform CA"
        self.ca_cert = make_cert(ca_cn, self.keys["ca"], self.root, self.keys["root"], ca=True, extra=[usage])
        self.pck = self.make_pck()
        self.tcb_cert = make_cert("Test SGX TCB Signing", self.keys["tcb"], self.root, self.keys["root"], ca=False)

    def make_pck(self, **overrides: object) -> x509.Certificate:
        ext = x509.UnrecognizedExtension(
            x509.ObjectIdentifier("1.2.840.113741.1.13.1"),
            sgx_extension_der(self.components, self.pcesvn, FMSPC, self.ca))
        return make_cert("Test SGX PCK Certificate", self.keys["pck"], self.ca_cert, self.keys["ca"], ca=False,
                         extra=[ext], **overrides)  # type: ignore[arg-type]

    @property
    def anchor(self) -> TrustAnchor:
        return TrustAnchor.from_certificate(self.root)

    def signed(self, obj: dict) -> SignedDocument:
        body = json.dumps(obj, separators=(",", ":")).encode()
        return SignedDocument(body, raw_sign(self.keys["tcb"], body))

    def tcb_info(self, levels: tuple[dict, ...] = DEFAULT_TCB_LEVELS, **overrides: object) -> dict:
        info = {"id": "SGX", "version": 3, "issueDate": "2025-02-15T00:00:00Z", "nextUpdate": "2025-03-15T00:00:00Z",
                "fmspc": FMSPC.hex().upper(), "pceId": "0000", "tcbType": 0, "tcbEvaluationDataNumber": 19,
                "tcbLevels": list(levels)}
        info.update(overrides)
        return info

    def qe_identity(self, levels: tuple[dict, ...] = DEFAULT_QE_LEVELS, **overrides: object) -> dict:
        ident = {"id": "QE", "version": 2, "issueDate": "2025-02-15T00:00:00Z", "nextUpdate": "2025-03-15T00:00:00Z",
                 "tcbEvaluationDataNumber": 19, "miscselect": "00000000", "miscselectMask": "FFFFFFFF",
                 "attributes": "11000000000000000000000000000000",
                 "attributesMask": "FBFFFFFFFFFFFFFF0000000000000000", "mrsigner": QE_MRSIGNER.hex().upper(),
                 "isvprodid": 1, "tcbLevels": list(levels)}
        ident.update(overrides)
        return ident

    def collateral(self, *, tcb_info: dict | None = None, qe_identity: dict | None = None) -> Collateral:
        root_crl = make_crl(self.root, self.keys["root"], [self.ca_cert.serial_number] if self.revoke_ca else [])
        pck_crl = make_crl(self.ca_cert, self.keys["ca"], [self.pck.serial_number] if self.revoke_leaf else [])
        der = serialization.Encoding.DER
        return collateral_from_parts(
            pck_crl_issuer_chain=pem(self.ca_cert, self.root), root_ca_crl=root_crl.public_bytes(der),
            pck_crl=pck_crl.public_bytes(der), tcb_info_issuer_chain=pem(self.tcb_cert, self.root),
            tcb_info=self.signed(tcb_info or self.tcb_info()),
            qe_identity_issuer_chain=pem(self.tcb_cert, self.root),
            qe_identity=self.signed(qe_identity or self.qe_identity()))

    def qe_report(self, auth: bytes, qe_isvsvn: int = 8) -> bytes:
        att = self.attestation_key()
        body = bytearray(384)
        body[48] = 0x11
        body[128:160] = QE_MRSIGNER
        body[256:260] = struct.pack("<HH", 1, qe_isvsvn)
        body[320:352] = hashlib.sha256(att + auth).digest()
        return bytes(body)

    def attestation_key(self) -> bytes:
        nums = self.keys["att"].public_key().public_numbers()
        return nums.x.to_bytes(32, "big") + nums.y.to_bytes(32, "big")

    def quote(self, *, version: int = 3, flags: int = 0x05, mrenclave: bytes = MRENCLAVE,
              mrsigner: bytes = MRSIGNER, isvprodid: int = 7, isvsvn: int = 3, report_data: bytes = b"",
              qe_isvsvn: int = 8, nul: bool = True, chain: bytes | None = None) -> bytes:
        header = struct.pack("<HHIHH", version, 2, 0, 10, 13) + INTEL_QE_VENDOR_ID + bytes(20)
        body = bytearray(384)
        body[48:64] = struct.pack("<QQ", flags, 0xE7)
        body[64:96] = mrenclave
        body[128:160] = mrsigner
        body[256:260] = struct.pack("<HH", isvprodid, isvsvn)
        body[320:384] = report_data.ljust(64, b"\x00")
        signed = header + bytes(body)
        auth = bytes(range(32))
        qe_report = self.qe_report(auth, qe_isvsvn)
        cert_data = (chain if chain is not None else pem(self.pck, self.ca_cert, self.root)) + (b"\x00" if nul else b"")
        qe_part = (qe_report + raw_sign(self.keys["pck"], qe_report) + struct.pack("<H", len(auth)) + auth
                   + struct.pack("<HI", 5, len(cert_data)) + cert_data)
        sig_data = raw_sign(self.keys["att"], signed) + self.attestation_key()
        sig_data += qe_part if version == 3 else struct.pack("<HI", 6, len(qe_part)) + qe_part
        return signed + struct.pack("<I", len(sig_data)) + sig_data


def replace_v3_cert_data(quote: bytes, cert_data: bytes) -> bytes:
    """Swap the certification data of a v3 quote, fixing both length fields (signatures untouched)."""
    auth = struct.unpack_from("<H", quote, 1012)[0]
    start = 1014 + auth
    cert_type = quote[start : start + 2]
    head = quote[436:start] + cert_type + struct.pack("<I", len(cert_data)) + cert_data
    return quote[:432] + struct.pack("<I", len(head)) + head


def flip(data: bytes, offset: int, mask: int = 0x01) -> bytes:
    out = bytearray(data)
    out[offset] ^= mask
    return bytes(out)
