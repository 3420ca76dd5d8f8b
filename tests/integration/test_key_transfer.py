"""Export of a key to another enclave proven by SGX local attestation: only keys whose policy
allows it, only to an enclave of the same signer and product on the same platform that bound
its ephemeral key and its domain id into a REPORT targeted at the exporter, and only to the
enclave the caller named (domain id, and MRENCLAVE or a minimum ISVSVN); the importer then
decrypts the exporter's ciphertexts. Tampered reports, other signers, non-exportable keys, and
another domain, MRENCLAVE or a lower ISVSVN than named are refused."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519

from kms import errors
from kms.client.channel import SessionChannel
from kms.client.credentials import Credentials
from kms.client.recovery import raw_public
from kms.enclave import sigstruct as ss
from kms.enclave.bridge import Enclave, MemoryStore
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.service.evidence import install_evidence
from kms.sim.qe import SimQuotingEnclave
from tests.auditor import auditor_public

REPO = Path(__file__).resolve().parents[2]


def domain(build: Path, tmp_path: Path, name: str, platform: Path, key: Path | None = None):
    """An initialized domain in its own enclave instance on the shared platform `platform`."""
    image = tmp_path / f"{name}.so"
    shutil.copy(build / "kms_enclave.so", image)
    signer = ss.load_signer_key(key or REPO / ".local/dev-signer.pem")
    config = dataclasses.replace(ss.load_config(REPO / "enclave/config/enclave.toml"))
    image.with_suffix(".sigstruct").write_bytes(ss.sign_image(image.read_bytes(), config, signer))
    enclave = Enclave(platform, image=image, store=MemoryStore())
    cert = install_evidence(enclave, SimQuotingEnclave.open(platform)).certificate
    sid = enclave.session_open()
    admin = SessionChannel(lambda d: enclave.session_feed(sid, d)[0], Credentials.generate(name), cert)
    admin.call(pb.Request(init=pb.InitRequest(admin_name=name, threshold=1, recovery_public_keys=[
        raw_public(x25519.X25519PrivateKey.generate())], auditor_public_keys=auditor_public())))
    return enclave, admin


def exportable_key(admin) -> tuple[str, bytes]:
    kid = admin.call(pb.Request(create_key=pb.CreateKeyRequest(spec=pb.SYMMETRIC_DEFAULT,
                                                               usage=pb.ENCRYPT_DECRYPT))).key_metadata.key_id
    ct = admin.call(pb.Request(encrypt=pb.EncryptRequest(key_id=kid, plaintext=b"travels"))).encrypt.ciphertext
    return kid, ct


def named(importer_enclave, **override) -> dict:
    """The destination as a caller names it: the importer's domain id and MRENCLAVE (or what `override` says)."""
    ident = importer_enclave.identity()
    return {"peer_domain_id": ident.domain_id, "peer_mrenclave": ident.mrenclave, **override}


def transfer(exporter, importer, exporter_enclave, kid, tamper=None, *, peer: dict):
    ti = exporter_enclave.identity().target_info
    prep = importer.call(pb.Request(prepare_key_import=pb.PrepareKeyImportRequest(exporter_target_info=ti)))
    prep = prep.prepare_key_import
    report = bytearray(prep.report)
    if tamper is not None:
        report[tamper] ^= 1
    wrapped = exporter.call(pb.Request(export_key=pb.ExportKeyRequest(
        key_id=kid, peer_report=bytes(report), peer_public_key=prep.public_key, **peer))).export_key
    return importer.call(pb.Request(import_transferred_key=pb.ImportTransferredKeyRequest(
        transfer_id=prep.transfer_id, ephemeral_public_key=wrapped.ephemeral_public_key,
        wrapped_key=wrapped.wrapped_key))).key_metadata


def test_export_to_an_attested_enclave(build, tmp_path) -> None:
    platform = tmp_path / "platform"
    a_enclave, a = domain(Path(build), tmp_path, "a", platform)
    b_enclave, b = domain(Path(build), tmp_path, "b", platform)
    kid, ct = exportable_key(a)
    with pytest.raises(errors.PermissionDenied):  # NON_EXPORTABLE is the default
        transfer(a, b, a_enclave, kid, peer=named(b_enclave))
    a.call(pb.Request(put_key_policy=pb.PutKeyPolicyRequest(key_id=kid,
                                                            export_policy=pb.EXPORT_TO_ATTESTED_ENCLAVE)))
    for offset in (64, 128, 320, 416):  # MRENCLAVE, MRSIGNER, REPORTDATA, MAC
        with pytest.raises((errors.PermissionDenied, errors.InternalError)):
            transfer(a, b, a_enclave, kid, tamper=offset, peer=named(b_enclave))
    meta = transfer(a, b, a_enclave, kid, peer=named(b_enclave))
    assert meta.key_id == kid and meta.origin == pb.ORIGIN_IMPORTED
    assert b.call(pb.Request(decrypt=pb.DecryptRequest(ciphertext=ct))).decrypt.plaintext == b"travels"
    for e in (a_enclave, b_enclave):
        e.close()


def test_another_signer_is_refused(build, tmp_path) -> None:
    platform, other_key = tmp_path / "platform", tmp_path / "other.pem"
    ss.generate_signer_key(other_key)
    a_enclave, a = domain(Path(build), tmp_path, "a", platform)
    c_enclave, c = domain(Path(build), tmp_path, "c", platform, key=other_key)
    kid, _ = exportable_key(a)
    a.call(pb.Request(put_key_policy=pb.PutKeyPolicyRequest(key_id=kid,
                                                            export_policy=pb.EXPORT_TO_ATTESTED_ENCLAVE)))
    with pytest.raises(errors.PermissionDenied) as refused:
        transfer(a, c, a_enclave, kid, peer=named(c_enclave))
    assert not isinstance(refused.value, errors.PeerMismatch)  # our signer and product are the enclave's own rule
    for e in (a_enclave, c_enclave):
        e.close()


def test_only_the_destination_the_caller_named(build, tmp_path) -> None:
    """Same signer, same platform, a valid report: still refused (PEER_MISMATCH) unless the importer is the domain,
    MRENCLAVE and ISVSVN the caller named; naming no domain, or neither MRENCLAVE nor a minimum ISVSVN, is invalid."""
    platform = tmp_path / "platform"
    a_enclave, a = domain(Path(build), tmp_path, "a", platform)
    b_enclave, b = domain(Path(build), tmp_path, "b", platform)
    kid, ct = exportable_key(a)
    a.call(pb.Request(put_key_policy=pb.PutKeyPolicyRequest(key_id=kid,
                                                            export_policy=pb.EXPORT_TO_ATTESTED_ENCLAVE)))
    svn = b_enclave.identity().isv_svn
    refusals = {
        "another domain (the exporter's own)": named(b_enclave, peer_domain_id=a_enclave.identity().domain_id),
        "a random domain": named(b_enclave, peer_domain_id=bytes(16)),
        "another MRENCLAVE": named(b_enclave, peer_mrenclave=bytes(32)),
        "an ISVSVN above the importer's": named(b_enclave, peer_mrenclave=b"", peer_min_isvsvn=svn + 1),
        "both named, the ISVSVN too high": named(b_enclave, peer_min_isvsvn=svn + 1),
    }
    for what, peer in refusals.items():
        with pytest.raises(errors.PeerMismatch):
            transfer(a, b, a_enclave, kid, peer=peer)
            pytest.fail(f"exported to {what}")
    for peer in (named(b_enclave, peer_domain_id=b""), named(b_enclave, peer_mrenclave=b""),
                 named(b_enclave, peer_mrenclave=bytes(31)), named(b_enclave, peer_min_isvsvn=70000)):
        with pytest.raises(errors.InvalidRequest):
            transfer(a, b, a_enclave, kid, peer=peer)
    meta = transfer(a, b, a_enclave, kid, peer=named(b_enclave, peer_mrenclave=b"", peer_min_isvsvn=svn))
    assert meta.key_id == kid
    assert b.call(pb.Request(decrypt=pb.DecryptRequest(ciphertext=ct))).decrypt.plaintext == b"travels"
    for e in (a_enclave, b_enclave):
        e.close()
