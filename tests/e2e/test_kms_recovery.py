"""The recovery drill and the new CLI commands against the real server: init with recovery keys; keys,
aliases, data keys, policies, grants and ciphertexts made with `kms`; the audit chain exported and
verified; the server stopped, its platform root secret and sealed domain key destroyed; the store
backed up and restored into a new data directory on a new platform; fewer than M shares refused, M
shares recover; everything decrypts and verifies again, and the audit chain still verifies."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kms import errors
from kms.client import Credentials
from kms.client.recovery import open_share
from tests.e2e.conftest import client_for
from tests.e2e.server import REPO, ServerProcess


class Kms:
    """`python -m kms` as a subprocess, with the server's identity in the environment."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KMS_")}
        self.env.update(PYTHONPATH=str(REPO), KMS_ALLOW_SIMULATION_INSECURE="1", KMS_CREDENTIALS=str(work / "admin"))

    def point_at(self, server: ServerProcess) -> None:
        self.env.update(KMS_SERVER=server.api, KMS_MRSIGNER=server.mrsigner.hex(),
                        KMS_SIMULATED_ROOT=str(server.root_pem))

    def __call__(self, *args: str, stdin: bytes = b"", check: int | None = 0) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "kms", *args], input=stdin, capture_output=True, env=self.env,
                              cwd=self.work, timeout=60)
        assert b"Traceback" not in proc.stderr, proc.stderr.decode()
        if check is not None:
            assert proc.returncode == check, (args, proc.returncode, proc.stderr.decode())
        return proc

    def json(self, *args: str, stdin: bytes = b"") -> dict | list:
        return json.loads(self(*args, "--output", "json", stdin=stdin).stdout)


def test_recovery_drill_backup_restore_and_audit(build: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    kms, old_data, new_data = Kms(work), tmp_path / "old", tmp_path / "new"
    server = ServerProcess(old_data)
    try:
        kms.point_at(server)
        kms("credentials", "new", "--out", "./admin")
        kms.json("audit", "keygen", "--out", "auditor")
        init = kms.json("admin", "init", "--recovery-keys", "3", "--recovery-dir", "recovery", "--threshold", "2",
                        "--auditor-key", "auditor/auditor.pub")
        domain = init["domain_id"]
        aes = kms.json("key", "create", "--description", "drill")["key_id"]
        ed = kms.json("key", "create", "--spec", "ED25519")["key_id"]
        assert kms.json("key", "update", "--key-id", aes, "--rotation-period-days", "30")["rotation_period_days"] == 30
        kms("key", "rotate", "--key-id", aes)
        assert kms.json("alias", "create", "alias/drill", "--key-id", aes) == [{"alias": "alias/drill", "key_id": aes}]
        (work / "secret.txt").write_bytes(b"the drill secret")
        kms("encrypt", "--key-id", "alias/drill", "--in", "secret.txt", "--context", "app=drill", "--out", "secret.enc")
        dk = kms.json("data-key", "generate", "--key-id", aes, "--context", "file=a", "--plaintext-out", "dk.bin",
                      "--ciphertext-out", "dk.enc")
        assert dk["key_version"] == 2 and (work / "dk.bin").stat().st_mode & 0o777 == 0o600
        kms("re-encrypt", "--in", "secret.enc", "--source-context", "app=drill", "--destination-key-id", aes,
            "--destination-context", "app=moved", "--out", "moved.enc")
        kms("sign", "--key-id", ed, "--in", "secret.txt", "--out", "secret.sig")
        imported = kms.json("key", "import", "--spec", "SYMMETRIC_DEFAULT", "--material", "dk.bin")
        assert imported["origin"] == "IMPORTED"
        kms("encrypt", "--key-id", imported["key_id"], "--in", "secret.txt", "--out", "byok.enc")
        user = kms.json("credentials", "new", "--out", "./user", "--domain", domain)["principal_id"]
        kms("admin", "principal", "add", "--principal-id", user, "--name", "svc")
        (work / "policy.json").write_text(json.dumps({"statements": [
            {"principal": user, "operations": ["decrypt"], "conditions": {"app": "drill"}}]}))
        policy = kms.json("policy", "put", "--key-id", aes, "--file", "policy.json")
        assert len(policy["policy_hash"]) == 64
        grant = kms.json("grant", "create", "--key-id", ed, "--principal-id", user, "--operations", "sign,verify",
                         "--expires-in", "3600")
        uenv = {**kms.env, "KMS_CREDENTIALS": str(work / "user")}
        as_user = subprocess.run([sys.executable, "-m", "kms", "decrypt", "--in", "secret.enc", "--context",
                                  "app=drill", "--out", "-"], capture_output=True, env=uenv, cwd=work, timeout=60)
        assert as_user.returncode == 0 and as_user.stdout == b"the drill secret"  # allowed by the policy
        pending = kms.json("key", "schedule-deletion", "--key-id", imported["key_id"], "--pending-window-days", "7")
        assert pending["state"] == "PENDING_DELETION"
        assert b"PENDING_DELETION" in kms("decrypt", "--in", "byok.enc", check=2).stderr
        assert kms.json("key", "cancel-deletion", "--key-id", imported["key_id"])["state"] == "DISABLED"
        kms("key", "enable", "--key-id", imported["key_id"])
        audit_key = kms.json("admin", "identity")["audit_public_key"]
        kms("audit", "export", "--data-dir", str(old_data), "--out", "audit-before.jsonl")
        before = kms.json("audit", "verify", "--file", "audit-before.jsonl", "--audit-key", audit_key)
        assert before["ok"] and before["entries"] >= 20
    finally:
        assert server.stop() == 0

    (old_data / "sgx-sim" / "root.secret").unlink()  # the platform is gone, its seal keys with it
    (old_data / "domain-key.sealed").unlink()         # node-local; never part of a backup
    backup = kms.json("admin", "backup", "--data-dir", str(old_data), "--out", "store.backup")
    assert backup["records"] >= 5 and backup["audit_entries"] == before["entries"]
    assert b"sealed" not in (work / "store.backup").read_bytes()
    kms("admin", "backup", "--data-dir", str(old_data), "--out", "store.backup", check=1)  # never overwritten
    restored = kms.json("admin", "restore", "--in", "store.backup", "--data-dir", str(new_data))
    assert (restored["records"], restored["audit_entries"]) == (backup["records"], backup["audit_entries"])
    kms("admin", "restore", "--in", "store.backup", "--data-dir", str(new_data), check=1)  # not into a used dir

    server = ServerProcess(new_data)  # a new simulated platform: its own root secret and PCK PKI
    try:
        assert server.info["initialized"] is False
        kms.point_at(server)
        refused = kms("decrypt", "--in", "secret.enc", "--context", "app=drill", check=2).stderr
        assert b"serves no domain" in refused and b"nothing was sent" in refused  # pinned: refused before sending
        share = lambda i: ("--share", f"recovery/shares/share-{i}.json",  # noqa: E731
                           "--recovery-key", f"recovery/keys/recovery-{i}.key")
        few = kms("admin", "recover", "--domain-id", domain, *share(1), check=1)
        assert b"needs 2" in few.stderr
        with client_for(server, Credentials.load(work / "admin"), new_domain=True) as sdk:  # the enclave refuses too
            from cryptography.hazmat.primitives.serialization import load_pem_private_key

            doc = json.loads((work / "recovery" / "shares" / "share-1.json").read_text())
            one = open_share(doc, load_pem_private_key((work / "recovery" / "keys" / "recovery-1.key").read_bytes(),
                                                       None))
            with pytest.raises(errors.InvalidRequest):
                sdk.recover(bytes.fromhex(domain), [one])
        kms("admin", "recover", "--domain-id", domain, *share(2), "--share", "recovery/shares/share-0.json",
            "--recovery-key", "recovery/keys/recovery-1.key", check=1)  # a share with another holder's key
        done = kms.json("admin", "recover", "--domain-id", domain, *share(2), *share(0))
        assert done["recovered"] and done["domain_id"] == domain and done["audit_public_key"] == audit_key
        secret = b"the drill secret"
        assert kms("decrypt", "--in", "secret.enc", "--context", "app=drill", "--out", "-").stdout == secret
        assert kms("decrypt", "--in", "moved.enc", "--context", "app=moved", "--out", "-").stdout == secret
        assert kms("decrypt", "--in", "byok.enc", "--out", "-").stdout == secret
        dk_plain = kms("decrypt", "--in", "dk.enc", "--context", "file=a", "--out", "-").stdout
        assert dk_plain == (work / "dk.bin").read_bytes()
        assert kms.json("verify", "--key-id", ed, "--in", "secret.txt", "--signature", "secret.sig")["valid"]
        assert kms.json("alias", "list") == [{"alias": "alias/drill", "key_id": aes}]
        assert [g["grant_id"] for g in kms.json("grant", "list", "--key-id", ed)] == [grant["grant_id"]]
        assert kms.json("key", "describe", "--key-id", aes)["policy_hash"] == policy["policy_hash"]
        kms.json("grant", "revoke", "--key-id", ed, "--grant-id", grant["grant_id"])
        kms.json("alias", "delete", "alias/drill")
    finally:
        assert server.stop() == 0

    server = ServerProcess(new_data)  # restarted: unsealed on the new platform, evidence binds the audit key
    try:
        assert server.info["initialized"] is True
        kms.point_at(server)
        (work / "cert.der").write_bytes(server.evidence().certificate)
        kms("audit", "export", "--data-dir", str(new_data), "--out", "audit-after.jsonl")
        after = kms.json("audit", "verify", "--file", "audit-after.jsonl", "--cert", "cert.der")
        assert after["ok"] and after["entries"] > before["entries"]
        assert all(r["body"] is None for r in after["records"])  # without the auditor's key: complete, unread
        # The auditors came back with the domain: the auditor reads what happened before and after.
        read = kms.json("audit", "verify", "--file", "audit-after.jsonl", "--cert", "cert.der",
                        "--auditor-key", "auditor/auditor.key")
        assert read["ok"] and all(r.get("operation") for r in read["records"])
        ops = [r["operation"] for r in read["records"][before["entries"]:]]
        assert "recover" in ops and "revoke_grant" in ops
        head = before["head"]  # the chain from before the disaster is a prefix of the chain after it
        assert kms.json("audit", "verify", "--file", "audit-before.jsonl", "--cert", "cert.der",
                        "--head", head)["ok"]
        assert base64.b64decode(kms.json("encrypt", "--key-id", aes, stdin=b"x")["ciphertext"])
    finally:
        server.stop()
