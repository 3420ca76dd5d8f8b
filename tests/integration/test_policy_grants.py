"""Key policies and grants, decided inside the enclave for session principals: operation classes,
encryption-context conditions, grant expiry (host time) and revocation, and the policy hash in
DescribeKey and in audit records."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519

from kms import errors
from kms.audit import verify_chain
from kms.client.channel import SessionChannel
from kms.client.credentials import Credentials
from kms.client.recovery import raw_public
from kms.enclave.bridge import Enclave, MemoryStore
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.service.evidence import install_evidence
from kms.sim.qe import SimQuotingEnclave
from tests.auditor import AUDITOR, auditor_public

ENC, DEC, DESCRIBE = pb.OP_ENCRYPT, pb.OP_DECRYPT, pb.OP_DESCRIBE


@pytest.fixture
def parties(build, tmp_path):
    store = MemoryStore()
    with Enclave(tmp_path / "data", store=store) as enclave:
        cert = install_evidence(enclave, SimQuotingEnclave.open(tmp_path / "data")).certificate

        def channel(creds: Credentials) -> SessionChannel:
            sid = enclave.session_open()
            return SessionChannel(lambda d: enclave.session_feed(sid, d)[0], creds, cert)

        alice, bob = Credentials.generate("alice"), Credentials.generate("bob")
        admin = channel(alice)
        admin.call(pb.Request(init=pb.InitRequest(admin_name="alice", threshold=1, recovery_public_keys=[
            raw_public(x25519.X25519PrivateKey.generate())], auditor_public_keys=auditor_public())))
        admin.call(pb.Request(add_principal=pb.AddPrincipalRequest(principal_id=bob.principal_id, name="bob",
                                                                   role=pb.USER)))
        kid = admin.call(pb.Request(create_key=pb.CreateKeyRequest(
            spec=pb.SYMMETRIC_DEFAULT, usage=pb.ENCRYPT_DECRYPT))).key_metadata.key_id
        yield enclave, store, admin, channel(bob), bob.principal_id, kid


def ctx(**kv: str) -> list[pb.ContextEntry]:
    return [pb.ContextEntry(key=k.encode(), value=v.encode()) for k, v in kv.items()]


def cond(**kv: str) -> list[pb.ContextCondition]:
    return [pb.ContextCondition(key=k.encode(), value=v.encode()) for k, v in kv.items()]


def test_policy_statement_with_context_condition(parties) -> None:
    enclave, _, admin, user, bob, kid = parties
    before = admin.call(pb.Request(describe_key=pb.DescribeKeyRequest(key_id=kid))).key_metadata.policy_hash
    statement = pb.PolicyStatement(principal=bob, operations=ENC | DESCRIBE, conditions=cond(tenant="a"))
    after = admin.call(pb.Request(put_key_policy=pb.PutKeyPolicyRequest(key_id=kid, statements=[statement])))
    assert after.key_metadata.policy_hash != before and len(before) == 32
    ok = user.call(pb.Request(encrypt=pb.EncryptRequest(key_id=kid, plaintext=b"x", context=ctx(tenant="a", app="z"))))
    for bad_ctx in ([], ctx(tenant="b")):
        with pytest.raises(errors.PermissionDenied):
            user.call(pb.Request(encrypt=pb.EncryptRequest(key_id=kid, plaintext=b"x", context=bad_ctx)))
    with pytest.raises(errors.PermissionDenied):  # no decrypt in the statement
        user.call(pb.Request(decrypt=pb.DecryptRequest(ciphertext=ok.encrypt.ciphertext,
                                                       context=ctx(tenant="a", app="z"))))
    audit = verify_chain(enclave._store.audit, enclave.identity().audit_public_key, auditor_key=AUDITOR)
    assert audit.ok and audit.bodies[-1].policy_hash == after.key_metadata.policy_hash


def test_grants_expire_and_can_be_revoked(parties) -> None:
    _, _, admin, user, bob, kid = parties
    now = 1_800_000_000
    grants = admin.call(pb.Request(host_time=now, create_grant=pb.CreateGrantRequest(
        key_id=kid, grantee=bob, operations=ENC | DEC, expires_at=now + 3600))).grants.grants
    assert len(grants) == 1 and len(grants[0].grant_id) == 16
    ct = user.call(pb.Request(encrypt=pb.EncryptRequest(key_id=kid, plaintext=b"g"))).encrypt.ciphertext
    assert user.call(pb.Request(decrypt=pb.DecryptRequest(ciphertext=ct))).decrypt.plaintext == b"g"
    listed = admin.call(pb.Request(list_grants=pb.ListGrantsRequest(key_id=kid))).grants.grants
    assert [g.grant_id for g in listed] == [grants[0].grant_id]
    admin.call(pb.Request(revoke_grant=pb.RevokeGrantRequest(key_id=kid, grant_id=grants[0].grant_id)))
    with pytest.raises(errors.PermissionDenied):
        user.call(pb.Request(decrypt=pb.DecryptRequest(ciphertext=ct)))
    with pytest.raises(errors.PermissionDenied):  # users cannot grant themselves anything
        user.call(pb.Request(create_grant=pb.CreateGrantRequest(key_id=kid, grantee=bob, operations=DEC)))


def test_expired_grant_is_refused(parties) -> None:
    _enclave, _, admin, user, bob, kid = parties
    import time

    now = int(time.time())
    admin.call(pb.Request(create_grant=pb.CreateGrantRequest(key_id=kid, grantee=bob, operations=ENC,
                                                             expires_at=now + 2)))
    user.call(pb.Request(encrypt=pb.EncryptRequest(key_id=kid, plaintext=b"in time")))
    time.sleep(3)  # the session passes host time to the enclave with each feed
    with pytest.raises(errors.PermissionDenied):
        user.call(pb.Request(encrypt=pb.EncryptRequest(key_id=kid, plaintext=b"too late")))


def test_invalid_policy_and_grant_requests(parties) -> None:
    _, _, admin, _, bob, kid = parties
    for statement in (pb.PolicyStatement(principal=bob, operations=0),
                      pb.PolicyStatement(principal=b"short", operations=ENC),
                      pb.PolicyStatement(principal=bob, operations=1 << 12)):
        with pytest.raises(errors.InvalidRequest):
            admin.call(pb.Request(put_key_policy=pb.PutKeyPolicyRequest(key_id=kid, statements=[statement])))
    with pytest.raises(errors.InvalidRequest):
        admin.call(pb.Request(create_grant=pb.CreateGrantRequest(key_id=kid, grantee=bob, operations=ENC,
                                                                 expires_at=1)))


def test_a_user_without_rights_learns_nothing_of_a_key(parties) -> None:
    """Authorization comes before key state: absent, disabled, pending deletion or destroyed,
    a key the user may not use is PERMISSION_DENIED, and so is an alias that does not exist.
    Admins (who may use every key) still learn that a key or alias does not exist."""
    _, _, admin, user, _, kid = parties
    disabled = admin.call(pb.Request(create_key=pb.CreateKeyRequest(
        spec=pb.SYMMETRIC_DEFAULT, usage=pb.ENCRYPT_DECRYPT))).key_metadata.key_id
    admin.call(pb.Request(set_key_state=pb.SetKeyStateRequest(key_id=disabled, state=pb.DISABLED)))
    pending = admin.call(pb.Request(create_key=pb.CreateKeyRequest(
        spec=pb.SYMMETRIC_DEFAULT, usage=pb.ENCRYPT_DECRYPT))).key_metadata.key_id
    admin.call(pb.Request(schedule_key_deletion=pb.ScheduleKeyDeletionRequest(key_id=pending, pending_window_days=7)))
    absent = "0b7e9a3c-0000-4000-8000-000000000001"
    for key in (kid, disabled, pending, absent, "alias/none-such"):
        for request in (pb.Request(describe_key=pb.DescribeKeyRequest(key_id=key)),
                        pb.Request(encrypt=pb.EncryptRequest(key_id=key, plaintext=b"x"))):
            with pytest.raises(errors.PermissionDenied):
                user.call(request)
    with pytest.raises(errors.NotFound):
        admin.call(pb.Request(describe_key=pb.DescribeKeyRequest(key_id=absent)))
    with pytest.raises(errors.NotFound):
        admin.call(pb.Request(describe_key=pb.DescribeKeyRequest(key_id="alias/none-such")))
