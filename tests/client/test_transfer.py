"""KmsClient.transfer_key_to: a key moves between two enclaves of one platform (local attestation),
each client verified against its server first; afterwards the importer decrypts old ciphertexts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kms import errors
from kms.client import Credentials, KmsClient
from kms.client.policy import KeyPolicy
from tests.auditor import auditor_public
from tests.client.conftest import recovery_public
from tests.client.fakeserver import FakeServer


def test_transfer_between_two_servers_on_one_platform(build, tmp_path, policy, server) -> None:
    image = tmp_path / "second.so"  # a second instance of the same signed image
    shutil.copy(Path(build) / "kms_enclave.so", image)
    shutil.copy(Path(build) / "kms_enclave.sigstruct", image.with_suffix(".sigstruct"))
    second = FakeServer(server.platform.data_dir, image=image)
    try:
        anchor = server.platform.trust_anchor()
        with KmsClient(server.target, credentials=Credentials.generate("a"), policy=policy,
                       trust_anchor=anchor, new_domain=True) as a, \
                KmsClient(second.target, credentials=Credentials.generate("b"), policy=policy,
                          trust_anchor=anchor, new_domain=True) as b:
            a.init(recovery_public(1), threshold=1, admin_name="a", auditor_public_keys=auditor_public())
            b_domain = b.init(recovery_public(1), threshold=1, admin_name="b",
                              auditor_public_keys=auditor_public()).domain_id
            b_mrenclave = b.evidence.identity.mrenclave
            key = a.create_key("SYMMETRIC_DEFAULT")
            ct = a.encrypt(key.key_id, b"moves").ciphertext
            with pytest.raises(errors.PermissionDenied):
                a.transfer_key_to(b, key.key_id, destination_domain=b_domain, mrenclave=b_mrenclave)
            a.put_key_policy(key.key_id, KeyPolicy((), "EXPORT_TO_ATTESTED_ENCLAVE"))
            with pytest.raises(ValueError):  # the destination must be named: a domain, and MRENCLAVE or ISVSVN
                a.transfer_key_to(b, key.key_id, destination_domain=b_domain)
            with pytest.raises(errors.PeerMismatch):
                a.transfer_key_to(b, key.key_id, destination_domain=a.domain_id, mrenclave=b_mrenclave)
            with pytest.raises(errors.PeerMismatch):
                a.transfer_key_to(b, key.key_id, destination_domain=b_domain, min_isvsvn=b.identity().isv_svn + 1)
            moved = a.transfer_key_to(b, key.key_id, destination_domain=b_domain, mrenclave=b_mrenclave)
            assert moved.key_id == key.key_id
            assert b.decrypt(ct).plaintext == b"moves"
    finally:
        second.stop()
