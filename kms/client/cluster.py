"""Cluster operations of KmsClient (admins): the domain's replicas and its replica policy (docs/cluster.md)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kms.client.operations import Operations
from kms.proto.enclave.v1 import boundary_pb2 as pb

REPLICA_ID_BYTES = 32
# The TCB statuses a joining replica's platform may have, by the names Intel's TCB Info uses.
TCB_STATUSES = {"UpToDate": pb.TCB_UP_TO_DATE, "SWHardeningNeeded": pb.TCB_SW_HARDENING_NEEDED,
                "ConfigurationNeeded": pb.TCB_CONFIGURATION_NEEDED,
                "ConfigurationAndSWHardeningNeeded": pb.TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED,
                "OutOfDate": pb.TCB_OUT_OF_DATE,
                "OutOfDateConfigurationNeeded": pb.TCB_OUT_OF_DATE_CONFIGURATION_NEEDED}


@dataclass(frozen=True)
class Replica:
    """One replica of the domain: its id (SHA-256 of its enclave's join key), status and enclave identity."""

    replica_id: bytes
    status: str            # PENDING, APPROVED or REMOVED
    name: str              # the label its host gave (untrusted)
    mrenclave: bytes
    mrsigner: bytes
    isv_prod_id: int
    isv_svn: int
    updated_at: int
    join_public_key: bytes  # X25519; replica_id is its SHA-256

    @classmethod
    def from_pb(cls, r: pb.Replica) -> Replica:
        return cls(bytes(r.replica_id), pb.ReplicaStatus.Name(r.status).removeprefix("REPLICA_"), r.name,
                   bytes(r.mrenclave), bytes(r.mrsigner), r.isv_prod_id, r.isv_svn, r.updated_at,
                   bytes(r.join_public_key))

    def to_dict(self) -> dict[str, Any]:
        return {"replica_id": self.replica_id.hex(), "status": self.status, "name": self.name,
                "isv_svn": self.isv_svn, "mrenclave": self.mrenclave.hex(), "mrsigner": self.mrsigner.hex(),
                "isv_prod_id": self.isv_prod_id, "updated_at": self.updated_at}


@dataclass(frozen=True)
class ReplicaPolicy:
    """What a joining replica's enclave must be, beyond the same MRSIGNER and product and no DEBUG (always)."""

    min_isv_svn: int
    tcb_statuses: frozenset[str] = field(default_factory=lambda: frozenset({"UpToDate"}))
    auto_join: bool = False
    # quote roots trusted besides Intel's (uncompressed P-256 points): the simulated platforms' roots
    extra_roots_insecure: tuple[bytes, ...] = ()

    @classmethod
    def from_pb(cls, p: pb.ReplicaPolicy) -> ReplicaPolicy:
        statuses = frozenset(name for name, bit in TCB_STATUSES.items() if p.allowed_tcb_statuses & bit)
        return cls(p.min_isv_svn, statuses, p.auto_join, tuple(bytes(r) for r in p.extra_roots_insecure))

    def to_pb(self) -> pb.ReplicaPolicy:
        unknown = set(self.tcb_statuses) - set(TCB_STATUSES)
        if unknown or not self.tcb_statuses:
            raise ValueError(f"TCB statuses are one or more of {', '.join(TCB_STATUSES)}, not {sorted(unknown)}")
        if not 0 <= self.min_isv_svn <= 0xFFFF:
            raise ValueError("min_isv_svn is 0..65535")
        mask = 0
        for name in self.tcb_statuses:
            mask |= TCB_STATUSES[name]
        if any(len(r) != 65 or r[0] != 4 for r in self.extra_roots_insecure) or len(self.extra_roots_insecure) > 4:
            raise ValueError("extra roots are 1..4 uncompressed P-256 points (65 bytes)")
        return pb.ReplicaPolicy(min_isv_svn=self.min_isv_svn, allowed_tcb_statuses=mask, auto_join=self.auto_join,
                                extra_roots_insecure=list(self.extra_roots_insecure))

    def to_dict(self) -> dict[str, Any]:
        return {"min_isv_svn": self.min_isv_svn, "tcb_statuses": sorted(self.tcb_statuses),
                "auto_join": self.auto_join, "extra_roots_insecure": [r.hex() for r in self.extra_roots_insecure]}


@dataclass(frozen=True)
class Cluster:
    """The answer of every cluster operation: the replicas, the policy, and which replica answered."""

    replicas: list[Replica]
    policy: ReplicaPolicy
    self_replica_id: bytes

    @classmethod
    def from_pb(cls, r: pb.ReplicaList) -> Cluster:
        return cls([Replica.from_pb(x) for x in r.replicas], ReplicaPolicy.from_pb(r.policy), bytes(r.self_replica_id))


def _replica_id(replica_id: bytes) -> bytes:
    if len(replica_id) != REPLICA_ID_BYTES:
        raise ValueError(f"a replica id is {REPLICA_ID_BYTES} bytes")
    return replica_id


class ClusterOperations(Operations):
    """Mixin: list_replicas, approve_replica, remove_replica, set_replica_policy."""

    def list_replicas(self) -> Cluster:
        return Cluster.from_pb(self._call(pb.Request(list_replicas=pb.ListReplicasRequest())).replicas)

    def approve_replica(self, replica_id: bytes) -> Cluster:
        """Let a pending replica receive the domain key and serve (a removed one never comes back)."""
        req = pb.ReplicaIdRequest(replica_id=_replica_id(replica_id))
        return Cluster.from_pb(self._call(pb.Request(approve_replica=req)).replicas)

    def remove_replica(self, replica_id: bytes) -> Cluster:
        """Remove a replica for good (not the one answering, nor the last approved one): refused from then on."""
        req = pb.ReplicaIdRequest(replica_id=_replica_id(replica_id))
        return Cluster.from_pb(self._call(pb.Request(remove_replica=req)).replicas)

    def set_replica_policy(self, min_isv_svn: int, tcb_statuses: Iterable[str] = ("UpToDate",), *,
                           auto_join: bool = False, extra_roots_insecure: Iterable[bytes] = ()) -> Cluster:
        """Replace the replica policy; auto_join approves a joining replica that meets it without an admin;
        extra_roots_insecure trusts quote roots besides Intel's (the simulated platforms': never in production)."""
        policy = ReplicaPolicy(min_isv_svn, frozenset(tcb_statuses), auto_join, tuple(extra_roots_insecure)).to_pb()
        req = pb.SetReplicaPolicyRequest(policy=policy)
        return Cluster.from_pb(self._call(pb.Request(set_replica_policy=req)).replicas)
