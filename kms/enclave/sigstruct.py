"""SGX SIGSTRUCT (1808 bytes, Intel SDM layout): build, sign, serialise, parse and verify enclave identity."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import os
import struct
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

# Layout, as `struct sgx_sigstruct` in Linux arch/x86/include/asm/sgx.h; all integers little-endian.
SIZE = 1808
HEADER1 = bytes.fromhex("06000000E10000000000010000000000")
HEADER2 = bytes.fromhex("01010000600000006000000001000000")
KEY_BITS, KEY_BYTES, EXPONENT = 3072, 384, 3
_HEADER = struct.Struct("<16sII16sI84s")  # header1, vendor, date, header2, swdefined, reserved
_BODY = struct.Struct("<II20sQQQQ32s32sHH")  # misc, mask, rsvd, attr, xfrm, amask, xmask, hash, rsvd, prod, svn
_WHOLE = struct.Struct(f"<128s{KEY_BYTES}sI{KEY_BYTES}s128s12s{KEY_BYTES}s{KEY_BYTES}s")
OFF_MODULUS, OFF_EXPONENT, OFF_SIGNATURE, OFF_BODY, OFF_Q1, OFF_Q2 = 128, 512, 516, 900, 1040, 1424
assert _HEADER.size == 128 and _BODY.size == 128 and _WHOLE.size == SIZE

VENDOR_INTEL = 0x8086
FLAG_INIT, FLAG_DEBUG, FLAG_MODE64BIT = 0x1, 0x2, 0x4
# Every ATTRIBUTES.FLAGS bit is checked at EINIT: INIT, DEBUG, MODE64BIT, PROVISIONKEY, EINITTOKENKEY,
# KSS, AEXNOTIFY and the reserved bits must equal what was signed. This is the SDK's DisableDebug=1
# mask; unlike the SDK's default (~DEBUG) the loader cannot flip DEBUG, because our (simulated) CPU
# takes the debug bit from the signed SIGSTRUCT, never from the host, so debug is part of identity.
ATTRIBUTE_MASK_FLAGS = 0xFFFF_FFFF_FFFF_FFFF
# XFRM: x87|SSE (bits 0,1) must match, as the SDK's SGX_XFRM_LEGACY; larger state is the loader's choice.
DEFAULT_XFRM_MASK = 0x3
_U16, _U32, _U64 = 0xFFFF, 0xFFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFF


class SigStructError(Exception):
    """A SIGSTRUCT is malformed or fails a check; `check` names which (size, header1, signature, ...)."""

    def __init__(self, check: str, detail: str) -> None:
        super().__init__(f"SIGSTRUCT {check}: {detail}")
        self.check = check


class ConfigError(ValueError):
    """The enclave config (TOML) is missing, unreadable or out of range."""


class SignerKeyError(ValueError):
    """The signer key is unusable: not RSA-3072 with public exponent 3, or the file is bad."""


@dataclass(frozen=True)
class EnclaveConfig:
    """Enclave identity and resources from enclave.toml (what the SDK keeps in Enclave.config.xml)."""

    isv_prod_id: int
    isv_svn: int
    debug: bool
    tcs_num: int
    misc_select: int = 0
    misc_mask: int = _U32
    xfrm: int = 0x3
    xfrm_mask: int = DEFAULT_XFRM_MASK


_RANGES = {"isv_prod_id": (0, _U16), "isv_svn": (0, _U16), "tcs_num": (1, 64), "misc_select": (0, _U32),
           "misc_mask": (0, _U32), "xfrm": (0, _U64), "xfrm_mask": (0, _U64)}


def load_config(path: str | os.PathLike[str]) -> EnclaveConfig:
    """Read and validate enclave.toml; unknown keys are refused so a typo cannot silently sign defaults."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"cannot read enclave config {path}: {e.strerror or e}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"enclave config {path} is not valid TOML: {e}") from None
    known = {f.name for f in dataclasses.fields(EnclaveConfig)}
    if unknown := sorted(set(data) - known):
        raise ConfigError(f"enclave config {path}: unknown key(s) {', '.join(unknown)}")
    for required in ("isv_prod_id", "isv_svn", "debug", "tcs_num"):
        if required not in data:
            raise ConfigError(f"enclave config {path}: missing {required}")
    if not isinstance(data["debug"], bool):
        raise ConfigError(f"enclave config {path}: debug must be true or false")
    for key, (lo, hi) in _RANGES.items():
        value = data.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ConfigError(f"enclave config {path}: {key} must be an integer in {lo}..{hi:#x}")
    cfg = EnclaveConfig(**data)
    if cfg.xfrm & 0x3 != 0x3:
        raise ConfigError(f"enclave config {path}: xfrm must enable x87 and SSE (bits 0 and 1)")
    return cfg


def generate_signer_key(path: str | os.PathLike[str]) -> rsa.RSAPrivateKey:
    """Create an RSA-3072, e=3 key as PEM PKCS#8 at `path` (0600, atomic, never overwrites)."""
    target = Path(path)
    if target.exists() or target.is_symlink():
        raise FileExistsError(f"signer key {target} already exists; refusing to overwrite")
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=EXPONENT, key_size=KEY_BITS)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)  # mkstemp creates 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, target)  # atomic publish that fails if the target appeared meanwhile
    except FileExistsError:
        raise FileExistsError(f"signer key {target} already exists; refusing to overwrite") from None
    finally:
        os.unlink(tmp)
    return key


def load_signer_key(path: str | os.PathLike[str]) -> rsa.RSAPrivateKey:
    """Load a PEM signer key and check it is RSA-3072 with public exponent 3."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise SignerKeyError(f"cannot read signer key {path}: {e.strerror or e}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise SignerKeyError(f"signer key {path} is not an unencrypted PEM private key: {e}") from None
    _check_key(key)
    return key  # type: ignore[return-value]


def _check_key(key: object) -> None:
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SignerKeyError("signer key must be an RSA private key")
    if key.key_size != KEY_BITS or key.public_key().public_numbers().e != EXPONENT:
        raise SignerKeyError(f"signer key must be RSA-{KEY_BITS} with public exponent {EXPONENT}, "
                             f"got RSA-{key.key_size} e={key.public_key().public_numbers().e}")


def measure_image(image: bytes) -> bytes:
    """Simulated MRENCLAVE: SHA-256 of the image file (real SGX hashes ECREATE/EADD/EEXTEND of each page)."""
    return hashlib.sha256(image).digest()


def mrsigner_of(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> bytes:
    """MRSIGNER: SHA-256 of the modulus as SIGSTRUCT stores it (384 bytes, little-endian)."""
    pub = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return hashlib.sha256(pub.public_numbers().n.to_bytes(KEY_BYTES, "little")).digest()


def bcd_date(when: datetime.date) -> int:
    """The DATE field: yyyymmdd as BCD digits, so 2024-01-15 is 0x20240115."""
    return int(f"{when.year:04d}{when.month:02d}{when.day:02d}", 16)


def build_date() -> int:
    """BCD date from SOURCE_DATE_EPOCH (reproducible builds) if set, else today in UTC."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        try:
            return bcd_date(datetime.datetime.fromtimestamp(int(epoch), datetime.UTC).date())
        except (ValueError, OverflowError, OSError):
            raise ConfigError(f"SOURCE_DATE_EPOCH must be an integer Unix time, got {epoch!r}") from None
    return bcd_date(datetime.datetime.now(datetime.UTC).date())


@dataclass(frozen=True)
class SigStruct:
    """Every SIGSTRUCT field; byte strings are as stored (modulus, signature, q1, q2 little-endian)."""

    header1: bytes
    vendor: int
    date: int
    header2: bytes
    swdefined: int
    reserved1: bytes
    modulus: bytes
    exponent: int
    signature: bytes
    misc_select: int
    misc_mask: int
    reserved2: bytes
    attributes_flags: int
    attributes_xfrm: int
    attribute_mask_flags: int
    attribute_mask_xfrm: int
    enclave_hash: bytes
    reserved3: bytes
    isv_prod_id: int
    isv_svn: int
    reserved4: bytes
    q1: bytes
    q2: bytes

    @property
    def mrenclave(self) -> bytes:
        return self.enclave_hash

    @property
    def mrsigner(self) -> bytes:
        return hashlib.sha256(self.modulus).digest()

    @property
    def debug(self) -> bool:
        return bool(self.attributes_flags & FLAG_DEBUG)

    @property
    def date_iso(self) -> str:
        """The BCD date as yyyy-mm-dd (its hex digits are the decimal digits)."""
        d = f"{self.date:08x}"
        return f"{d[:4]}-{d[4:6]}-{d[6:]}"

    def header_bytes(self) -> bytes:
        return _HEADER.pack(self.header1, self.vendor, self.date, self.header2, self.swdefined, self.reserved1)

    def body_bytes(self) -> bytes:
        return _BODY.pack(self.misc_select, self.misc_mask, self.reserved2, self.attributes_flags,
                          self.attributes_xfrm, self.attribute_mask_flags, self.attribute_mask_xfrm,
                          self.enclave_hash, self.reserved3, self.isv_prod_id, self.isv_svn)

    def signed_data(self) -> bytes:
        """What the RSA signature covers: header (128 bytes) || body (128 bytes)."""
        return self.header_bytes() + self.body_bytes()

    def to_bytes(self) -> bytes:
        return _WHOLE.pack(self.header_bytes(), self.modulus, self.exponent, self.signature,
                           self.body_bytes(), self.reserved4, self.q1, self.q2)


def parse(blob: bytes) -> SigStruct:
    """Decode a SIGSTRUCT; raises SigStructError on a wrong size or wrong header constants."""
    if len(blob) != SIZE:
        raise SigStructError("size", f"expected {SIZE} bytes, got {len(blob)}")
    header, modulus, exponent, signature, body, reserved4, q1, q2 = _WHOLE.unpack(blob)
    h1, vendor, date, h2, swdefined, reserved1 = _HEADER.unpack(header)
    if h1 != HEADER1:
        raise SigStructError("header1", f"expected {HEADER1.hex()}, got {h1.hex()}")
    if h2 != HEADER2:
        raise SigStructError("header2", f"expected {HEADER2.hex()}, got {h2.hex()}")
    b = _BODY.unpack(body)
    return SigStruct(h1, vendor, date, h2, swdefined, reserved1, modulus, exponent, signature, *b,
                     reserved4, q1, q2)


def _q1_q2(s: int, n: int) -> tuple[int, int]:
    """EINIT's helper values so the CPU checks s^3 mod n without division (SDM 'SIGSTRUCT')."""
    q1 = s * s // n
    q2 = (s * s * s - q1 * s * n) // n
    return q1, q2


def sign_image(image: bytes, config: EnclaveConfig, key: rsa.RSAPrivateKey) -> bytes:
    """Measure `image`, fill a SIGSTRUCT from `config`, sign it with `key` and return the 1808 bytes."""
    _check_key(key)
    n = key.public_key().public_numbers().n
    flags = FLAG_MODE64BIT | (FLAG_DEBUG if config.debug else 0)
    unsigned = SigStruct(
        HEADER1, 0, build_date(), HEADER2, 0, bytes(84), n.to_bytes(KEY_BYTES, "little"), EXPONENT,
        bytes(KEY_BYTES), config.misc_select, config.misc_mask, bytes(20), flags, config.xfrm,
        ATTRIBUTE_MASK_FLAGS, config.xfrm_mask, measure_image(image), bytes(32), config.isv_prod_id,
        config.isv_svn, bytes(12), bytes(KEY_BYTES), bytes(KEY_BYTES))
    sig_be = key.sign(unsigned.signed_data(), padding.PKCS1v15(), hashes.SHA256())
    q1, q2 = _q1_q2(int.from_bytes(sig_be, "big"), n)
    signed = dataclasses.replace(unsigned, signature=sig_be[::-1], q1=q1.to_bytes(KEY_BYTES, "little"),
                                 q2=q2.to_bytes(KEY_BYTES, "little"))
    return signed.to_bytes()


def verify(sigstruct: bytes | SigStruct, image: bytes | None = None) -> SigStruct:
    """Check headers, vendor, exponent, RSA signature, q1/q2 and (if given) the image hash; return the parse."""
    s = parse(bytes(sigstruct.to_bytes() if isinstance(sigstruct, SigStruct) else sigstruct))
    if s.vendor not in (0, VENDOR_INTEL):
        raise SigStructError("vendor", f"must be 0 or 0x8086, got {s.vendor:#x}")
    if s.exponent != EXPONENT:
        raise SigStructError("exponent", f"must be {EXPONENT}, got {s.exponent}")
    if any(s.reserved4):
        raise SigStructError("reserved", "the unsigned reserved bytes at 1028 must be zero")
    n = int.from_bytes(s.modulus, "little")
    if n.bit_length() != KEY_BITS or n % 2 == 0:
        raise SigStructError("modulus", f"must be an odd {KEY_BITS}-bit integer")
    sig = int.from_bytes(s.signature, "little")
    try:
        if sig >= n:
            raise ValueError("signature not below modulus")
        rsa.RSAPublicNumbers(EXPONENT, n).public_key().verify(
            sig.to_bytes(KEY_BYTES, "big"), s.signed_data(), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        raise SigStructError("signature", "RSA-3072 PKCS#1 v1.5 SHA-256 over header||body does not verify") from None
    if (int.from_bytes(s.q1, "little"), int.from_bytes(s.q2, "little")) != _q1_q2(sig, n):
        raise SigStructError("q1q2", "q1/q2 do not match the signature and modulus")
    if image is not None and measure_image(image) != s.enclave_hash:
        raise SigStructError("image", f"image hash {measure_image(image).hex()} != MRENCLAVE {s.enclave_hash.hex()}")
    return s
