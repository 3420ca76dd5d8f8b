"""A strict, minimal DER reader (definite lengths, low tag numbers) for SGX and RA-TLS fields."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

TAG_BOOLEAN = 0x01
TAG_INTEGER = 0x02
TAG_BIT_STRING = 0x03
TAG_OCTET_STRING = 0x04
TAG_NULL = 0x05
TAG_OID = 0x06
TAG_ENUMERATED = 0x0A
TAG_UTC_TIME = 0x17
TAG_GENERALIZED_TIME = 0x18
TAG_SEQUENCE = 0x30
TAG_SET = 0x31


class DerError(ValueError):
    """The bytes are not valid DER for the expected structure."""


@dataclass(frozen=True)
class Tlv:
    """One DER element: its tag byte, its content, and its complete encoding."""

    tag: int
    content: bytes
    raw: bytes

    @property
    def constructed(self) -> bool:
        return bool(self.tag & 0x20)


def read_tlv(data: bytes, offset: int = 0) -> tuple[Tlv, int]:
    """Read one element at `offset`; return it and the offset just after it."""
    if offset + 2 > len(data):
        raise DerError("truncated element header")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise DerError("high tag numbers are not supported")
    first = data[offset + 1]
    pos = offset + 2
    if first < 0x80:
        length = first
    elif first == 0x80:
        raise DerError("indefinite length is not DER")
    else:
        count = first & 0x7F
        if count > 4 or pos + count > len(data):
            raise DerError("bad length encoding")
        length = int.from_bytes(data[pos : pos + count], "big")
        if data[pos] == 0 or length < 0x80:
            raise DerError("length is not minimally encoded")
        pos += count
    end = pos + length
    if end > len(data):
        raise DerError("element runs past the end of its container")
    return Tlv(tag, bytes(data[pos:end]), bytes(data[offset:end])), end


def parse(data: bytes, tag: int | None = None) -> Tlv:
    """Parse exactly one element covering all of `data`, optionally of a given tag."""
    tlv, end = read_tlv(data, 0)
    if end != len(data):
        raise DerError("trailing bytes after element")
    return expect(tlv, tag) if tag is not None else tlv


def expect(tlv: Tlv, tag: int) -> Tlv:
    if tlv.tag != tag:
        raise DerError(f"expected tag 0x{tag:02x}, found 0x{tlv.tag:02x}")
    return tlv


def children(tlv: Tlv) -> list[Tlv]:
    """The elements inside a constructed element, in order."""
    if not tlv.constructed:
        raise DerError("element is not constructed")
    items: list[Tlv] = []
    pos = 0
    while pos < len(tlv.content):
        item, pos = read_tlv(tlv.content, pos)
        items.append(item)
    return items


def decode_oid(content: bytes) -> str:
    """Dotted form of an OBJECT IDENTIFIER's content bytes."""
    if not content or content[-1] & 0x80:
        raise DerError("bad OID encoding")
    arcs: list[int] = []
    value = 0
    for i, byte in enumerate(content):
        if value == 0 and byte == 0x80 and (i == 0 or not content[i - 1] & 0x80):
            raise DerError("OID arc is not minimally encoded")
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])


def decode_uint(content: bytes) -> int:
    """A non-negative INTEGER or ENUMERATED value, minimally encoded."""
    if not content:
        raise DerError("empty integer")
    if content[0] & 0x80:
        raise DerError("negative integer where a non-negative one is required")
    if len(content) > 1 and content[0] == 0 and not content[1] & 0x80:
        raise DerError("integer is not minimally encoded")
    return int.from_bytes(content, "big")


def decode_bool(content: bytes) -> bool:
    if content == b"\x00":
        return False
    if content == b"\xff":
        return True
    raise DerError("bad BOOLEAN encoding")


def decode_time(tlv: Tlv) -> datetime:
    """UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ), as RFC 5280 restricts them."""
    try:
        text = tlv.content.decode("ascii")
    except UnicodeDecodeError as exc:
        raise DerError("time is not ASCII") from exc
    if tlv.tag == TAG_UTC_TIME and len(text) == 13 and text.endswith("Z"):
        year = int(text[:2])
        text = f"{2000 + year if year < 50 else 1900 + year}{text[2:]}"
    elif not (tlv.tag == TAG_GENERALIZED_TIME and len(text) == 15 and text.endswith("Z")):
        raise DerError("unsupported time encoding")
    if not text[:-1].isdigit():
        raise DerError("bad time digits")
    try:
        return datetime.strptime(text[:-1], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError as exc:
        raise DerError("bad time value") from exc
