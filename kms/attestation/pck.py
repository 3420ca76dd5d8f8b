"""PCK certificates: the SGX extension (OID 1.2.840.113741.1.13.1) and the issuing CA type."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from cryptography import x509
from cryptography.x509.oid import NameOID

from kms.attestation import der
from kms.attestation.errors import CertificateChainError, Step

SGX_EXTENSION_OID = x509.ObjectIdentifier("1.2.840.113741.1.13.1")
_BASE = "1.2.840.113741.1.13.1"
_TCB = f"{_BASE}.2"
_CONFIG = f"{_BASE}.7"


class PckCa(StrEnum):
    """The intermediate that issued a PCK certificate; it selects the PCK CRL (`ca=`)."""

    PROCESSOR = "processor"
    PLATFORM = "platform"


@dataclass(frozen=True)
class PlatformConfiguration:
    """Platform-CA PCK configuration flags (…13.1.7); absent flags are None."""

    dynamic_platform: bool | None
    cached_keys: bool | None
    smt_enabled: bool | None


@dataclass(frozen=True)
class SgxExtension:
    """The PCK certificate's SGX extension: the platform TCB (TCBm) that Intel certified."""

    ppid: bytes
    tcb_components: tuple[int, ...]
    pcesvn: int
    cpusvn: bytes
    pce_id: bytes
    fmspc: bytes
    sgx_type: int
    platform_instance_id: bytes | None = None
    configuration: PlatformConfiguration | None = None


def _fail(message: str) -> CertificateChainError:
    return CertificateChainError(Step.PCK_CHAIN, message)


def common_name(name: x509.Name) -> str:
    """The (single) CN of a name, or '' when it has none."""
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if len(values) == 1 else ""


def pck_ca_of(leaf: x509.Certificate) -> PckCa:
    """Which CA issued the PCK leaf, from its issuer CN (QVL's rule)."""
    issuer = common_name(leaf.issuer)
    if "Processor CA" in issuer:
        return PckCa.PROCESSOR
    if "Platform CA" in issuer:
        return PckCa.PLATFORM
    raise _fail(f"PCK issuer CN {issuer!r} names neither a Processor CA nor a Platform CA")


def _entries(tlv: der.Tlv, what: str) -> dict[str, der.Tlv]:
    """A SEQUENCE OF SEQUENCE { OID, value } as a dict; duplicates are an error."""
    out: dict[str, der.Tlv] = {}
    for item in der.children(der.expect(tlv, der.TAG_SEQUENCE)):
        parts = der.children(der.expect(item, der.TAG_SEQUENCE))
        if len(parts) != 2:
            raise der.DerError(f"{what} entry is not an (OID, value) pair")
        oid = der.decode_oid(der.expect(parts[0], der.TAG_OID).content)
        if oid in out:
            raise der.DerError(f"{what} repeats {oid}")
        out[oid] = parts[1]
    return out


def _octets(entries: dict[str, der.Tlv], oid: str, size: int, what: str) -> bytes:
    if oid not in entries:
        raise der.DerError(f"{what} ({oid}) is missing")
    value = der.expect(entries[oid], der.TAG_OCTET_STRING).content
    if len(value) != size:
        raise der.DerError(f"{what} is {len(value)} bytes, expected {size}")
    return value


def _uint(entries: dict[str, der.Tlv], oid: str, tag: int, limit: int, what: str) -> int:
    if oid not in entries:
        raise der.DerError(f"{what} ({oid}) is missing")
    value = der.decode_uint(der.expect(entries[oid], tag).content)
    if value > limit:
        raise der.DerError(f"{what} {value} is out of range")
    return value


def _configuration(tlv: der.Tlv) -> PlatformConfiguration:
    entries = _entries(tlv, "configuration")

    def flag(n: int) -> bool | None:
        item = entries.get(f"{_CONFIG}.{n}")
        return None if item is None else der.decode_bool(der.expect(item, der.TAG_BOOLEAN).content)

    return PlatformConfiguration(flag(1), flag(2), flag(3))


@lru_cache(maxsize=256)
def decode_sgx_extension(value: bytes, ca: PckCa) -> SgxExtension:
    """Decode the extension's DER value; Platform-CA certificates must carry .6 and .7."""
    entries = _entries(der.parse(value), "SGX extension")
    tcb = _entries(entries[_TCB], "TCB") if _TCB in entries else None
    if tcb is None:
        raise der.DerError(f"TCB ({_TCB}) is missing")
    components = tuple(
        _uint(tcb, f"{_TCB}.{i}", der.TAG_INTEGER, 255, f"TCB component {i}") for i in range(1, 17)
    )
    instance_id = configuration = None
    if ca is PckCa.PLATFORM:
        instance_id = _octets(entries, f"{_BASE}.6", 16, "platform instance ID")
        if _CONFIG not in entries:
            raise der.DerError(f"configuration ({_CONFIG}) is missing")
        configuration = _configuration(entries[_CONFIG])
    return SgxExtension(
        ppid=_octets(entries, f"{_BASE}.1", 16, "PPID"),
        tcb_components=components,
        pcesvn=_uint(tcb, f"{_TCB}.17", der.TAG_INTEGER, 0xFFFF, "PCESVN"),
        cpusvn=_octets(tcb, f"{_TCB}.18", 16, "CPUSVN"),
        pce_id=_octets(entries, f"{_BASE}.3", 2, "PCE-ID"),
        fmspc=_octets(entries, f"{_BASE}.4", 6, "FMSPC"),
        sgx_type=_uint(entries, f"{_BASE}.5", der.TAG_ENUMERATED, 2, "SGX type"),
        platform_instance_id=instance_id,
        configuration=configuration,
    )


def sgx_extension(leaf: x509.Certificate, ca: PckCa) -> SgxExtension:
    """Read and decode the SGX extension of a PCK leaf certificate."""
    try:
        ext = leaf.extensions.get_extension_for_oid(SGX_EXTENSION_OID)
    except x509.ExtensionNotFound as exc:
        raise _fail("PCK certificate has no SGX extension (1.2.840.113741.1.13.1)") from exc
    except (x509.DuplicateExtension, ValueError) as exc:
        raise _fail(f"PCK certificate extensions do not parse: {exc}") from exc
    if not isinstance(ext.value, x509.UnrecognizedExtension):
        raise _fail("SGX extension has an unexpected type")
    try:
        return decode_sgx_extension(ext.value.value, ca)
    except (der.DerError, KeyError) as exc:
        raise _fail(f"SGX extension is malformed: {exc}") from exc
