"""The host puts back older, authentic revisions of records (DESIGN.md §1 item 5, issue: live
per-record rollback). For every record type, every older revision is refused with
KMS_ERR_STALE_RECORD while the enclave runs, after the host flushed the enclave's record cache
through its own call path, and the store is refused at the next start: revoked grants stay
revoked, disabled keys stay disabled, deleted aliases stay deleted, removed or demoted principals
stay so, and a validator's guard cannot be moved back to sign a conflicting vote."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519

from kms import errors
from kms.client.channel import SessionChannel
from kms.client.credentials import Credentials
from kms.client.recovery import raw_public
from kms.enclave.bridge import Enclave, MemoryStore
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.service.evidence import install_evidence
from kms.sim.qe import SimQuotingEnclave
from tests.auditor import auditor_public
from tests.integration.test_validator_guard import CHAIN, vote

CACHE = 64  # KMS_RECORD_CACHE_COUNT


class World:
    """An initialized domain on an in-memory store: alice (admin), bob (user), the host path."""

    def __init__(self, build, tmp) -> None:
        self.data, self.store = tmp / "data", MemoryStore()
        self.enclave = Enclave(self.data, store=self.store)
        self.qe = SimQuotingEnclave.open(self.data)
        self.alice, self.bob = Credentials.generate("alice"), Credentials.generate("bob")
        self.admin = self.channel(self.alice)
        self.admin.call(pb.Request(init=pb.InitRequest(admin_name="alice", threshold=1, recovery_public_keys=[
            raw_public(x25519.X25519PrivateKey.generate())], auditor_public_keys=auditor_public())))
        self.admin.call(pb.Request(add_principal=pb.AddPrincipalRequest(
            principal_id=self.bob.principal_id, name="bob", role=pb.USER)))
        self.user = self.channel(self.bob)

    def channel(self, creds: Credentials) -> SessionChannel:
        cert = install_evidence(self.enclave, self.qe).certificate
        sid = self.enclave.session_open()
        return SessionChannel(lambda d: self.enclave.session_feed(sid, d)[0], creds, cert)

    def flush_cache(self) -> None:
        """The host's own path: more host-owned keys than the cache holds, each used once."""
        for _ in range(CACHE + 2):
            kid = self.enclave.call(pb.Request(create_key=pb.CreateKeyRequest(
                spec=pb.SYMMETRIC_DEFAULT, usage=pb.ENCRYPT_DECRYPT))).key_metadata.key_id
            self.enclave.call(pb.Request(describe_key=pb.DescribeKeyRequest(key_id=kid)))

    def restart(self) -> None:
        """Stop and load the domain again from the same store (the host's restart)."""
        sealed = self.store["sealed-domain-key"][1]
        self.enclave.close()
        self.enclave = Enclave(self.data, store=self.store)
        self.enclave.call(pb.Request(load_domain_key=pb.LoadDomainKeyRequest(sealed_domain_key=sealed)))


@pytest.fixture
def world(build, tmp_path):
    w = World(build, tmp_path)
    yield w
    w.enclave.close()


def record_history(w: World, name: str, changes) -> list[tuple[int, bytes]]:
    """Apply each change and keep every revision the store held for name (oldest first)."""
    history = [w.store[name]]
    for change in changes:
        change()
        history.append(w.store[name])
    return history


def replay_each(w: World, name: str, history, attempt) -> None:
    """Put back every older revision, flush, and check the attempt is refused as stale."""
    current = history[-1]
    for old in history[:-1]:
        w.store[name] = old
        w.flush_cache()
        with pytest.raises(errors.StaleRecord):
            attempt()
    w.store[name] = current


def test_revoked_grants_and_disabled_keys_stay_so(world: World) -> None:
    w = world
    kid = w.admin.call(pb.Request(create_key=pb.CreateKeyRequest(spec=pb.SYMMETRIC_DEFAULT,
                                                                 usage=pb.ENCRYPT_DECRYPT))).key_metadata.key_id
    grant = pb.CreateGrantRequest(key_id=kid, grantee=w.bob.principal_id, operations=pb.OP_ENCRYPT)
    granted: list[bytes] = []
    history = record_history(w, kid, [
        lambda: granted.extend(g.grant_id for g in w.admin.call(pb.Request(create_grant=grant)).grants.grants),
        lambda: w.admin.call(pb.Request(revoke_grant=pb.RevokeGrantRequest(key_id=kid, grant_id=granted[0]))),
        lambda: w.admin.call(pb.Request(set_key_state=pb.SetKeyStateRequest(key_id=kid, state=pb.DISABLED)))])
    assert [r for r, _ in history] == [1, 2, 3, 4]

    def bob_encrypts() -> None:
        w.user.call(pb.Request(encrypt=pb.EncryptRequest(key_id=kid, plaintext=b"x")))

    def admin_encrypts() -> None:
        w.admin.call(pb.Request(encrypt=pb.EncryptRequest(key_id=kid, plaintext=b"x")))

    replay_each(w, kid, history, bob_encrypts)    # revision 2 had bob's grant
    replay_each(w, kid, history, admin_encrypts)  # revisions 1-3 were enabled
    with pytest.raises(errors.PermissionDenied):  # the current record: revoked
        bob_encrypts()
    with pytest.raises(errors.KeyStateError):     # and disabled
        admin_encrypts()
    w.store[kid] = history[1]
    with pytest.raises(errors.StaleRecord) as refused:  # the next start refuses the store, naming it
        w.restart()
    assert kid in str(refused.value) and "revision 2" in str(refused.value)


def test_deleted_aliases_stay_deleted(world: World) -> None:
    w = world
    kid = w.admin.call(pb.Request(create_key=pb.CreateKeyRequest(spec=pb.SYMMETRIC_DEFAULT,
                                                                 usage=pb.ENCRYPT_DECRYPT))).key_metadata.key_id
    other = w.admin.call(pb.Request(create_key=pb.CreateKeyRequest(spec=pb.SYMMETRIC_DEFAULT,
                                                                   usage=pb.ENCRYPT_DECRYPT))).key_metadata.key_id
    w.admin.call(pb.Request(create_alias=pb.AliasRequest(alias="alias/payroll", key_id=kid)))
    history = record_history(w, "alias/payroll", [
        lambda: w.admin.call(pb.Request(update_alias=pb.AliasRequest(alias="alias/payroll", key_id=other))),
        lambda: w.admin.call(pb.Request(delete_alias=pb.AliasRequest(alias="alias/payroll")))])

    def use_alias() -> None:
        w.admin.call(pb.Request(encrypt=pb.EncryptRequest(key_id="alias/payroll", plaintext=b"x")))

    replay_each(w, "alias/payroll", history, use_alias)
    with pytest.raises(errors.NotFound):
        use_alias()


def test_removed_and_demoted_principals_stay_so(world: World) -> None:
    w = world
    carol = Credentials.generate("carol")
    history = record_history(w, "domain-state", [
        lambda: w.admin.call(pb.Request(add_principal=pb.AddPrincipalRequest(
            principal_id=carol.principal_id, name="carol", role=pb.ADMIN))),
        lambda: w.admin.call(pb.Request(add_principal=pb.AddPrincipalRequest(
            principal_id=carol.principal_id, name="carol", role=pb.USER))),   # demoted
        lambda: w.admin.call(pb.Request(remove_principal=pb.RemovePrincipalRequest(
            principal_id=w.bob.principal_id)))])                                 # removed
    with pytest.raises(errors.PermissionDenied):
        w.user.call(pb.Request(generate_random=pb.GenerateRandomRequest(length=8)))
    # The domain state is cached in the enclave from its last change; the host cannot flush that
    # cache, so an older copy bites only at a restart, and that start is refused.
    for old in history[:-1]:
        w.store["domain-state"] = old
        with pytest.raises(errors.StaleRecord) as refused:
            w.restart()
        assert "domain-state" in str(refused.value)
    w.store["domain-state"] = history[-1]
    w.restart()
    w.admin = w.channel(w.alice)
    w.user = w.channel(w.bob)
    with pytest.raises(errors.PermissionDenied):  # bob stays removed
        w.user.call(pb.Request(generate_random=pb.GenerateRandomRequest(length=8)))
    admins = [p.name for p in w.admin.call(pb.Request(list_principals=pb.ListPrincipalsRequest())).principals.principals
              if p.role == pb.ADMIN]
    assert admins == ["alice"]  # carol stays demoted


def test_validator_guard_cannot_be_moved_back(world: World) -> None:
    w = world
    kid = w.admin.call(pb.Request(create_key=pb.CreateKeyRequest(spec=pb.ED25519, usage=pb.VALIDATOR,
                                                                 chain_id=CHAIN))).key_metadata.key_id
    row = f"vstate-{kid}"

    def sign(height: int, block: bytes):
        req = pb.ValidatorSignRequest(key_id=kid, chain_id=CHAIN, kind=pb.VOTE, sign_bytes=vote(height, 0, 2,
                                                                                               block=block))
        return w.admin.call(pb.Request(validator_sign=req)).validator_sign

    history = record_history(w, row, [lambda h=h: sign(h, b"\x11" * 32) for h in (1, 2, 3)])
    for old in history[:-1]:
        w.store[row] = old
        w.flush_cache()
        with pytest.raises(errors.StaleRecord):  # a conflicting prevote at a height already signed
            sign(2, b"\x99" * 32)
    w.store[row] = history[-1]
    with pytest.raises(errors.DoubleSignRefused):
        sign(2, b"\x99" * 32)
    assert sign(4, b"\x11" * 32).signature
