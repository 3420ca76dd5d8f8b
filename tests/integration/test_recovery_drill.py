"""Disaster recovery drill with the real enclave: keys and ciphertexts on one platform, the
platform's root secret destroyed, M of N recovery shares recombine the domain key inside a
freshly attested enclave on a new platform, and everything decrypts again. Fewer than M shares,
or shares of another domain, are refused and leave nothing installed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519

from kms import errors
from kms.client.channel import SessionChannel
from kms.client.credentials import Credentials
from kms.client.recovery import SHARE_FORMAT, open_share, raw_public
from kms.enclave.bridge import Enclave, MemoryStore
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.service.evidence import install_evidence
from kms.sim.qe import SimQuotingEnclave
from tests.auditor import auditor_public


class Node:
    """One enclave on one (simulated) platform, with its own copy of the image."""

    def __init__(self, build: Path, root: Path, name: str, store: MemoryStore) -> None:
        image = root / f"{name}.so"
        shutil.copy(build / "kms_enclave.so", image)
        shutil.copy(build / "kms_enclave.sigstruct", image.with_suffix(".sigstruct"))
        self.data = root / name
        self.enclave = Enclave(self.data, image=image, store=store)
        self.cert = install_evidence(self.enclave, SimQuotingEnclave.open(self.data)).certificate

    def session(self, creds: Credentials) -> SessionChannel:
        sid = self.enclave.session_open()
        return SessionChannel(lambda data: self.enclave.session_feed(sid, data)[0], creds, self.cert)


def decrypt_share(share: pb.RecoveryShare, key: x25519.X25519PrivateKey, domain_id: bytes) -> pb.PlainShare:
    """What each recovery key holder does offline (kms.client.recovery.open_share on a share document)."""
    document = {"format": SHARE_FORMAT, "domain_id": domain_id.hex(), "index": share.index, "share_x": share.share_x,
                "recipient_public_key": raw_public(key).hex(), "ephemeral_public_key": share.ephemeral_public_key.hex(),
                "ciphertext": share.ciphertext.hex()}
    x, plain = open_share(document, key)
    return pb.PlainShare(share_x=x, share=plain)


def init(channel: SessionChannel, keys: list[x25519.X25519PrivateKey], threshold: int) -> pb.InitResponse:
    req = pb.InitRequest(admin_name="alice", recovery_public_keys=[raw_public(k) for k in keys], threshold=threshold,
                         auditor_public_keys=auditor_public())
    return channel.call(pb.Request(init=req)).init


def test_recovery_on_a_new_platform(build, tmp_path) -> None:
    store, alice = MemoryStore(), Credentials.generate("alice")
    keys = [x25519.X25519PrivateKey.generate() for _ in range(3)]
    old = Node(Path(build), tmp_path, "old", store)
    admin = old.session(alice)
    created = init(admin, keys, threshold=2)
    kid = admin.call(pb.Request(create_key=pb.CreateKeyRequest(spec=pb.SYMMETRIC_DEFAULT,
                                                               usage=pb.ENCRYPT_DECRYPT))).key_metadata.key_id
    cts = [admin.call(pb.Request(encrypt=pb.EncryptRequest(key_id=kid, plaintext=b"m%d" % i))).encrypt.ciphertext
           for i in range(5)]
    old.enclave.close()
    (old.data / "sgx-sim" / "root.secret").unlink()  # the platform is gone: its seal keys with it
    del store["sealed-domain-key"]                    # node-local: it never travels with the store

    new = Node(Path(build), tmp_path, "new", store)
    rescuer = new.session(alice)
    with pytest.raises(errors.NotInitialized):
        rescuer.call(pb.Request(encrypt=pb.EncryptRequest(key_id=kid, plaintext=b"x")))
    plain = [decrypt_share(s, keys[s.index], created.domain_id) for s in created.shares]
    with pytest.raises(errors.InvalidRequest):  # fewer than the threshold
        rescuer.call(pb.Request(recover=pb.RecoverRequest(domain_id=created.domain_id, shares=plain[:1])))
    other_store = MemoryStore()
    other = Node(Path(build), tmp_path, "other", other_store)
    foreign = init(other.session(Credentials.generate("eve")), keys, threshold=2)
    foreign_plain = [decrypt_share(s, keys[s.index], foreign.domain_id) for s in foreign.shares]
    with pytest.raises(errors.InvalidRequest):  # shares of another domain
        rescuer.call(pb.Request(recover=pb.RecoverRequest(domain_id=created.domain_id, shares=foreign_plain[:2])))
    principals = rescuer.call(pb.Request(recover=pb.RecoverRequest(domain_id=created.domain_id,
                                                                    shares=[plain[2], plain[0]]))).principals
    assert [p.name for p in principals.principals] == ["alice"]
    for i, ct in enumerate(cts):
        assert rescuer.call(pb.Request(decrypt=pb.DecryptRequest(ciphertext=ct))).decrypt.plaintext == b"m%d" % i
    assert "sealed-domain-key" in store  # sealed again, to the new platform
    with pytest.raises(errors.InvalidRequest):
        rescuer.call(pb.Request(recover=pb.RecoverRequest(domain_id=created.domain_id, shares=plain[:2])))
    for node in (new, other):
        node.enclave.close()
