"""The two host attacks the domain pin and the state heads stop, against the real server (same port across
restarts, clients through a recording proxy that proves what crossed):

- Domain swap: the host wipes the store and the sealed domain key, restarts the same signed enclave, initializes
  a fresh domain with itself as admin and adds the victim's principal. The victim's SDK (a fresh client and one
  that was connected all along) and CLI refuse it after the evidence fetch: no Session is ever opened.
- Restart on a consistent older prefix: the host puts back a copy of the data directory taken while the server
  was stopped. The enclave starts (the copy is consistent); an SDK client that saw a newer head, a fresh one from
  the same credentials and the CLI refuse it after the identity probe, before the request: the server's state
  holds nothing of the refused requests. `kms credentials forget-head` is the admin's explicit way back.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest

from kms.client import Credentials, DomainMismatch, KmsClient, RollbackDetected
from tests.auditor import auditor_public
from tests.e2e.conftest import anchor_for, client_for, policy_for, recovery_public
from tests.e2e.proxy import RecordingProxy
from tests.e2e.server import ServerProcess
from tests.e2e.test_kms_crash import free_port
from tests.e2e.test_kms_recovery import Kms


class Host:
    """The attacker's side: a server on a fixed port it stops, wipes, restores and restarts at will."""

    def __init__(self, data: Path) -> None:
        self.data, self.listen = data, f"--listen=127.0.0.1:{free_port()}"
        self.server = ServerProcess(data, self.listen)
        self.proxy = RecordingProxy(self.server.api)

    def restart(self, before_start=None) -> None:
        assert self.server.stop() == 0
        if before_start is not None:
            before_start()
        self.server = ServerProcess(self.data, self.listen)

    def mark(self) -> tuple[int, int]:
        return len(self.proxy.frames), self.proxy.rpcs["Session"]

    def since(self, mark: tuple[int, int]) -> tuple[list[tuple[str, str, bytes]], int]:
        """The frames that crossed since `mark`, and the Session RPCs opened since."""
        return self.proxy.frames[mark[0]:], self.proxy.rpcs["Session"] - mark[1]

    def stop(self) -> None:
        self.proxy.stop()
        self.server.stop()


def sdk(host: Host, creds: Credentials, **kw) -> KmsClient:
    return KmsClient(host.proxy.target, credentials=creds, policy=policy_for(host.server),
                     trust_anchor=anchor_for(host.server), backoff=0.01, **kw)


def as_user(kms: Kms, who: str) -> Kms:
    other = copy.copy(kms)
    other.env = {**kms.env, "KMS_CREDENTIALS": str(kms.work / who)}
    return other


def cli(tmp_path: Path, host: Host) -> Kms:
    work = tmp_path / "work"
    work.mkdir()
    kms = Kms(work)
    kms.point_at(host.server)
    kms.env["KMS_SERVER"] = host.proxy.target  # every command goes through the recording proxy
    return kms


def test_domain_swap_is_refused_by_the_sdk_and_the_cli_before_anything_is_sent(build: Path, tmp_path: Path) -> None:
    host = Host(tmp_path / "data")
    try:
        kms = cli(tmp_path, host)
        kms("credentials", "new", "--out", "./admin")
        kms.json("audit", "keygen", "--out", "auditor")
        domain = kms.json("admin", "init", "--recovery-keys", "1", "--recovery-dir", "recovery",
                          "--auditor-key", "auditor/auditor.pub")["domain_id"]
        bob = kms.json("credentials", "new", "--out", "./bob", "--domain", domain)  # the admin told bob the id
        kms("admin", "principal", "add", "--principal-id", bob["principal_id"], "--name", "bob")
        key = kms.json("key", "create")["key_id"]
        kms("grant", "create", "--key-id", key, "--principal-id", bob["principal_id"], "--operations", "*")
        bob_creds = Credentials.load(kms.work / "bob")
        victim = sdk(host, bob_creds)  # connected all along, pinned by its credentials
        assert victim.domain_id.hex() == domain and victim.encrypt(key, b"before").key_version == 1

        def wipe() -> None:  # the store and the sealed domain key; the platform (same seal keys, same root) stays
            for p in host.data.glob("kms.sqlite3*"):
                p.unlink()
            (host.data / "domain-key.sealed").unlink()

        host.restart(wipe)
        with client_for(host.server, Credentials.generate("host"), new_domain=True) as evil:
            swapped = evil.init(recovery_public(1), threshold=1, auditor_public_keys=auditor_public()).domain_id
            evil.add_principal(bob_creds.principal_id, "bob", "ADMIN")  # bob would even be an admin there
        assert swapped.hex() != domain

        mark = host.mark()
        with pytest.raises(DomainMismatch) as refused:
            victim.create_key()  # the reconnect verifies the new evidence: another domain
        assert refused.value.expected.hex() == domain and refused.value.actual == swapped
        with pytest.raises(DomainMismatch):
            sdk(host, Credentials.load(kms.work / "bob"))
        for who, args in (("bob", ("key", "create")), ("bob", ("encrypt", "--key-id", key)),
                          ("admin", ("key", "list"))):
            proc = as_user(kms, who)(*args, stdin=b"x", check=2)
            assert b"not the pinned domain" in proc.stderr and b"nothing was sent" in proc.stderr
        frames, sessions = host.since(mark)
        assert sessions == 0 and {m for m, _, _ in frames} == {"GetEvidence"}  # only the public evidence crossed
        victim.close()
    finally:
        host.stop()


def test_restart_on_an_older_consistent_prefix_is_refused_before_the_request(build: Path, tmp_path: Path) -> None:
    host = Host(tmp_path / "data")
    backup = tmp_path / "backup"
    try:
        kms = cli(tmp_path, host)
        kms("credentials", "new", "--out", "./admin")
        kms.json("audit", "keygen", "--out", "auditor")
        kms.json("admin", "init", "--recovery-keys", "1", "--recovery-dir", "recovery", "--auditor-key",
                 "auditor/auditor.pub")
        first = kms.json("key", "create", "--description", "in the backup")["key_id"]
        old_head = kms.json("credentials", "show")["state_head"]

        host.restart(lambda: shutil.copytree(host.data, backup))  # the host keeps a copy, taken while stopped
        alice = sdk(host, Credentials.load(kms.work / "admin"))  # the admin's SDK, connected from now on
        later = alice.create_key(description="after the backup").key_id
        alice.rotate_key(first)
        seen = alice.state_head
        assert seen is not None and seen.seq > int(old_head.split(":")[0])
        alice.save_state()

        def put_back_the_copy() -> None:
            shutil.rmtree(host.data)
            shutil.copytree(backup, host.data)

        host.restart(put_back_the_copy)  # consistent: the enclave starts on it
        assert host.server.info["initialized"] is True

        mark = host.mark()
        with pytest.raises(RollbackDetected) as refused:
            alice.create_key(description="must never be created")  # reconnect, probe, refuse
        assert refused.value.known == (seen.seq, seen.hash) and refused.value.check == "HEAD_AHEAD"
        assert f"{refused.value.server[0]}:{refused.value.server[1].hex()}" == old_head
        with pytest.raises(RollbackDetected):
            sdk(host, Credentials.load(kms.work / "admin"))  # a fresh client: the head is kept with the credentials
        proc = kms("key", "create", "--description", "nor this one", check=2)
        assert b"rolled back" in proc.stderr and b"nothing was sent" in proc.stderr
        frames, sessions = host.since(mark)
        c2s = [f for m, d, f in frames if m == "Session" and d == "c2s"]
        # per session: the ClientHello, then the client's last handshake flight with the probe in one frame, no more
        assert sessions == 3 and len(c2s) == 3 * 2
        alice.close()

        # What the enclave holds now: the backup's head and key, none of the refused creates. Read by a client
        # that is told to forget the head (the admin's explicit acceptance of the restore).
        forgot = kms.json("credentials", "forget-head")
        assert forgot["forgotten_head"] == f"{seen.seq}:{seen.hash.hex()}"
        keys = kms.json("key", "list")
        assert [k["key_id"] for k in keys] == [first] and later not in str(keys)
        assert kms.json("admin", "identity")["state_head"] == old_head  # listing changed nothing either
        assert kms.json("credentials", "show")["state_head"] == old_head
    finally:
        host.stop()
