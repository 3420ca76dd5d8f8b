"""Sealing to MRSIGNER on the simulated CPU: who can unseal the domain key and who cannot, the
SDK's sgx_sealed_data_t offsets, and authenticated key records across a restart."""

from __future__ import annotations

import dataclasses
import itertools
import shutil
import struct
from pathlib import Path

import pytest

from kms import errors
from kms.enclave import sigstruct as ss
from kms.enclave.bridge import Enclave, MemoryStore
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.proto.enclave.v1 import errors_pb2 as codes

REPO = Path(__file__).resolve().parents[2]
_serial = itertools.count()


def variant(build: Path, tmp_path: Path, *, isv_svn: int = 1, key_path: Path | None = None,
            debug: bool = False) -> tuple[Path, Path]:
    """A copy of the built image (its own instance when loaded) signed with the given identity."""
    n = next(_serial)
    image = tmp_path / f"enclave{n}.so"
    shutil.copy(build / "kms_enclave.so", image)
    config = dataclasses.replace(ss.load_config(REPO / "enclave/config/enclave.toml"), isv_svn=isv_svn, debug=debug)
    key = ss.load_signer_key(key_path or REPO / ".local/dev-signer.pem")
    sig = tmp_path / f"enclave{n}.sigstruct"
    sig.write_bytes(ss.sign_image(image.read_bytes(), config, key))
    return image, sig


def load(image: Path, sig: Path, data: Path, store=None) -> Enclave:
    return Enclave(data, image=image, sigstruct=sig, store=store)


def seal_domain(build: Path, tmp_path: Path, data: Path) -> tuple[bytes, bytes]:
    with load(*variant(build, tmp_path), data) as e:
        r = e.call(pb.Request(generate_domain_key=pb.GenerateDomainKeyRequest())).generate_domain_key
        return r.sealed_domain_key, r.domain_id


def try_load(enclave: Enclave, blob: bytes) -> bytes:
    request = pb.Request(load_domain_key=pb.LoadDomainKeyRequest(sealed_domain_key=blob))
    return enclave.call(request).load_domain_key.domain_id


def test_sealed_blob_has_the_sdk_layout(build, tmp_path) -> None:
    blob, domain_id = seal_domain(build, tmp_path, tmp_path / "data")
    key_name, policy, isv_svn = struct.unpack_from("<HHH", blob, 0)
    assert (key_name, policy, isv_svn) == (4, 0x2, 1)  # SEAL key, MRSIGNER policy, our ISVSVN
    assert blob[6:8] == b"\x00\x00" and any(blob[40:72])  # reserved, random KEYID
    (attr_mask,) = struct.unpack_from("<Q", blob, 24)
    assert attr_mask == 0xFF0000000000000B
    (pt_offset,) = struct.unpack_from("<I", blob, 512)
    (payload_size,) = struct.unpack_from("<I", blob, 528)
    assert pt_offset == 32 and payload_size == 32 + 32 and len(blob) == 560 + payload_size
    aad = blob[560 + pt_offset:]
    assert aad == b"KMS-DOMAIN-KEY1\x00" + domain_id


def test_higher_isvsvn_same_signer_unseals(build, tmp_path) -> None:
    data = tmp_path / "data"
    blob, domain_id = seal_domain(build, tmp_path, data)
    with load(*variant(build, tmp_path, isv_svn=2), data) as newer:
        assert try_load(newer, blob) == domain_id


@pytest.mark.parametrize("case", ["lower_isvsvn", "other_signer", "other_root", "debug"])
def test_unseal_refused(build, tmp_path, case) -> None:
    data = tmp_path / "data"
    blob, _ = seal_domain(build, tmp_path, data)
    expected = codes.KMS_ERR_SEAL_MAC_MISMATCH
    if case == "lower_isvsvn":
        image, sig, where = *variant(build, tmp_path, isv_svn=0), data
        expected = codes.KMS_ERR_SEAL_INVALID_ISVSVN
    elif case == "other_signer":
        other = tmp_path / "other-signer.pem"
        ss.generate_signer_key(other)
        image, sig, where = *variant(build, tmp_path, key_path=other), data
    elif case == "other_root":
        image, sig, where = *variant(build, tmp_path), tmp_path / "another-machine"
    else:
        image, sig, where = *variant(build, tmp_path, debug=True), data
    with load(image, sig, where) as e:
        with pytest.raises(errors.SealError) as exc:
            try_load(e, blob)
        assert exc.value.code == expected


def test_every_flipped_byte_is_refused(build, tmp_path) -> None:
    data = tmp_path / "data"
    blob, domain_id = seal_domain(build, tmp_path, data)
    with load(*variant(build, tmp_path), data) as e:
        for i in range(len(blob)):
            for bit in (0x01, 0x80):
                bad = bytearray(blob)
                bad[i] ^= bit
                with pytest.raises(errors.SealError):
                    try_load(e, bytes(bad))
        for bad in (blob[:-1], blob + b"\x00", blob[:559], b""):
            with pytest.raises(errors.SealError):
                try_load(e, bad)
        assert try_load(e, blob) == domain_id  # the untouched blob still loads


def test_root_secret_is_created_owner_only(build, tmp_path) -> None:
    data = tmp_path / "data"
    seal_domain(build, tmp_path, data)
    root = data / "sgx-sim" / "root.secret"
    assert root.stat().st_mode & 0o777 == 0o600
    root.chmod(0o644)
    with pytest.raises(errors.EnclaveUnavailable, match="0600"):
        load(*variant(build, tmp_path), data)


def test_tampered_signature_or_image_does_not_load(build, tmp_path) -> None:
    image, sig = variant(build, tmp_path)
    raw = bytearray(sig.read_bytes())
    raw[1026] ^= 1  # ISVSVN: the signature no longer covers it
    sig.write_bytes(bytes(raw))
    with pytest.raises(errors.EnclaveUnavailable, match="signature"):
        load(image, sig, tmp_path / "data")
    image_q, sig_q = variant(build, tmp_path)
    raw = bytearray(sig_q.read_bytes())
    raw[1040] ^= 1  # Q1: outside the signed bytes, but EINIT checks it
    sig_q.write_bytes(bytes(raw))
    with pytest.raises(errors.EnclaveUnavailable, match="Q1/Q2"):
        load(image_q, sig_q, tmp_path / "data")
    image2, sig2 = variant(build, tmp_path)
    with image2.open("ab") as f:
        f.write(b"\x00")
    with pytest.raises(errors.EnclaveUnavailable, match="ENCLAVEHASH"):
        load(image2, sig2, tmp_path / "data")


def test_records_survive_restart_and_tampering_is_per_key(build, tmp_path) -> None:
    data, records = tmp_path / "data", MemoryStore()
    with load(*variant(build, tmp_path), data, records) as e:
        sealed = e.call(pb.Request(generate_domain_key=pb.GenerateDomainKeyRequest())).generate_domain_key
        ids, cts = [], []
        for _ in range(2):
            r = e.call(pb.Request(create_key=pb.CreateKeyRequest(spec=pb.SYMMETRIC_DEFAULT, usage=pb.ENCRYPT_DECRYPT)))
            ids.append(r.key_metadata.key_id)
            cts.append(e.call(pb.Request(encrypt=pb.EncryptRequest(key_id=ids[-1], plaintext=b"p"))).encrypt.ciphertext)
    good, bad = ids
    revision, blob = records[bad]
    flipped = bytearray(blob)
    flipped[len(flipped) // 2] ^= 1
    records[bad] = (revision, bytes(flipped))
    with load(*variant(build, tmp_path), data, records) as e:
        try_load(e, sealed.sealed_domain_key)
        assert e.call(pb.Request(decrypt=pb.DecryptRequest(ciphertext=cts[0]))).decrypt.plaintext == b"p"
        with pytest.raises(errors.StoreError) as exc:
            e.call(pb.Request(describe_key=pb.DescribeKeyRequest(key_id=bad)))
        assert exc.value.code == codes.KMS_ERR_RECORD_CORRUPT
        records[bad] = records[good]  # a valid record filed under another key id
        with pytest.raises(errors.StoreError):
            e.call(pb.Request(describe_key=pb.DescribeKeyRequest(key_id=bad)))


def test_operations_before_the_domain_key_are_refused(build, tmp_path) -> None:
    with load(*variant(build, tmp_path), tmp_path / "data") as e:
        with pytest.raises(errors.NotInitialized):
            e.call(pb.Request(create_key=pb.CreateKeyRequest(spec=pb.SYMMETRIC_DEFAULT, usage=pb.ENCRYPT_DECRYPT)))
        e.call(pb.Request(generate_domain_key=pb.GenerateDomainKeyRequest()))
        with pytest.raises(errors.InvalidRequest):
            e.call(pb.Request(generate_domain_key=pb.GenerateDomainKeyRequest()))


def test_an_upgrade_reseals_so_the_old_build_cannot_unseal(build, tmp_path) -> None:
    data, store = tmp_path / "data", MemoryStore()
    blob, domain_id = seal_domain(build, tmp_path, data)
    store["sealed-domain-key"] = (1, blob)  # what the host holds
    with load(*variant(build, tmp_path, isv_svn=2), data, store) as newer:
        assert try_load(newer, blob) == domain_id
    revision, resealed = store["sealed-domain-key"]
    assert revision == 2 and struct.unpack_from("<H", resealed, 4)[0] == 2
    with load(*variant(build, tmp_path, isv_svn=1), data) as older:
        with pytest.raises(errors.SealError) as exc:
            try_load(older, resealed)
        assert exc.value.code == codes.KMS_ERR_SEAL_INVALID_ISVSVN
