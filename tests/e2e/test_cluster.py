"""Replicas as real `kms serve` processes sharing one store (docs/cluster.md): each on its own data directory
(its own simulated CPU and sealed domain key), all on one store (SQLite `--store-dir`, or PostgreSQL). A new
replica asks to join through the store; it serves nothing until an admin approves it, then its enclave receives
the domain key from a running replica's enclave (each verified the other's quote inside) and serves the domain; a
DEBUG build, another signer's enclave and a lower ISVSVN never receive it, even with auto-join on. Replicas follow
the shared state log: a grant revoked through one is refused by the other's next request; a removed replica
refuses everything, also after a restart with its sealed key."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kms import errors
from kms.client import Credentials, KmsClient
from kms.client.errors import ClientError
from kms.sim import SimPlatform
from tests.auditor import auditor_public
from tests.e2e.conftest import anchor_for, policy_for, recovery_public, store_flags
from tests.e2e.server import ServerProcess
from tests.integration.test_replica_join import signed

POLL = "--cluster-poll-s=0.2"


def until(check: Callable[[], object], timeout: float = 30, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or check}")


def client(server: ServerProcess, creds: Credentials, domain: bytes) -> KmsClient:
    return KmsClient(server.api, credentials=creds, policy=policy_for(server), trust_anchor=anchor_for(server),
                     domain_id=domain)


@pytest.fixture(params=["sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> list[str]:
    """The flags that put a replica on the shared store: SQLite (a's file, `--store-dir`) by default; the
    tests that use `pair` run on PostgreSQL too."""
    return [f"--store-dir={tmp_path / 'a'}"] if request.param == "sqlite" else \
        store_flags(request, "postgres", tmp_path / "secrets")


@pytest.fixture
def first(build: Path, tmp_path: Path, store: list[str]) -> Iterator[tuple[ServerProcess, Credentials, bytes]]:
    srv = ServerProcess(tmp_path / "a", POLL, "--replica-name=a", *store)
    creds = Credentials.generate("alice")
    with KmsClient(srv.api, credentials=creds, policy=policy_for(srv), trust_anchor=anchor_for(srv),
                   new_domain=True) as c:
        c.init(recovery_public(1), threshold=1, admin_name="alice", auditor_public_keys=auditor_public())
        domain = c.domain_id
    assert domain is not None
    yield srv, creds, domain
    srv.stop()


def roots(*data_dirs: Path) -> list[bytes]:
    return [SimPlatform(d).trust_anchor().public_point for d in data_dirs]


def test_join_pending_approved_serving(first, tmp_path: Path, store: list[str]) -> None:
    a, alice, domain = first
    with client(a, alice, domain) as admin:
        kid = admin.create_key().key_id
        ct = admin.encrypt(kid, b"before the join").ciphertext
    b = ServerProcess(tmp_path / "b", POLL, "--replica-name=b", *store)
    try:
        _set_roots(a, alice, domain, roots(tmp_path / "a", tmp_path / "b"))
        pending = until(lambda: _replica(a, alice, domain, "b"), what="b's join request")
        assert pending.status == "PENDING"
        with pytest.raises((ClientError, errors.KmsError)):  # b serves nothing: it has no domain
            client(b, alice, domain).close()
        assert not (tmp_path / "b" / "domain-key.sealed").exists()

        with client(a, alice, domain) as admin:
            admin.approve_replica(pending.replica_id)
        until(lambda: (tmp_path / "b" / "domain-key.sealed").exists(), what="b's sealed domain key")
        until(lambda: any("joined the domain" in line for line in b.lines), what="b joined")
        with client(b, alice, domain) as via_b:
            assert via_b.decrypt(ct).plaintext == b"before the join"
            assert via_b.list_replicas().self_replica_id == pending.replica_id
        b.stop()  # and back: it loads its own sealed key, no join
        b = ServerProcess(tmp_path / "b", POLL, *store)
        with client(b, alice, domain) as via_b:
            assert via_b.decrypt(ct).plaintext == b"before the join"
    finally:
        b.stop()


@pytest.mark.parametrize(("variant", "code"), [("debug", "PERMISSION_DENIED"), ("other-signer", "PERMISSION_DENIED"),
                                             ("lower-isvsvn", "PEER_MISMATCH")])
def test_other_enclaves_never_get_the_key(first, tmp_path: Path, store: list[str], variant: str, code: str) -> None:
    """A DEBUG build, an enclave signed with another key, or one with an ISVSVN below the policy's asks to
    join with auto-join on (only its identity stands in the way): refused inside, not recorded, no key."""
    a, alice, domain = first
    build = tmp_path / f"{variant}-build"
    build.mkdir()
    for name in ("kms_enclave.so", "libkms_simcpu.so"):
        shutil.copy(Path("build") / name, build / name)
    if variant == "other-signer":
        key = tmp_path / "other-signer.pem"
        subprocess.run([sys.executable, "-m", "kms", "enclave", "keygen", "--out", str(key)], check=True,
                       capture_output=True)
        sig = signed(tmp_path, variant, key=key)
    else:
        sig = signed(tmp_path, variant, **({"debug": True} if variant == "debug" else {"isv_svn": 0}))
    shutil.copy(sig, build / "kms_enclave.sigstruct")
    b = ServerProcess(tmp_path / "b", POLL, "--replica-name=b", *store,
                      env={"KMS_BUILD_DIR": str(build)})
    try:
        body = b.evidence().quote[48:432]
        assert (body[48] & 0x2 != 0) == (variant == "debug")  # the quoted report body: DEBUG flag
        assert (body[128:160] != a.mrsigner) == (variant == "other-signer")
        assert int.from_bytes(body[258:260], "little") == (0 if variant == "lower-isvsvn" else 1)
        with client(a, alice, domain) as admin:
            admin.set_replica_policy(1, ["UpToDate"], auto_join=True,
                                     extra_roots_insecure=roots(tmp_path / "a", tmp_path / "b"))
        until(lambda: any("join refused" in line and code in line for line in a.lines),
              what=f"a's refusal ({code})")
        time.sleep(1)  # several more rounds
        assert not (tmp_path / "b" / "domain-key.sealed").exists()
        assert _replica(a, alice, domain, "b") is None  # not even recorded
    finally:
        b.stop()


def _set_roots(server: ServerProcess, creds: Credentials, domain: bytes, points: list[bytes]) -> None:
    with client(server, creds, domain) as admin:
        p = admin.list_replicas().policy
        admin.set_replica_policy(p.min_isv_svn, p.tcb_statuses, auto_join=p.auto_join, extra_roots_insecure=points)


def _replica(server: ServerProcess, creds: Credentials, domain: bytes, name: str):
    with client(server, creds, domain) as admin:
        found = [r for r in admin.list_replicas().replicas if r.name == name]
    return found[0] if found else None


@pytest.fixture
def pair(first, tmp_path: Path, store: list[str]) -> Iterator[tuple[ServerProcess, ServerProcess, Credentials, bytes]]:
    """Two replicas of one domain: `a` made it, `b` joined (auto-join) and serves."""
    a, alice, domain = first
    with client(a, alice, domain) as admin:
        admin.set_replica_policy(1, ["UpToDate"], auto_join=True,
                                 extra_roots_insecure=roots(tmp_path / "a", tmp_path / "b"))
    b = ServerProcess(tmp_path / "b", POLL, "--replica-name=b", *store)
    try:
        until(lambda: any("joined the domain" in line for line in b.lines), what="b joined")
        yield a, b, alice, domain
    finally:
        b.stop()


@pytest.mark.parametrize("store", ["sqlite", "postgres"], indirect=True)
def test_a_revoked_grant_is_refused_through_the_other_replica(pair) -> None:
    """The bound (docs/cluster.md): a change acknowledged by one replica is enforced by every other for
    each request it starts after that acknowledgement; each audited request follows the shared log first."""
    a, b, alice, domain = pair
    bob = Credentials.generate("bob")
    with client(a, alice, domain) as admin:
        admin.add_principal(bob.principal_id, "bob", "USER")
        kid = admin.create_key().key_id
        grant = admin.create_grant(kid, bob.principal_id, ["encrypt", "decrypt"])
    with client(b, bob, domain) as via_b, client(a, alice, domain) as admin:
        ct = via_b.encrypt(kid, b"granted on a, used on b").ciphertext  # b follows a's principal, key, grant
        assert via_b.decrypt(ct).plaintext == b"granted on a, used on b"
        admin.revoke_grant(kid, grant.grant_id)  # acknowledged by a ...
        with pytest.raises(errors.PermissionDenied):  # ... so refused by b's very next request
            via_b.encrypt(kid, b"after the revocation")
        with pytest.raises(errors.PermissionDenied):
            via_b.decrypt(ct)
        again = admin.create_grant(kid, bob.principal_id, ["decrypt"])
        assert via_b.decrypt(ct).plaintext == b"granted on a, used on b"  # and back, the same way
        with client(b, alice, domain) as admin_b:  # changes made on b are enforced on a too
            admin_b.revoke_grant(kid, again.grant_id)
        with client(a, bob, domain) as via_a, pytest.raises(errors.PermissionDenied):
            via_a.decrypt(ct)


@pytest.mark.parametrize("store", ["sqlite", "postgres"], indirect=True)
def test_a_removed_replica_is_refused(pair, tmp_path: Path, store: list[str]) -> None:
    a, b, alice, domain = pair
    with client(b, alice, domain) as admin_b:
        me = admin_b.list_replicas().self_replica_id
        with pytest.raises(errors.InvalidRequest):  # not itself: a removal goes through a replica that stays
            admin_b.remove_replica(me)
    with client(a, alice, domain) as admin:
        kid = admin.create_key().key_id
        admin.remove_replica(me)
        assert admin.encrypt(kid, b"a still serves").ciphertext
    with client(b, alice, domain) as via_b, pytest.raises(errors.ReplicaNotApproved):
        via_b.create_key()
    b.stop()  # its sealed key is still on its disk: it starts, and refuses everything
    assert (tmp_path / "b" / "domain-key.sealed").exists()
    b2 = ServerProcess(tmp_path / "b", POLL, *store)
    try:
        with client(b2, alice, domain) as via_b, pytest.raises(errors.ReplicaNotApproved):
            via_b.encrypt(kid, b"x")
    finally:
        b2.stop()
