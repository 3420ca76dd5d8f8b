"""The cluster's replica records and policy (docs/cluster.md) through `kms cluster` against the fake server
over the real enclave: the enclave that initializes a domain is its first approved replica, its id is the
SHA-256 of its join key and stays the same across a restart; the policy is kept in the domain state; admins
only; the refusals are the enclave's (exit 2) or local (exit 1, nothing sent)."""

from __future__ import annotations

import hashlib

import pytest

from kms import errors
from kms.client import KmsClient
from tests.client.test_cli import Cli, new_auditor, new_credentials


@pytest.fixture
def cli(server, tmp_path, capsys, monkeypatch) -> Cli:
    for name in ("KMS_SERVER", "KMS_CREDENTIALS", "KMS_MRSIGNER", "KMS_SIMULATED_ROOT", "KMS_OUTPUT"):
        monkeypatch.delenv(name, raising=False)
    return Cli(server, tmp_path, capsys, monkeypatch)


def _init(cli: Cli) -> list[str]:
    admin, _ = new_credentials(cli, "admin")
    f = cli.flags(admin)
    cli.json("admin", "init", *f, "--recovery-keys", "1", "--recovery-dir", str(cli.tmp / "rec"),
             "--auditor-key", str(new_auditor(cli)[0] / "auditor.pub"))
    return f


def test_the_first_replica_and_the_policy(cli: Cli) -> None:
    f = _init(cli)
    listed = cli.json("cluster", "list", *f)
    (me,) = listed["replicas"]
    assert me["status"] == "APPROVED" and me["this"] == "*" and me["replica_id"] == listed["self_replica_id"]
    assert me["mrsigner"] == cli.server.mrsigner.hex() and me["isv_svn"] == 1 and me["name"] == "first replica"
    assert listed["policy"] == {"min_isv_svn": 1, "tcb_statuses": ["UpToDate"], "auto_join": False,
                                "extra_roots_insecure": []}

    changed = cli.json("cluster", "policy", *f, "--min-isv-svn", "3", "--tcb-status", "UpToDate",
                       "--tcb-status", "SWHardeningNeeded", "--auto-join", "--trust-root-insecure", str(cli.root))
    point = cli.server.platform.trust_anchor().public_point.hex()
    assert changed["policy"] == {"min_isv_svn": 3, "tcb_statuses": ["SWHardeningNeeded", "UpToDate"],
                                 "auto_join": True, "extra_roots_insecure": [point]}
    kept = cli.json("cluster", "policy", *f, "--no-auto-join")["policy"]
    assert kept["auto_join"] is False and kept["extra_roots_insecure"] == [point]  # the rest is kept
    assert cli.json("cluster", "policy", *f)["policy"]["min_isv_svn"] == 3  # show only
    code, out, _ = cli.run("cluster", "list", *f)
    assert code == 0 and out.split()[:5] == ["REPLICA_ID", "STATUS", "ISV_SVN", "NAME", "THIS"]
    assert "policy: min ISVSVN 3, TCB SWHardeningNeeded, UpToDate, auto-join off, extra roots (insecure) 1" in out


def test_refusals(cli: Cli) -> None:
    f = _init(cli)
    me = cli.json("cluster", "list", *f)["self_replica_id"]
    sessions = cli.server.session_rpcs
    assert cli.run("cluster", "approve", *f, "--replica-id", "abcd")[0] == 1                      # local: not 32 bytes
    assert cli.run("cluster", "policy", *f, "--tcb-status", "Revoked")[0] == 1  # a usage error: no call
    assert cli.run("cluster", "policy", *f, "--min-isv-svn", "70000")[0] == 1   # checked before connecting
    assert cli.server.session_rpcs == sessions
    # not the replica you talk to (nor the last approved)
    code, _, err = cli.run("cluster", "remove", *f, "--replica-id", me)
    assert code == 2 and "Traceback" not in err, err
    code, _, err = cli.run("cluster", "approve", *f, "--replica-id", "00" * 32)  # no such replica
    assert code == 2, err
    assert cli.json("cluster", "list", *f)["replicas"][0]["status"] == "APPROVED"


def test_sdk_admins_only(server, admin: KmsClient, policy) -> None:
    cluster = admin.list_replicas()
    (me,) = cluster.replicas
    assert me.replica_id == hashlib.sha256(me.join_public_key).digest() == cluster.self_replica_id
    from kms.client import Credentials

    bob = Credentials.generate("bob")
    admin.add_principal(bob.principal_id, "bob", "USER")
    with KmsClient(server.target, credentials=bob, policy=policy, trust_anchor=server.platform.trust_anchor(),
                   domain_id=admin.domain_id) as user:
        for call in (user.list_replicas, lambda: user.set_replica_policy(1),
                     lambda: user.approve_replica(me.replica_id)):
            try:
                call()
            except errors.PermissionDenied:
                continue
            raise AssertionError("a user ran a cluster operation")


def test_the_replica_id_is_the_node_s(build, tmp_path) -> None:
    """The join key is derived from the node's seal key: the same on one (simulated) CPU, across enclave
    instances and restarts, and another on another CPU. get_identity tells the host its replica id."""
    from kms.enclave.bridge import Enclave

    def replica_id(data) -> bytes:
        with Enclave(data) as enclave:
            return bytes(enclave.identity().replica_id)

    one, again, other = replica_id(tmp_path / "a"), replica_id(tmp_path / "a"), replica_id(tmp_path / "b")
    assert len(one) == 32 and one == again and one != other
