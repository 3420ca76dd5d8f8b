"""Attested sessions with the real enclave, without gRPC: the client's TLS 1.3 (Python ssl over
memory BIOs) talks to the enclave's OpenSSL through session_feed, with the simulated QE's
quote in the certificate. Authorization is decided inside the enclave."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from kms import errors
from kms.client.channel import EnclaveIdentityMismatch, SessionChannel
from kms.client.credentials import Credentials
from kms.enclave.bridge import Enclave, MemoryStore
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.service.evidence import install_evidence
from kms.sim.qe import SimQuotingEnclave
from tests.auditor import auditor_public


@pytest.fixture
def node(build, tmp_path):
    store = MemoryStore()
    with Enclave(tmp_path / "data", store=store) as enclave:
        evidence = install_evidence(enclave, SimQuotingEnclave.open(tmp_path / "data"))
        yield enclave, store, evidence.certificate


def open_channel(enclave, certificate, creds) -> SessionChannel:
    sid = enclave.session_open()
    return SessionChannel(lambda data: enclave.session_feed(sid, data)[0], creds, certificate)


def recovery_keys(n: int) -> list[x25519.X25519PrivateKey]:
    return [x25519.X25519PrivateKey.generate() for _ in range(n)]


def raw(key: x25519.X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def init(channel, keys, threshold=2) -> pb.InitResponse:
    req = pb.InitRequest(admin_name="alice", recovery_public_keys=[raw(k) for k in keys], threshold=threshold,
                         auditor_public_keys=auditor_public())
    return channel.call(pb.Request(init=req)).init


def test_init_then_admin_and_user_rights(node) -> None:
    enclave, store, cert = node
    alice, bob = Credentials.generate("alice"), Credentials.generate("bob")
    admin = open_channel(enclave, cert, alice)
    with pytest.raises(errors.NotInitialized):
        admin.call(pb.Request(create_key=pb.CreateKeyRequest(spec=pb.SYMMETRIC_DEFAULT, usage=pb.ENCRYPT_DECRYPT)))
    result = init(admin, recovery_keys(3))
    assert result.admin_principal_id == alice.principal_id and len(result.shares) == 3
    assert "sealed-domain-key" in store and "domain-state" in store
    kid = admin.call(pb.Request(create_key=pb.CreateKeyRequest(
        spec=pb.SYMMETRIC_DEFAULT, usage=pb.ENCRYPT_DECRYPT))).key_metadata.key_id
    ct = admin.call(pb.Request(encrypt=pb.EncryptRequest(key_id=kid, plaintext=b"secret"))).encrypt.ciphertext
    assert admin.call(pb.Request(decrypt=pb.DecryptRequest(ciphertext=ct))).decrypt.plaintext == b"secret"

    user = open_channel(enclave, cert, bob)
    with pytest.raises(errors.PermissionDenied):  # unknown principal
        user.call(pb.Request(decrypt=pb.DecryptRequest(ciphertext=ct)))
    admin.call(pb.Request(add_principal=pb.AddPrincipalRequest(principal_id=bob.principal_id, name="bob",
                                                               role=pb.USER)))
    with pytest.raises(errors.PermissionDenied):  # a user without a grant
        user.call(pb.Request(decrypt=pb.DecryptRequest(ciphertext=ct)))
    with pytest.raises(errors.PermissionDenied):  # users do not manage keys
        user.call(pb.Request(create_key=pb.CreateKeyRequest(spec=pb.SYMMETRIC_DEFAULT, usage=pb.ENCRYPT_DECRYPT)))
    admin.call(pb.Request(create_grant=pb.CreateGrantRequest(key_id=kid, grantee=bob.principal_id,
                                                             operations=pb.OP_DECRYPT | pb.OP_DESCRIBE)))
    assert user.call(pb.Request(decrypt=pb.DecryptRequest(ciphertext=ct))).decrypt.plaintext == b"secret"
    listed = user.call(pb.Request(list_keys=pb.ListKeysRequest())).list_keys.keys
    assert [k.key_id for k in listed] == [kid]
    with pytest.raises(errors.PermissionDenied):  # the host path cannot touch session keys
        enclave.call(pb.Request(decrypt=pb.DecryptRequest(ciphertext=ct)))


def test_second_init_is_refused(node) -> None:
    enclave, _, cert = node
    admin = open_channel(enclave, cert, Credentials.generate("alice"))
    init(admin, recovery_keys(1), threshold=1)
    with pytest.raises(errors.InvalidRequest):
        init(open_channel(enclave, cert, Credentials.generate("mallory")), recovery_keys(1), threshold=1)


def test_client_refuses_an_unverified_certificate(node) -> None:
    enclave, _, cert = node
    other = bytearray(cert)
    other[-1] ^= 1
    with pytest.raises(EnclaveIdentityMismatch):
        open_channel(enclave, bytes(other), Credentials.generate("alice"))


def test_flipped_record_ends_the_session_only(node) -> None:
    enclave, _, cert = node
    admin = open_channel(enclave, cert, Credentials.generate("alice"))
    init(admin, recovery_keys(1), threshold=1)
    sid = enclave.session_open()
    handshake_done = False

    def tampering(data: bytes) -> bytes:
        if handshake_done and data:  # corrupt application data: the last byte of the record's tag
            data = data[:-1] + bytes([data[-1] ^ 1])
        return enclave.session_feed(sid, data)[0]

    victim = SessionChannel(tampering, Credentials.generate("bob"), cert)
    handshake_done = True
    with pytest.raises(errors.SessionError):
        victim.call(pb.Request(get_identity=pb.GetIdentityRequest()))
    assert admin.call(pb.Request(get_identity=pb.GetIdentityRequest())).get_identity.domain_loaded


def test_hostile_tls_bytes_end_only_that_session(node) -> None:
    """Garbage, truncated and oversized TLS input: a typed SessionError, never a crash, and the
    slot is freed (the enclave keeps serving new sessions)."""
    import os

    enclave, _, cert = node
    samples = [b"", b"\x16\x03\x01\x00\x05hello", os.urandom(64), b"\x17\x03\x03\xff\xff" + os.urandom(300),
               b"\x16\x03\x03\x00\x02\x01\x00" * 50]
    for data in samples:
        sid = enclave.session_open()
        try:
            enclave.session_feed(sid, data)
            enclave.session_feed(sid, os.urandom(512))
        except errors.SessionError as exc:
            assert exc.code_name.startswith("KMS_ERR_SESSION")
        else:
            enclave.session_close(sid)
    with pytest.raises(errors.InvalidRequest):  # above the per-feed bound, refused before the enclave
        enclave.session_feed(enclave.session_open(), b"\x00" * (128 * 1024 + 1))
    with pytest.raises(errors.SessionError):
        enclave.session_feed(12345, b"x")  # no such session
    admin = open_channel(enclave, cert, Credentials.generate("alice"))
    assert admin.call(pb.Request(get_identity=pb.GetIdentityRequest())).get_identity.simulated
