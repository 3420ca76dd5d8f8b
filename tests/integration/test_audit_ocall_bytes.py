"""The audit OCALL hands the store the entry's bytes, so an entry that follows the one queued before it
chains on exactly those bytes: audited requests in a row are each appended once, at the first attempt.

Before, the OCALL passed a list of ints (cffi's unpack of a `uint8_t *`); the in-memory store compared it
with the stored bytes, refused every entry that follows another, and the enclave re-read the chain's
head (an Ed25519 verification), opened a new epoch (HPKE to every auditor) and signed a second record for
each request, about 4 M instructions of 5 M per audited Encrypt (tests/bench/profile_enclave.py)."""

from __future__ import annotations

import os

from kms.client.channel import SessionChannel
from kms.client.credentials import Credentials
from kms.enclave.bridge import Enclave, MemoryStore
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.service.evidence import install_evidence
from kms.sim.qe import SimQuotingEnclave
from tests.auditor import auditor_public


class CountingStore(MemoryStore):
    """The in-memory store, counting the audit appends it refuses and the types it is handed."""

    def audit_enqueue(self, seq: int, entry: bytes, prev: bytes | None = None) -> Exception | None:
        self.__dict__.setdefault("types", set()).update({type(entry), type(prev)})
        refused = super().audit_enqueue(seq, entry, prev)
        if refused is not None:
            self.__dict__["refused"] = self.__dict__.get("refused", 0) + 1
        return refused


def test_audited_requests_append_once_each(build, tmp_path) -> None:
    store = CountingStore()
    with Enclave(tmp_path / "data", store=store) as enclave:
        cert = install_evidence(enclave, SimQuotingEnclave.open(tmp_path / "data")).certificate
        sid = enclave.session_open()
        channel = SessionChannel(lambda data: enclave.session_feed(sid, data)[0], Credentials.generate("a"), cert)
        channel.call(pb.Request(init=pb.InitRequest(admin_name="a", recovery_public_keys=[os.urandom(32)],
                                                    threshold=1, auditor_public_keys=auditor_public())))
        key = channel.call(pb.Request(create_key=pb.CreateKeyRequest(spec=pb.SYMMETRIC_DEFAULT,
                                                                     usage=pb.ENCRYPT_DECRYPT))).key_metadata.key_id
        before = len(store.audit)
        for _ in range(5):
            channel.call(pb.Request(encrypt=pb.EncryptRequest(key_id=key, plaintext=b"x" * 32)))
    assert len(store.audit) == before + 5
    assert store.__dict__.get("refused", 0) == 0
    assert store.__dict__["types"] <= {bytes, type(None)}
