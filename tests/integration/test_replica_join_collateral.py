"""The join's collateral, verified inside both enclaves (docs/cluster.md): with the simulated platform's
real-format collateral (DER CRLs, PEM chains, TCB Info v3 / QE Identity v2 signed over their exact JSON text)
a join is refused when the TCB status is not one the policy allows, when the TCB is Revoked, when the host
tampers with, re-signs, truncates, swaps or leaves out any piece, when a piece is expired, when the PCK leaf or
its CA is revoked, when the FMSPC differs; and the joiner refuses a sponsor whose own collateral fails the same
checks. A refusal records nothing and seals nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization

from kms import errors
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.service.evidence import quote_collateral
from kms.sim import SimPlatform, pki
from kms.sim.collateral import build_collateral, qe_identity_text, tcb_info_text
from kms.sim.levels import DEFAULT_CPUSVN, DEFAULT_PCESVN
from tests.integration.test_replica_join import SEALED, Node, cluster  # noqa: F401 (the fixture)

ALL = (pb.TCB_UP_TO_DATE | pb.TCB_SW_HARDENING_NEEDED | pb.TCB_CONFIGURATION_NEEDED
       | pb.TCB_CONFIGURATION_AND_SW_HARDENING_NEEDED | pb.TCB_OUT_OF_DATE | pb.TCB_OUT_OF_DATE_CONFIGURATION_NEEDED)
LONG_AGO = datetime.now(UTC) - timedelta(days=45)  # collateral issued then expired 15 days ago


def policy(admin, *roots: bytes, statuses: int = pb.TCB_UP_TO_DATE) -> None:
    p = pb.ReplicaPolicy(min_isv_svn=1, allowed_tcb_statuses=statuses, auto_join=True, extra_roots_insecure=roots)
    admin.call(pb.Request(set_replica_policy=pb.SetReplicaPolicyRequest(policy=p)))


def recorded(admin) -> int:
    return len(admin.call(pb.Request(list_replicas=pb.ListReplicasRequest())).replicas.replicas)


def node_at(tmp, name: str, shared, level: str | None = None, qe_isvsvn: int | None = None) -> Node:
    """A node whose simulated platform is at a TCB level (set before its enclave starts: CPUSVN is read then)."""
    if level is not None:
        SimPlatform(tmp / name).set_tcb(level, qe_isvsvn=qe_isvsvn)
    elif qe_isvsvn is not None:
        SimPlatform(tmp / name).set_tcb_svns(DEFAULT_CPUSVN, DEFAULT_PCESVN, qe_isvsvn=qe_isvsvn)
    return Node(tmp, name, shared)


@pytest.mark.parametrize(("level", "qe_isvsvn", "flag"), [
    ("SWHardeningNeeded", None, pb.TCB_SW_HARDENING_NEEDED),
    ("OutOfDate", None, pb.TCB_OUT_OF_DATE),
    ("ConfigurationNeeded", None, pb.TCB_CONFIGURATION_NEEDED),
    (None, 6, pb.TCB_OUT_OF_DATE),  # platform UpToDate, QE OutOfDate: converged to OutOfDate (QVL's rule)
    ("ConfigurationNeeded", 6, pb.TCB_OUT_OF_DATE_CONFIGURATION_NEEDED),
])
def test_tcb_status_must_be_allowed(cluster, level, qe_isvsvn, flag) -> None:  # noqa: F811
    tmp, shared, a, admin, _ = cluster
    b = node_at(tmp, "b", shared, level, qe_isvsvn)
    request = b.join_request(a)
    policy(admin, b.root_point(), statuses=ALL & ~flag)  # every status but the platform's
    with pytest.raises(errors.PeerMismatch):
        a.admit(request)
    assert recorded(admin) == 1
    policy(admin, b.root_point(), statuses=flag)
    assert a.admit(request).status == pb.REPLICA_APPROVED
    b.enclave.close()


def test_revoked_tcb_never_joins(cluster) -> None:  # noqa: F811
    tmp, shared, a, admin, _ = cluster
    for name, level, qe_isvsvn in (("b", "Revoked", None), ("c", None, 2)):  # the platform's TCB, the QE's
        node = node_at(tmp, name, shared, level, qe_isvsvn)
        policy(admin, node.root_point(), statuses=ALL)
        with pytest.raises(errors.PeerMismatch):
            a.admit(node.join_request(a))
        node.enclave.close()
    assert recorded(admin) == 1


Tamper = Callable[[pb.QuoteCollateral, SimPlatform, SimPlatform], None]


def _flip(field: str) -> Tamper:
    def tamper(c: pb.QuoteCollateral, own: SimPlatform, other: SimPlatform) -> None:
        value = getattr(c, field)
        setattr(c, field, value[:-1] + bytes([value[-1] ^ 1]))
    return tamper


def _truncate(field: str) -> Tamper:
    def tamper(c: pb.QuoteCollateral, own: SimPlatform, other: SimPlatform) -> None:
        setattr(c, field, getattr(c, field)[:-20])
    return tamper


def _clear(field: str) -> Tamper:
    return lambda c, own, other: c.ClearField(field)


def _resigned(field: str, body: Callable[[SimPlatform], bytes], key: str = "tcb-signing") -> Tamper:
    """A body the host made and signed with the platform's own key `key` (the chain is that key's)."""
    def tamper(c: pb.QuoteCollateral, own: SimPlatform, other: SimPlatform) -> None:
        text = body(own)
        setattr(c, field, text)
        setattr(c, f"{field}_signature", pki.raw_signature(own.key(key), text))
        if key != "tcb-signing":
            setattr(c, f"{field}_issuer_chain", pki.cert_pem(own.cas["processor"], own.root))
    return tamper


def _old_crl(field: str, name: str) -> Tamper:
    def tamper(c: pb.QuoteCollateral, own: SimPlatform, other: SimPlatform) -> None:
        setattr(c, field, own.crl(name, now=LONG_AGO).public_bytes(serialization.Encoding.DER))
    return tamper


def _other_platform(c: pb.QuoteCollateral, own: SimPlatform, other: SimPlatform) -> None:
    c.CopyFrom(quote_collateral(build_collateral(other).to_collateral()))


TAMPERS: dict[str, Tamper] = {
    **{f"{f} signature flipped": _flip(f"{f}_signature") for f in ("tcb_info", "qe_identity")},
    "tcb_info body altered": lambda c, o, x: setattr(c, "tcb_info", c.tcb_info.replace(b'":19', b'":20', 1)),
    "qe_identity body altered": lambda c, o, x: setattr(c, "qe_identity", c.qe_identity.replace(b'":8', b'":1', 1)),
    **{f"{f} truncated": _truncate(f) for f in ("tcb_info", "qe_identity", "pck_crl", "root_ca_crl",
                                                "tcb_info_issuer_chain", "pck_crl_issuer_chain")},
    **{f"{f} missing": _clear(f) for f in pb.QuoteCollateral.DESCRIPTOR.fields_by_name},
    "pck_crl signed by the root": lambda c, o, x: setattr(c, "pck_crl", c.root_ca_crl),
    "another platform's collateral": _other_platform,
    "tcb_info for another FMSPC": _resigned(
        "tcb_info", lambda p: tcb_info_text(p).replace(p.fmspc.hex().upper().encode(), b"00906ED50000")),
    "tcb_info expired": _resigned("tcb_info", lambda p: tcb_info_text(p, now=LONG_AGO)),
    "qe_identity expired": _resigned("qe_identity", lambda p: qe_identity_text(now=LONG_AGO)),
    "tcb_info signed by the PCK CA": _resigned("tcb_info", tcb_info_text, key="processor-ca"),
    "pck_crl expired": _old_crl("pck_crl", "processor"),
    "root_ca_crl expired": _old_crl("root_ca_crl", "root"),
}


def test_host_tampering_is_refused(cluster) -> None:  # noqa: F811
    tmp, shared, a, admin, _ = cluster
    b = Node(tmp, "b", shared)
    policy(admin, b.root_point(), statuses=ALL)
    own, other = SimPlatform(b.data), SimPlatform(a.data)
    accepted = []
    for name, tamper in TAMPERS.items():
        request = b.join_request(a)
        tamper(request.collateral, own, other)
        try:
            a.admit(request)
            accepted.append(name)
        except errors.PeerMismatch:
            pass
    request = b.join_request(a)
    request.ClearField("collateral")
    with pytest.raises(errors.PeerMismatch):
        a.admit(request)
    assert accepted == [] and recorded(admin) == 1
    assert a.admit(b.join_request(a)).status == pb.REPLICA_APPROVED  # untouched, the same join passes
    b.enclave.close()


@pytest.mark.parametrize("revoke", ["pck", "intermediate", "tcb-signing"])
def test_revoked_certificates(cluster, revoke: str) -> None:  # noqa: F811
    tmp, shared, a, admin, _ = cluster
    b = Node(tmp, "b", shared)
    policy(admin, b.root_point(), statuses=ALL)
    platform = SimPlatform(b.data)
    if revoke == "pck":
        platform.revoke_pck()
    elif revoke == "intermediate":
        platform.revoke_intermediate()
    else:
        platform.revoke("root", platform.tcb_signing.serial_number)
    with pytest.raises(errors.PeerMismatch):  # fresh CRLs, as the platform's PCCS now serves them
        a.admit(b.join_request(a))
    assert recorded(admin) == 1
    platform.clear_revocations()
    assert a.admit(b.join_request(a)).status == pb.REPLICA_APPROVED
    b.enclave.close()


def test_joiner_checks_the_sponsors_collateral(cluster) -> None:  # noqa: F811
    tmp, shared, a, admin, _ = cluster
    b = node_at(tmp, "b", shared, "OutOfDate")
    policy(admin, b.root_point(), a.root_point(), statuses=pb.TCB_OUT_OF_DATE)  # b may join; a is UpToDate
    request = b.join_request(a)
    granted = a.admit(request)
    assert granted.status == pb.REPLICA_APPROVED
    with pytest.raises(errors.PeerMismatch):  # the sponsor's status is not one the domain's policy allows
        b.call(replica_join_complete=granted.grant)
    assert not b.enclave.identity().domain_loaded and b.store.get(SEALED) is None
    policy(admin, b.root_point(), a.root_point(), statuses=pb.TCB_OUT_OF_DATE | pb.TCB_UP_TO_DATE)
    own, other = SimPlatform(a.data), SimPlatform(b.data)
    for name in ("tcb_info signature flipped", "qe_identity body altered", "pck_crl missing",
                 "another platform's collateral", "tcb_info expired"):
        grant = pb.ReplicaGrant()
        grant.CopyFrom(a.admit(request).grant)
        TAMPERS[name](grant.sponsor_collateral, own, other)
        with pytest.raises(errors.PeerMismatch):
            b.call(replica_join_complete=grant)
        assert not b.enclave.identity().domain_loaded and b.store.get(SEALED) is None, name
    grant = a.admit(request).grant
    grant.ClearField("sponsor_collateral")
    with pytest.raises(errors.PeerMismatch):
        b.call(replica_join_complete=grant)
    done = b.call(replica_join_complete=a.admit(request).grant).load_domain_key
    assert done.domain_id == a.enclave.identity().domain_id and b.store.get(SEALED) is not None
    b.enclave.close()
