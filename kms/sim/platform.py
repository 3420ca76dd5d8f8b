"""The simulated platform's persistent state under <data>/sgx-sim/: PKI, identity, TCB setting, revocations."""

from __future__ import annotations

import secrets
import string
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from kms.attestation.anchor import TrustAnchor
from kms.sim import pki
from kms.sim.errors import SimProvisioningError, SimSettingError
from kms.sim.files import PRIVATE, PUBLIC, atomic_write, ensure_dir, locked, read_bytes, read_json, write_json
from kms.sim.levels import DEFAULT_CPUSVN, DEFAULT_PCESVN, DEFAULT_QE_ISVSVN, SimTcbLevel, level_of, tcb_level
from kms.sim.revocation import Revocations
from kms.sim.sgxext import SGX_EXTENSION_OID, SGX_TYPE_SCALABLE, SGX_TYPE_STANDARD, PlatformConfig, encode_sgx_extension

PathLike = str | Path
FORMAT = 1
# Simulated FMSPC: "SIM" in ASCII, so it never names a real Intel platform family. PCE-ID 0000 as on hardware.
FMSPC = bytes.fromhex("53494D000000")
PCE_ID = bytes.fromhex("0000")
_KEYS = ("root-ca", "processor-ca", "platform-ca", "tcb-signing", "pck", "attestation")
_DEFAULT_SETTINGS = {"pck_ca": "processor", "pcesvn": DEFAULT_PCESVN, "qe_isvsvn": DEFAULT_QE_ISVSVN}


def sim_dir(data_dir: PathLike) -> Path:
    return Path(data_dir) / "sgx-sim"


def read_cpusvn(data_dir: PathLike) -> bytes:
    """The simulated CPU's CPUSVN as simcpu.c reads it: <data>/sgx-sim/cpusvn (a regular file of 1-64
    bytes whose first 32 characters are hex digits), else the default 0f0f0204ff8006000000000000000000."""
    path = sim_dir(data_dir) / "cpusvn"
    if not path.exists():
        return DEFAULT_CPUSVN
    if not path.is_file():
        raise SimSettingError(f"{path} is not a regular file")
    data = read_bytes(path)
    text = data[:32].decode("ascii", "replace")
    if not 0 < len(data) <= 64 or len(text) != 32 or not all(c in string.hexdigits for c in text):
        raise SimSettingError(f"{path} must hold 32 hex digits (the simulated CPUSVN)")
    return bytes.fromhex(text)


def ca_type(value: object) -> str:
    """'processor' or 'platform' from a string or a kms.attestation PckCa."""
    ca = str(getattr(value, "value", value)).lower()
    if ca not in pki.CA_TYPES:
        raise SimSettingError(f"unknown PCK CA type {value!r} (processor or platform)")
    return ca


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class SimPlatform:
    """One simulated SGX platform: provisioned on first use, then loaded from <data>/sgx-sim/.

    Fixed at provisioning: the keys, the root/CA/TCB-signing certificates and the identity (PPID,
    FMSPC, PCE-ID, platform instance ID, QE-ID). Mutable, re-read on every use so that processes
    sharing the directory agree: the settings (PCK CA type, PCESVN, QE ISVSVN), the CPUSVN file,
    the revocations and the PCK leaf (re-issued when the CA type or the TCB changes).
    """

    def __init__(self, data_dir: PathLike, *, pck_ca: str | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.directory = ensure_dir(sim_dir(data_dir))
        with locked(self.directory):
            if not (self.directory / "platform.json").exists():
                self._provision(pck_ca or "processor")
            elif pck_ca is not None:
                self._write_settings(pck_ca=ca_type(pck_ca))
        self._load()
        self.revocations = Revocations(self.directory / "revocations.json")

    # --- provisioning and loading -----------------------------------------------------------

    def _provision(self, pck_ca: str) -> None:
        """Create every key and certificate, then platform.json last (it marks a complete PKI)."""
        now = _now()
        keys = {role: pki.new_key() for role in _KEYS}
        root = pki.make_root(keys["root-ca"], now)
        certs = {
            "root-ca": root,
            "processor-ca": pki.make_ca("processor", keys["processor-ca"], root, keys["root-ca"], now),
            "platform-ca": pki.make_ca("platform", keys["platform-ca"], root, keys["root-ca"], now),
            "tcb-signing": pki.make_tcb_signing(keys["tcb-signing"], root, keys["root-ca"], now),
        }
        for role, key in keys.items():
            atomic_write(self.directory / f"{role}.key", pki.key_pem(key), PRIVATE)
        for role, cert in certs.items():
            atomic_write(self.directory / f"{role}.pem", pki.cert_pem(cert), PUBLIC)
        (self.directory / "pck.pem").unlink(missing_ok=True)
        write_json(self.directory / "revocations.json", Revocations.empty())
        write_json(self.directory / "settings.json", {**_DEFAULT_SETTINGS, "pck_ca": ca_type(pck_ca)})
        write_json(self.directory / "platform.json", {
            "format": FORMAT, "created": now.isoformat(), "simulated": True,
            "ppid": secrets.token_hex(16), "fmspc": FMSPC.hex().upper(), "pce_id": PCE_ID.hex(),
            "platform_instance_id": secrets.token_hex(16), "qe_id": secrets.token_hex(16),
        })

    def _load(self) -> None:
        info = read_json(self.directory / "platform.json")
        try:
            if info["format"] != FORMAT:
                raise SimProvisioningError(f"platform.json format {info['format']} is not {FORMAT}")
            self.ppid = bytes.fromhex(info["ppid"])
            self.fmspc = bytes.fromhex(info["fmspc"])
            self.pce_id = bytes.fromhex(info["pce_id"])
            self.platform_instance_id = bytes.fromhex(info["platform_instance_id"])
            self.qe_id = bytes.fromhex(info["qe_id"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SimProvisioningError(f"{self.directory / 'platform.json'} is malformed: {exc}") from exc
        self._keys = {role: pki.load_key(read_bytes(self.directory / f"{role}.key", private=True), f"{role}.key")
                      for role in _KEYS}
        self.root = self._cert("root-ca")
        self.cas = {ca: self._cert(f"{ca}-ca") for ca in pki.CA_TYPES}
        self.tcb_signing = self._cert("tcb-signing")

    def _cert(self, role: str) -> x509.Certificate:
        cert = pki.load_cert(read_bytes(self.directory / f"{role}.pem"), f"{role}.pem")
        if cert.public_key() != self._keys[role].public_key():
            raise SimProvisioningError(f"{role}.pem does not hold the public key of {role}.key")
        return cert

    def key(self, role: str) -> ec.EllipticCurvePrivateKey:
        """A private key: root-ca, processor-ca, platform-ca, tcb-signing, pck or attestation."""
        if role not in self._keys:
            raise SimSettingError(f"unknown key {role!r} (known: {', '.join(_KEYS)})")
        return self._keys[role]

    # --- settings ---------------------------------------------------------------------------

    def settings(self) -> dict[str, object]:
        stored = read_json(self.directory / "settings.json")
        if not isinstance(stored, dict):
            raise SimProvisioningError("settings.json is not a JSON object")
        return {**_DEFAULT_SETTINGS, **stored}

    def _write_settings(self, **changes: object) -> None:
        write_json(self.directory / "settings.json", {**self.settings(), **changes})

    def pck_ca(self) -> str:
        return ca_type(str(self.settings()["pck_ca"]))

    def pcesvn(self) -> int:
        return int(self.settings()["pcesvn"])  # type: ignore[call-overload]

    def qe_isvsvn(self) -> int:
        return int(self.settings()["qe_isvsvn"])  # type: ignore[call-overload]

    def cpusvn(self) -> bytes:
        return read_cpusvn(self.data_dir)

    def tcb_level(self) -> SimTcbLevel | None:
        """The TCB level of the platform's current CPUSVN and PCESVN (None: below every level)."""
        return level_of(self.cpusvn(), self.pcesvn())

    def set_pck_ca(self, ca: str) -> None:
        """Choose the CA that issues the PCK leaf (processor or platform); the leaf is re-issued."""
        with locked(self.directory):
            self._write_settings(pck_ca=ca_type(ca))

    def set_tcb(self, level: str, *, qe_isvsvn: int | None = None) -> SimTcbLevel:
        """Move the platform to a TCB level: writes the CPUSVN file and the PCESVN (and optionally
        the QE's ISVSVN). Enclaves read the CPUSVN when they start: restart them afterwards."""
        chosen = tcb_level(level)
        self.set_tcb_svns(chosen.cpusvn, chosen.pcesvn, qe_isvsvn=qe_isvsvn)
        return chosen

    def set_tcb_svns(self, cpusvn: bytes, pcesvn: int, *, qe_isvsvn: int | None = None) -> None:
        """Set raw SVNs (for levels outside the table, e.g. below every level)."""
        if len(cpusvn) != 16 or not 0 <= pcesvn <= 0xFFFF:
            raise SimSettingError("CPUSVN is 16 bytes and PCESVN a 16-bit value")
        if qe_isvsvn is not None and not 0 <= qe_isvsvn <= 0xFFFF:
            raise SimSettingError("the QE ISVSVN is a 16-bit value")
        with locked(self.directory):
            atomic_write(self.directory / "cpusvn", cpusvn.hex().encode() + b"\n", PUBLIC)
            changes: dict[str, object] = {"pcesvn": pcesvn}
            if qe_isvsvn is not None:
                changes["qe_isvsvn"] = qe_isvsvn
            self._write_settings(**changes)

    # --- PCK leaf ---------------------------------------------------------------------------

    def sgx_extension(self, ca: str, cpusvn: bytes, pcesvn: int) -> bytes:
        """The DER SGX extension of this platform's PCK leaf for a CA type and TCB."""
        platform = ca == "platform"
        return encode_sgx_extension(
            ppid=self.ppid, cpusvn=cpusvn, pcesvn=pcesvn, pce_id=self.pce_id, fmspc=self.fmspc,
            sgx_type=SGX_TYPE_SCALABLE if platform else SGX_TYPE_STANDARD,
            platform_instance_id=self.platform_instance_id if platform else None,
            configuration=PlatformConfig() if platform else None,
        )

    def _leaf_is_current(self, leaf: x509.Certificate, ca: x509.Certificate, ext: bytes) -> bool:
        try:
            value = leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier(SGX_EXTENSION_OID)).value
        except (x509.ExtensionNotFound, ValueError):
            return False
        return (leaf.issuer == ca.subject and leaf.public_key() == self._keys["pck"].public_key()
                and getattr(value, "value", None) == ext and leaf.not_valid_after_utc > _now())

    def pck_chain(self) -> tuple[x509.Certificate, x509.Certificate, x509.Certificate]:
        """(PCK leaf, its CA, root) for the current settings; the leaf is re-issued when stale."""
        path = self.directory / "pck.pem"
        kind = self.pck_ca()
        ca = self.cas[kind]
        ext = self.sgx_extension(kind, self.cpusvn(), self.pcesvn())
        if path.exists():
            leaf = pki.load_cert(read_bytes(path), "pck.pem")
            if self._leaf_is_current(leaf, ca, ext):
                return leaf, ca, self.root
        with locked(self.directory):
            kind = self.pck_ca()
            ca = self.cas[kind]
            ext = self.sgx_extension(kind, self.cpusvn(), self.pcesvn())
            leaf = pki.make_pck(self._keys["pck"], ca, self._keys[f"{kind}-ca"], ext, _now())
            atomic_write(path, pki.cert_pem(leaf), PUBLIC)
        return leaf, ca, self.root

    # --- revocation and CRLs ----------------------------------------------------------------

    def _issuer(self, crl: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        if crl == "root":
            return self.root, self._keys["root-ca"]
        ca = ca_type(crl)
        return self.cas[ca], self._keys[f"{ca}-ca"]

    def crl(self, name: str, *, now: datetime | None = None) -> x509.CertificateRevocationList:
        """The current CRL of 'root', 'processor' or 'platform', freshly signed (valid 30 days)."""
        if name not in pki.CRL_NAMES:
            raise SimSettingError(f"unknown CRL {name!r} (root, processor or platform)")
        number, revoked = self.revocations.get(name)
        issuer, key = self._issuer(name)
        return pki.make_crl(issuer, key, number, revoked, now or _now())

    def revoke(self, crl: str, serial: int) -> None:
        """Add a serial to a CRL ('root' revokes CAs and the TCB signing cert)."""
        if crl not in pki.CRL_NAMES:
            raise SimSettingError(f"unknown CRL {crl!r} (root, processor or platform)")
        with locked(self.directory):
            self.revocations.change(crl, serial, revoke=True, when=_now())

    def unrevoke(self, crl: str, serial: int) -> None:
        if crl not in pki.CRL_NAMES:
            raise SimSettingError(f"unknown CRL {crl!r} (root, processor or platform)")
        with locked(self.directory):
            self.revocations.change(crl, serial, revoke=False, when=_now())

    def revoke_pck(self) -> int:
        """Revoke the current PCK leaf on its CA's CRL; returns its serial."""
        leaf = self.pck_chain()[0]
        self.revoke(self.pck_ca(), leaf.serial_number)
        return leaf.serial_number

    def revoke_intermediate(self, ca: str | None = None) -> int:
        """Revoke the Processor or Platform CA (default: the current one) on the root CRL."""
        serial = self.cas[ca_type(ca) if ca else self.pck_ca()].serial_number
        self.revoke("root", serial)
        return serial

    def clear_revocations(self) -> None:
        with locked(self.directory):
            self.revocations.clear()

    # --- trust anchor -----------------------------------------------------------------------

    def root_pem(self) -> bytes:
        return pki.cert_pem(self.root)

    def trust_anchor(self) -> TrustAnchor:
        """The simulated root as a kms.attestation TrustAnchor, marked simulated."""
        return TrustAnchor.from_certificate(self.root, simulated=True)
