"""The attested join of a replica with the real enclave on two simulated platforms sharing one store
(docs/cluster.md): each enclave verifies the other's DCAP quote inside; a pending replica gets nothing, an
approved one gets the domain key and serves the domain's keys; a removed one, an enclave of another signer, a
DEBUG build, a lower ISVSVN, an untrusted root and a tampered grant never get the key."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kms import errors
from kms.client.channel import SessionChannel
from kms.client.credentials import Credentials
from kms.enclave.bridge import Enclave, MemoryStore
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.service.evidence import install_evidence, quote_collateral
from kms.sim import SimPlatform
from kms.sim.qe import SimQuotingEnclave
from tests.auditor import auditor_public

REPO = Path(__file__).resolve().parents[2]
SEALED = "sealed-domain-key"


class NodeStore:
    """The shared store, but the sealed domain key stays on the node (as the real store keeps it)."""

    def __init__(self, shared: MemoryStore) -> None:
        self.shared, self.sealed = shared, MemoryStore()

    def _for(self, key_id: str) -> MemoryStore:
        return self.sealed if key_id == SEALED else self.shared

    def get(self, key_id: str) -> bytes | None:
        return self._for(key_id).get(key_id)

    def put(self, key_id: str, expected_revision: int, revision: int, blob: bytes) -> None:
        self._for(key_id).put(key_id, expected_revision, revision, blob)

    def __getattr__(self, name: str) -> object:
        return getattr(self.shared, name)


class Node:
    """One enclave on its own simulated platform (data directory), its image signed as asked."""

    def __init__(self, root: Path, name: str, shared: MemoryStore, sigstruct: Path | None = None) -> None:
        build = REPO / "build"
        image = root / f"{name}.so"
        shutil.copy(build / "kms_enclave.so", image)
        shutil.copy(sigstruct or build / "kms_enclave.sigstruct", image.with_suffix(".sigstruct"))
        self.data = root / name
        self.store = NodeStore(shared)
        self.enclave = Enclave(self.data, image=image, store=self.store)
        self.qe = SimQuotingEnclave.open(self.data)
        self.cert = install_evidence(self.enclave, self.qe).certificate

    def call(self, **op: object) -> pb.Response:
        return self.enclave.call(pb.Request(**op))

    def session(self, creds: Credentials) -> SessionChannel:
        self.cert = install_evidence(self.enclave, self.qe).certificate  # the domain claim, if any, is new
        sid = self.enclave.session_open()
        return SessionChannel(lambda data: self.enclave.session_feed(sid, data)[0], creds, self.cert)

    def root_point(self) -> bytes:
        return SimPlatform(self.data).trust_anchor().public_point

    def join_request(self, sponsor: Node, name: str = "node-b") -> pb.ReplicaAdmitRequest:
        """What the joiner's host posts: its enclave's join key, quoted by its QE."""
        r = self.call(replica_join=pb.ReplicaJoinRequest(qe_target_info=self.qe.target_info())).replica_join
        quote = self.qe.quote(r.report)
        return pb.ReplicaAdmitRequest(quote=quote, join_public_key=r.join_public_key, name=name,
                                      qe_target_info=sponsor.qe.target_info(),
                                      collateral=quote_collateral(self.qe.collateral(quote)))

    def admit(self, request: pb.ReplicaAdmitRequest) -> pb.ReplicaAdmitResponse:
        """The sponsor's host: admit, and have the grant's report quoted."""
        r = self.call(replica_admit=request).replica_admit
        if r.status == pb.REPLICA_APPROVED:
            r.grant.sponsor_quote = self.qe.quote(r.report)
            r.grant.sponsor_collateral.CopyFrom(quote_collateral(self.qe.collateral(r.grant.sponsor_quote)))
        return r


def signed(tmp: Path, name: str, *, key: Path | None = None, **config: object) -> Path:
    """build/kms_enclave.so signed into a new SIGSTRUCT with config changes (and another key if given)."""
    text = (REPO / "enclave/config/enclave.toml").read_text()
    for field, value in config.items():
        lines = [f"{field} = {str(value).lower()}" if line.startswith(f"{field} =") else line
                 for line in text.splitlines()]
        text = "\n".join(lines) + "\n"
    cfg = tmp / f"{name}.toml"
    cfg.write_text(text)
    out = tmp / f"{name}.sigstruct"
    signer = key or REPO / ".local/dev-signer.pem"
    subprocess.run([sys.executable, "-m", "kms", "enclave", "sign", "--key", str(signer), "--config", str(cfg),
                    "--image", str(REPO / "build/kms_enclave.so"), "--out", str(out)], check=True, cwd=REPO,
                   capture_output=True)
    return out


@pytest.fixture
def cluster(build, tmp_path):
    shared, alice = MemoryStore(), Credentials.generate("alice")
    a = Node(tmp_path, "a", shared)
    admin = a.session(alice)
    admin.call(pb.Request(init=pb.InitRequest(admin_name="alice", recovery_public_keys=[bytes(range(1, 33))],
                                              threshold=1, auditor_public_keys=auditor_public())))
    yield tmp_path, shared, a, admin, alice
    a.enclave.close()


def set_policy(admin: SessionChannel, *roots: bytes, auto_join: bool = False) -> pb.ReplicaList:
    policy = pb.ReplicaPolicy(min_isv_svn=1, allowed_tcb_statuses=pb.TCB_UP_TO_DATE, auto_join=auto_join,
                              extra_roots_insecure=list(roots))
    return admin.call(pb.Request(set_replica_policy=pb.SetReplicaPolicyRequest(policy=policy))).replicas


def test_pending_approved_joined(cluster) -> None:
    tmp, shared, a, admin, alice = cluster
    kid = admin.call(pb.Request(create_key=pb.CreateKeyRequest(spec=pb.SYMMETRIC_DEFAULT,
                                                               usage=pb.ENCRYPT_DECRYPT))).key_metadata.key_id
    ct = admin.call(pb.Request(encrypt=pb.EncryptRequest(key_id=kid, plaintext=b"hello"))).encrypt.ciphertext
    b = Node(tmp, "b", shared)
    request = b.join_request(a)
    with pytest.raises(errors.PeerMismatch):  # b's simulated root is not trusted yet
        a.admit(request)
    set_policy(admin, b.root_point())  # the joiner's root only: the joiner will refuse the sponsor's
    assert a.admit(request).status == pb.REPLICA_PENDING
    with pytest.raises(errors.ReplicaNotApproved):  # still pending: nothing granted (and nothing audited)
        a.admit(request)
    listed = admin.call(pb.Request(list_replicas=pb.ListReplicasRequest())).replicas
    (joiner,) = [r for r in listed.replicas if r.name == "node-b"]
    assert joiner.status == pb.REPLICA_PENDING and joiner.isv_svn == 1
    assert joiner.mrsigner == listed.replicas[0].mrsigner
    assert joiner.replica_id == b.enclave.identity().replica_id
    with pytest.raises(errors.NotInitialized):  # b serves nothing: it has no domain key
        b.session(alice).call(pb.Request(list_keys=pb.ListKeysRequest()))

    admin.call(pb.Request(approve_replica=pb.ReplicaIdRequest(replica_id=joiner.replica_id)))
    granted = a.admit(request)
    assert granted.status == pb.REPLICA_APPROVED and len(granted.grant.wrapped_domain_key) == 48

    tampered = pb.ReplicaGrant()
    tampered.CopyFrom(granted.grant)
    wrapped = granted.grant.wrapped_domain_key
    tampered.wrapped_domain_key = bytes([wrapped[0] ^ 1]) + wrapped[1:]
    with pytest.raises(errors.PeerMismatch):  # the sponsor's REPORTDATA binds the wrapped key
        b.call(replica_join_complete=tampered)
    assert not b.enclave.identity().domain_loaded and b.store.get(SEALED) is None

    with pytest.raises(errors.PeerMismatch):  # the joiner checks the sponsor against the domain's policy too
        b.call(replica_join_complete=granted.grant)
    assert not b.enclave.identity().domain_loaded and b.store.get(SEALED) is None
    set_policy(admin, b.root_point(), a.root_point())
    granted = a.admit(request)
    done = b.call(replica_join_complete=granted.grant).load_domain_key
    assert done.domain_id == a.enclave.identity().domain_id and b.enclave.identity().domain_loaded
    assert b.store.get(SEALED) is not None and b.store.get(SEALED) != a.store.get(SEALED)  # sealed on b's CPU
    via_b = b.session(alice)
    assert via_b.call(pb.Request(decrypt=pb.DecryptRequest(ciphertext=ct))).decrypt.plaintext == b"hello"
    with pytest.raises(errors.InvalidRequest):  # DOMAIN_ALREADY_LOADED
        b.call(replica_join_complete=granted.grant)
    b.enclave.close()


def test_removed_replica_gets_nothing(cluster) -> None:
    tmp, shared, a, admin, _ = cluster
    b = Node(tmp, "b", shared)
    set_policy(admin, b.root_point(), auto_join=True)
    request = b.join_request(a)
    assert a.admit(request).status == pb.REPLICA_APPROVED  # auto-join
    rid = b.enclave.identity().replica_id
    admin.call(pb.Request(remove_replica=pb.ReplicaIdRequest(replica_id=rid)))
    with pytest.raises(errors.ReplicaNotApproved):
        a.admit(request)
    with pytest.raises(errors.PermissionDenied):  # a removal is for good
        admin.call(pb.Request(approve_replica=pb.ReplicaIdRequest(replica_id=rid)))
    b.enclave.close()


@pytest.mark.parametrize("variant", ["other-signer", "debug", "lower-isvsvn"])
def test_other_enclaves_never_get_the_key(cluster, variant: str) -> None:
    tmp, shared, a, admin, _ = cluster
    if variant == "other-signer":
        key = tmp / "other-signer.pem"
        subprocess.run([sys.executable, "-m", "kms", "enclave", "keygen", "--out", str(key)], check=True, cwd=REPO,
                       capture_output=True)
        sig = signed(tmp, variant, key=key)
    elif variant == "debug":
        sig = signed(tmp, variant, debug=True)
    else:
        sig = signed(tmp, variant, isv_svn=0)
    b = Node(tmp, "b", shared, sigstruct=sig)
    set_policy(admin, b.root_point(), auto_join=True)  # only the enclave's identity stands in the way
    with pytest.raises(errors.PermissionDenied) as refused:
        a.admit(b.join_request(a))
    # signer, product and DEBUG are PERMISSION_DENIED; an ISVSVN below the policy's is PEER_MISMATCH
    assert isinstance(refused.value, errors.PeerMismatch) == (variant == "lower-isvsvn"), refused.value
    listed = admin.call(pb.Request(list_replicas=pb.ListReplicasRequest())).replicas
    assert len(listed.replicas) == 1  # not even recorded
    b.enclave.close()


def test_a_sponsor_of_another_domain_is_refused(cluster) -> None:
    """A host runs an enclave of our signer with a domain of its own and grants that domain's key: the
    joiner's key opens no domain state of the shared store, so nothing is installed."""
    tmp, shared, _, _, _ = cluster
    b = Node(tmp, "b", shared)
    own = MemoryStore()
    c = Node(tmp, "c", own)
    host_admin = c.session(Credentials.generate("mallory"))
    host_admin.call(pb.Request(init=pb.InitRequest(admin_name="m", recovery_public_keys=[bytes(range(1, 33))],
                                                   threshold=1, auditor_public_keys=auditor_public())))
    set_policy(host_admin, b.root_point(), c.root_point(), auto_join=True)
    granted = c.admit(b.join_request(c))
    assert granted.status == pb.REPLICA_APPROVED
    with pytest.raises(errors.EnclaveFailure):
        b.call(replica_join_complete=granted.grant)
    assert not b.enclave.identity().domain_loaded and b.store.get(SEALED) is None
    for node in (b, c):
        node.enclave.close()
