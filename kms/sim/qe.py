"""The simulated quoting enclave: checks a REPORT's MAC like Intel's QE3, emits an ECDSA quote v3 (type 5)."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import struct
from pathlib import Path

from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import algorithms

from kms.attestation.collateral import Collateral
from kms.sim.errors import ReportError, ReportMacError, RootSecretError
from kms.sim.pki import cert_pem, raw_public_key, raw_signature
from kms.sim.platform import SimPlatform

# The simulated QE's identity. SIMULATED constants, not Intel's QE3: MRENCLAVE =
# SHA-256("Enclave KMS simulated quoting enclave MRENCLAVE (not Intel QE3)"), MRSIGNER =
# SHA-256("Enclave KMS simulated quoting enclave MRSIGNER (not Intel)"). ISVPRODID, ATTRIBUTES
# (INIT|PROVISIONKEY, XFRM 0xE7) and MISCSELECT are those of Intel's QE3.
QE_MRENCLAVE = bytes.fromhex("96707326eeb912b7a438d211a503920891ce234b89181ec4f76ce5471edc1772")
QE_MRSIGNER = bytes.fromhex("56747482b1f4a223b824cd591592ccb4eed9c6edd47220e580cccd4a6c629d34")
QE_ISVPRODID = 1
QE_FLAGS = 0x11
QE_XFRM = 0xE7
QE_MISCSELECT = 0
QE_VENDOR_ID = bytes.fromhex("939A7233F79C4CA9940A0DB3957F0607")  # the Intel QE vendor ID (QVL requires it)
QE_AUTH_DATA = bytes(range(32))  # as Intel's QE3: 00 01 .. 1f

QUOTE_VERSION, ATT_KEY_TYPE_ECDSA_P256, CERT_DATA_PCK_CHAIN = 3, 2, 5
REPORT_SIZE, BODY_SIZE, TARGET_INFO_SIZE = 432, 384, 512
_ROOT_MAGIC, _ROOT_SIZE = b"KMSSIMR1", 64
_KEYNAME_REPORT = 3
_DD_SIZE = 176


def read_root_secret(data_dir: Path) -> tuple[bytes, bytes]:
    """(fuse key, owner epoch) from <data>/sgx-sim/root.secret, checked as simcpu.c checks it."""
    path = Path(data_dir) / "sgx-sim" / "root.secret"
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077:
            raise RootSecretError(f"{path} must be a regular file of mode 0600")
        blob = path.read_bytes()
    except FileNotFoundError as exc:
        raise RootSecretError(f"{path} does not exist: start an enclave on this data directory first "
                              "(the simulated CPU creates its fuses)") from exc
    except OSError as exc:
        raise RootSecretError(f"cannot read {path}: {exc}") from exc
    if len(blob) != _ROOT_SIZE or blob[:8] != _ROOT_MAGIC:
        raise RootSecretError(f"{path} is malformed")
    return blob[8:24], blob[24:40]


def _cmac(key: bytes, data: bytes) -> bytes:
    mac = cmac.CMAC(algorithms.AES(key))
    mac.update(data)
    return mac.finalize()


def report_key(fuse_key: bytes, owner_epoch: bytes, cpusvn: bytes, keyid: bytes, *, mrenclave: bytes,
               flags: int, xfrm: int, miscselect: int) -> bytes:
    """The REPORT key of a target enclave, in simcpu_keys.c derive_report's 176-byte layout."""
    dd = bytearray(_DD_SIZE)
    struct.pack_into("<H", dd, 0, _KEYNAME_REPORT)
    dd[6:22] = cpusvn
    struct.pack_into("<QQ", dd, 22, flags, xfrm)
    struct.pack_into("<I", dd, 54, miscselect)
    dd[62:94] = mrenclave
    dd[128:144] = owner_epoch
    dd[144:176] = keyid
    return _cmac(fuse_key, bytes(dd))


def target_info() -> bytes:
    """The simulated QE's 512-byte TARGETINFO (sgx_target_info_t): MRENCLAVE, ATTRIBUTES, MISCSELECT."""
    ti = bytearray(TARGET_INFO_SIZE)
    ti[0:32] = QE_MRENCLAVE
    struct.pack_into("<QQ", ti, 32, QE_FLAGS, QE_XFRM)
    struct.pack_into("<I", ti, 52, QE_MISCSELECT)
    return bytes(ti)


class SimQuotingEnclave:
    """Quotes REPORTs of enclaves on one simulated platform (the data directory of root.secret)."""

    simulated = True

    def __init__(self, platform: SimPlatform) -> None:
        self.platform = platform

    @classmethod
    def open(cls, data_dir: Path | str) -> SimQuotingEnclave:
        return cls(SimPlatform(data_dir))

    @staticmethod
    def target_info() -> bytes:
        return target_info()

    def verify_report(self, report: bytes) -> None:
        """Check that `report` is a REPORT targeted at this QE on this platform (EGETKEY + CMAC)."""
        if not isinstance(report, (bytes, bytearray)) or len(report) != REPORT_SIZE:
            raise ReportError(f"a REPORT is {REPORT_SIZE} bytes")
        fuse_key, owner_epoch = read_root_secret(self.platform.data_dir)
        cpusvn = self.platform.cpusvn()
        key = report_key(fuse_key, owner_epoch, cpusvn, bytes(report[384:416]), mrenclave=QE_MRENCLAVE,
                         flags=QE_FLAGS, xfrm=QE_XFRM, miscselect=QE_MISCSELECT)
        if not hmac.compare_digest(_cmac(key, bytes(report[:BODY_SIZE])), bytes(report[416:432])):
            hint = ""
            if bytes(report[:16]) != cpusvn:
                hint = (f" (the report's CPUSVN {bytes(report[:16]).hex()} is not the platform's {cpusvn.hex()}: "
                        "restart the enclave after changing the simulated TCB)")
            raise ReportMacError("REPORT MAC does not verify: not made on this platform for this QE" + hint)

    def qe_report_body(self, attestation_key: bytes) -> bytes:
        """The QE's own report body: REPORTDATA = SHA-256(attestation key || QE auth data) || 0^32."""
        body = bytearray(BODY_SIZE)
        body[0:16] = self.platform.cpusvn()
        struct.pack_into("<I", body, 16, QE_MISCSELECT)
        struct.pack_into("<QQ", body, 48, QE_FLAGS, QE_XFRM)
        body[64:96] = QE_MRENCLAVE
        body[128:160] = QE_MRSIGNER
        struct.pack_into("<HH", body, 256, QE_ISVPRODID, self.platform.qe_isvsvn())
        body[320:352] = hashlib.sha256(attestation_key + QE_AUTH_DATA).digest()
        return bytes(body)

    def collateral(self, quote: bytes) -> Collateral:
        """Fresh collateral of this platform (as its PCCS would serve it) for a quote it made."""
        from kms.sim.collateral import build_collateral  # kms.sim.collateral imports this module

        return build_collateral(self.platform).to_collateral()

    def quote(self, report: bytes) -> bytes:
        """Verify the REPORT, then emit an ECDSA quote v3 with certification data type 5 (reference §1.3)."""
        self.verify_report(report)
        platform = self.platform
        leaf, ca, root = platform.pck_chain()
        header = struct.pack("<HHIHH", QUOTE_VERSION, ATT_KEY_TYPE_ECDSA_P256, 0, platform.qe_isvsvn(),
                             platform.pcesvn()) + QE_VENDOR_ID + platform.qe_id + bytes(4)
        signed = header + bytes(report[:BODY_SIZE])
        att_key = platform.key("attestation")
        att_pub = raw_public_key(att_key)
        qe_report = self.qe_report_body(att_pub)
        cert_data = cert_pem(leaf, ca, root)
        signature_data = (
            raw_signature(att_key, signed) + att_pub + qe_report + raw_signature(platform.key("pck"), qe_report)
            + struct.pack("<H", len(QE_AUTH_DATA)) + QE_AUTH_DATA
            + struct.pack("<HI", CERT_DATA_PCK_CHAIN, len(cert_data)) + cert_data
        )
        return signed + struct.pack("<I", len(signature_data)) + signature_data
