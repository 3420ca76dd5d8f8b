"""Provisioning of the simulated platform: files and modes, names, the PCK SGX extension, TCB and CA settings."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from kms.attestation import INTEL_SGX_ROOT, PckCa
from kms.attestation.pck import pck_ca_of, sgx_extension
from kms.sim import SimPlatform, SimProvisioningError, SimSettingError, read_cpusvn
from kms.sim.levels import DEFAULT_CPUSVN, TCB_LEVELS, level_of
from kms.sim.sgxext import encode_sgx_extension

KEYS = ("root-ca", "processor-ca", "platform-ca", "tcb-signing", "pck", "attestation")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_use_creates_the_pki_with_private_keys_0600(platform: SimPlatform) -> None:
    d = platform.directory
    assert d == platform.data_dir / "sgx-sim" and mode(d) == 0o700
    for role in KEYS:
        assert mode(d / f"{role}.key") == 0o600, role
    for name in ("root-ca", "processor-ca", "platform-ca", "tcb-signing"):
        assert mode(d / f"{name}.pem") == 0o644
    for name in ("platform.json", "settings.json", "revocations.json"):
        assert (d / name).is_file()
    assert not list(d.glob(".*.tmp"))


def test_names_say_simulated_and_the_root_is_not_intels(platform: SimPlatform) -> None:
    root_cn = platform.root.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert "SIMULATED" in root_cn and "not Intel" in root_cn and "SGX Root CA" in root_cn
    assert platform.root.issuer == platform.root.subject
    assert not INTEL_SGX_ROOT.matches(platform.root.public_key())
    leaf, ca, root = platform.pck_chain()
    for cert in (leaf, ca, root, platform.tcb_signing, *platform.cas.values()):
        assert "SIMULATED" in cert.subject.rfc4514_string()
    assert platform.trust_anchor().simulated and platform.trust_anchor().matches(root.public_key())


def test_reopening_keeps_the_pki_and_concurrent_first_use_agrees(data_dir: Path) -> None:
    roots: list[bytes] = []

    def open_one() -> None:
        roots.append(SimPlatform(data_dir).root.fingerprint(hashes.SHA256()))

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(roots)) == 1 and len(roots) == 4
    assert SimPlatform(data_dir).root.fingerprint(hashes.SHA256()) == roots[0]


def test_a_group_readable_private_key_is_refused(platform: SimPlatform) -> None:
    (platform.directory / "pck.key").chmod(0o640)
    with pytest.raises(SimProvisioningError, match="0600"):
        SimPlatform(platform.data_dir)


@pytest.mark.parametrize("ca", [PckCa.PROCESSOR, PckCa.PLATFORM])
def test_pck_extension_parses_with_the_verifier(data_dir: Path, ca: PckCa) -> None:
    platform = SimPlatform(data_dir, pck_ca=ca.value)
    leaf, intermediate, _ = platform.pck_chain()
    assert pck_ca_of(leaf) is ca and leaf.issuer == intermediate.subject
    ext = sgx_extension(leaf, ca)
    assert ext.tcb_components == tuple(DEFAULT_CPUSVN) and ext.cpusvn == DEFAULT_CPUSVN
    assert ext.pcesvn == platform.pcesvn() == 13
    assert ext.fmspc == platform.fmspc and ext.pce_id == b"\x00\x00" and ext.ppid == platform.ppid
    if ca is PckCa.PLATFORM:
        assert ext.sgx_type == 1 and ext.platform_instance_id == platform.platform_instance_id
        assert ext.configuration is not None and ext.configuration.smt_enabled is True
    else:
        assert ext.sgx_type == 0 and ext.platform_instance_id is None and ext.configuration is None
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and usage.value.content_commitment
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


def test_svns_of_128_and_more_get_a_leading_zero() -> None:
    der = encode_sgx_extension(ppid=bytes(16), cpusvn=bytes([255, 128, 127] + [0] * 13), pcesvn=300,
                               pce_id=bytes(2), fmspc=bytes(6), sgx_type=0)
    assert b"\x02\x02\x00\xff" in der and b"\x02\x02\x00\x80" in der and b"\x02\x01\x7f" in der
    assert b"\x02\x02\x01\x2c" in der


def test_cpusvn_file_is_read_like_the_simulated_cpu(data_dir: Path) -> None:
    assert read_cpusvn(data_dir) == DEFAULT_CPUSVN == bytes.fromhex("0f0f0204ff8006000000000000000000")
    (data_dir / "sgx-sim").mkdir(parents=True)
    path = data_dir / "sgx-sim" / "cpusvn"
    path.write_text("0102030405060708090a0b0c0d0e0f10\n")
    assert read_cpusvn(data_dir) == bytes(range(1, 17))
    for bad in ("0102", "zz02030405060708090a0b0c0d0e0f10", "0" * 65):
        path.write_text(bad)
        with pytest.raises(SimSettingError):
            read_cpusvn(data_dir)


def test_set_tcb_moves_cpusvn_pcesvn_and_reissues_the_leaf(platform: SimPlatform) -> None:
    first = platform.pck_chain()[0]
    assert platform.pck_chain()[0] == first  # stable while nothing changes
    for level in TCB_LEVELS:
        platform.set_tcb(level.status)
        assert read_cpusvn(platform.data_dir) == level.cpusvn and platform.pcesvn() == level.pcesvn
        assert platform.tcb_level() == level == level_of(level.cpusvn, level.pcesvn)
        leaf = platform.pck_chain()[0]
        ext = sgx_extension(leaf, PckCa.PROCESSOR)
        assert ext.cpusvn == level.cpusvn and ext.pcesvn == level.pcesvn
        assert leaf.public_key() == first.public_key()
    assert platform.tcb_level() is not None and platform.pck_chain()[0] != first
    platform.set_tcb("uptodate", qe_isvsvn=6)
    assert platform.tcb_level() == TCB_LEVELS[0] and platform.qe_isvsvn() == 6
    with pytest.raises(SimSettingError):
        platform.set_tcb("Perfect")


def test_each_level_is_reached_only_by_its_own_svns() -> None:
    statuses = [level.status for level in TCB_LEVELS]
    assert statuses[:5] == ["UpToDate", "SWHardeningNeeded", "ConfigurationNeeded",
                            "ConfigurationAndSWHardeningNeeded", "OutOfDate"]
    assert all(level.advisory_ids for level in TCB_LEVELS[1:]) and not TCB_LEVELS[0].advisory_ids
    assert level_of(bytes(16), 0) is None


def test_pck_ca_setting_switches_the_issuer(platform: SimPlatform) -> None:
    assert platform.pck_ca() == "processor"
    platform.set_pck_ca("platform")
    leaf, ca, _ = platform.pck_chain()
    assert ca == platform.cas["platform"] and pck_ca_of(leaf) is PckCa.PLATFORM
    assert SimPlatform(platform.data_dir).pck_ca() == "platform"
    with pytest.raises(SimSettingError):
        platform.set_pck_ca("socket")


def test_crls_revoke_unrevoke_and_number(platform: SimPlatform) -> None:
    for name, issuer in (("root", platform.root), ("processor", platform.cas["processor"]),
                         ("platform", platform.cas["platform"])):
        crl = platform.crl(name)
        assert crl.issuer == issuer.subject and crl.is_signature_valid(issuer.public_key())
        assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 1
        assert crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
        assert len(crl) == 0
    serial = platform.revoke_pck()
    crl = platform.crl("processor")
    assert crl.get_revoked_certificate_by_serial_number(serial) is not None
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2
    ca_serial = platform.revoke_intermediate()
    assert platform.crl("root").get_revoked_certificate_by_serial_number(ca_serial) is not None
    platform.unrevoke("processor", serial)
    assert platform.crl("processor").get_revoked_certificate_by_serial_number(serial) is None
    platform.clear_revocations()
    assert len(platform.crl("root")) == 0
    with pytest.raises(SimSettingError):
        platform.revoke("intel", 1)
