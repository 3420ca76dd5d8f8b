"""DER encoding of the PCK certificate's SGX extension (OID 1.2.840.113741.1.13.1, reference §2.4)."""

from __future__ import annotations

from dataclasses import dataclass

SGX_EXTENSION_OID = "1.2.840.113741.1.13.1"
_TAG_BOOLEAN, _TAG_INTEGER, _TAG_OCTETS, _TAG_OID, _TAG_ENUMERATED, _TAG_SEQUENCE = 0x01, 0x02, 0x04, 0x06, 0x0A, 0x30
SGX_TYPE_STANDARD, SGX_TYPE_SCALABLE = 0, 1


def _tlv(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


def _oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray()
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return _tlv(_TAG_OID, bytes(out))


def _uint(value: int, tag: int = _TAG_INTEGER) -> bytes:
    """Minimal non-negative INTEGER/ENUMERATED: 128..255 get a leading 00 (255 = 02 02 00 FF)."""
    if value < 0:
        raise ValueError("SVNs and enumerations are non-negative")
    return _tlv(tag, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _seq(*items: bytes) -> bytes:
    return _tlv(_TAG_SEQUENCE, b"".join(items))


def _entry(suffix: str, value: bytes) -> bytes:
    return _seq(_oid(f"{SGX_EXTENSION_OID}.{suffix}"), value)


@dataclass(frozen=True)
class PlatformConfig:
    """Platform-CA PCK configuration flags (…13.1.7.1-3)."""

    dynamic_platform: bool = True
    cached_keys: bool = True
    smt_enabled: bool = True


def encode_sgx_extension(
    *,
    ppid: bytes,
    cpusvn: bytes,
    pcesvn: int,
    pce_id: bytes,
    fmspc: bytes,
    sgx_type: int,
    platform_instance_id: bytes | None = None,
    configuration: PlatformConfig | None = None,
) -> bytes:
    """The extension value: PPID, TCB (16 component SVNs = CPUSVN bytes, PCESVN, CPUSVN), PCE-ID,
    FMSPC, SGX type; with a platform instance ID and configuration for Platform-CA leaves."""
    if len(ppid) != 16 or len(cpusvn) != 16 or len(pce_id) != 2 or len(fmspc) != 6:
        raise ValueError("PPID and CPUSVN are 16 bytes, PCE-ID 2, FMSPC 6")
    if not 0 <= pcesvn <= 0xFFFF:
        raise ValueError("PCESVN is a 16-bit value")
    tcb = [_entry(f"2.{i + 1}", _uint(svn)) for i, svn in enumerate(cpusvn)]
    tcb += [_entry("2.17", _uint(pcesvn)), _entry("2.18", _tlv(_TAG_OCTETS, cpusvn))]
    entries = [
        _entry("1", _tlv(_TAG_OCTETS, ppid)),
        _entry("2", _seq(*tcb)),
        _entry("3", _tlv(_TAG_OCTETS, pce_id)),
        _entry("4", _tlv(_TAG_OCTETS, fmspc)),
        _entry("5", _uint(sgx_type, _TAG_ENUMERATED)),
    ]
    if (platform_instance_id is None) != (configuration is None):
        raise ValueError("a Platform-CA extension has both the instance ID and the configuration")
    if platform_instance_id is not None and configuration is not None:
        if len(platform_instance_id) != 16:
            raise ValueError("the platform instance ID is 16 bytes")
        flags = (configuration.dynamic_platform, configuration.cached_keys, configuration.smt_enabled)
        entries += [
            _entry("6", _tlv(_TAG_OCTETS, platform_instance_id)),
            _entry("7", _seq(*(_entry(f"7.{i}", _tlv(_TAG_BOOLEAN, b"\xff" if f else b"\x00"))
                               for i, f in enumerate(flags, 1)))),
        ]
    return _seq(*entries)
