"""The README walk-through against the real server over loopback: through the CLI (subprocesses,
exit codes, files) and through the SDK; and a restart that keeps every key working."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from kms import errors
from kms.client import Credentials
from tests.auditor import auditor_public
from tests.e2e.conftest import client_for, recovery_public
from tests.e2e.server import REPO, ServerProcess


def kms(env: dict[str, str], *args: str, stdin: bytes = b"", check: int | None = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "kms", *args], input=stdin, capture_output=True, env=env,
                          cwd=env["WORK"], timeout=60)
    if check is not None:
        assert proc.returncode == check, (args, proc.returncode, proc.stderr.decode())
    assert b"Traceback" not in proc.stderr, proc.stderr.decode()
    return proc


def kms_json(env: dict[str, str], *args: str, stdin: bytes = b"") -> dict:
    return json.loads(kms(env, *args, "--output", "json", stdin=stdin).stdout)


def test_cli_walkthrough(build: Path, tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data")
    try:
        work = tmp_path / "work"
        work.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("KMS_")}
        env.update(WORK=str(work), PYTHONPATH=str(REPO), KMS_SERVER=server.api, KMS_MRSIGNER=server.mrsigner.hex(),
                   KMS_SIMULATED_ROOT=str(server.root_pem), KMS_ALLOW_SIMULATION_INSECURE="1",
                   KMS_CREDENTIALS=str(work / "admin"))
        principal = kms_json(env, "credentials", "new", "--out", "./admin")["principal_id"]
        auditor = kms_json(env, "audit", "keygen", "--out", "auditor")["auditor_public_key"]
        assert stat.S_IMODE((work / "auditor" / "auditor.key").stat().st_mode) == 0o600
        init = kms_json(env, "admin", "init", "--recovery-keys", "3", "--recovery-dir", "recovery",
                        "--auditor-key", "auditor/auditor.pub")
        assert init["admin_principal_id"] == principal and init["threshold"] == 2 and init["auditors"] == 1
        shown = kms_json(env, "credentials", "show")  # init pinned the domain with the admin's credentials
        assert shown["domain_id"] == init["domain_id"] and shown["state_head"] == init["state_head"]
        assert stat.S_IMODE((work / "recovery" / "keys" / "recovery-0.key").stat().st_mode) == 0o600
        assert sorted(p.name for p in (work / "recovery" / "shares").glob("share-*.json")) == [
            "share-0.json", "share-1.json", "share-2.json"]

        aes = kms_json(env, "key", "create", "--description", "walk-through")["key_id"]
        (work / "secret.txt").write_bytes(b"the launch code is 0000")
        kms(env, "encrypt", "--key-id", aes, "--in", "secret.txt", "--context", "app=demo", "--out", "secret.enc")
        out = kms(env, "decrypt", "--in", "secret.enc", "--context", "app=demo", "--out", "-").stdout
        assert out == b"the launch code is 0000"

        ed = kms_json(env, "key", "create", "--spec", "ED25519")["key_id"]
        p256 = kms_json(env, "key", "create", "--spec", "ECC_NIST_P256")["key_id"]
        for key in (ed, p256):
            kms(env, "sign", "--key-id", key, "--in", "secret.enc", "--out", f"{key}.sig")
            assert kms_json(env, "verify", "--key-id", key, "--in", "secret.enc", "--signature", f"{key}.sig")["valid"]
            bad = kms(env, "verify", "--key-id", key, "--in", "secret.txt", "--signature", f"{key}.sig", check=2)
            assert b"NOT valid" in bad.stderr
        kms(env, "public-key", "--key-id", ed, "--pem", "--out", "ed.pem")
        pub = serialization.load_pem_public_key((work / "ed.pem").read_bytes())
        assert isinstance(pub, ed25519.Ed25519PublicKey)
        pub.verify((work / f"{ed}.sig").read_bytes(), (work / "secret.enc").read_bytes())

        assert kms_json(env, "key", "rotate", "--key-id", aes)["current_version"] == 2
        out = kms(env, "decrypt", "--in", "secret.enc", "--context", "app=demo", "--out", "-").stdout
        assert out == b"the launch code is 0000"  # the old ciphertext still decrypts after rotation
        fresh = kms_json(env, "encrypt", "--key-id", aes, stdin=b"new data")
        assert fresh["key_version"] == 2
        dec = kms_json(env, "decrypt", "--in-base64", stdin=fresh["ciphertext"].encode())
        assert base64.b64decode(dec["plaintext"]) == b"new data"
        listed = kms(env, "key", "list").stdout.decode()
        assert aes in listed and ed in listed and p256 in listed

        # a user principal, granted one key
        user = kms_json(env, "credentials", "new", "--out", "./user", "--domain", shown["domain_id"])["principal_id"]
        kms(env, "admin", "principal", "add", "--principal-id", user, "--name", "svc")
        uenv = {**env, "KMS_CREDENTIALS": str(work / "user")}
        assert b"PERMISSION_DENIED" in kms(uenv, "decrypt", "--in", "secret.enc", "--context", "app=demo",
                                           check=2).stderr
        kms(env, "grant", "create", "--key-id", aes, "--principal-id", user, "--operations", "*")
        assert kms(uenv, "decrypt", "--in", "secret.enc", "--context", "app=demo", "--out", "-").stdout.startswith(
            b"the launch")
        assert b"PERMISSION_DENIED" in kms(uenv, "key", "create", check=2).stderr

        # the audit log: anyone checks that it is complete; only the auditor reads what it says
        audit_key = kms_json(env, "admin", "identity")["audit_public_key"]
        kms(env, "audit", "export", "--data-dir", str(server.data_dir), "--out", "audit.jsonl")
        assert aes.encode() not in (work / "audit.jsonl").read_bytes()  # the host's copy names no key
        checked = kms_json(env, "audit", "verify", "--file", "audit.jsonl", "--audit-key", audit_key)
        assert checked["ok"] and checked["epochs"] == [{"seq": 1, "auditors": [auditor]}]
        kms(env, "audit", "export", "--file", "audit.jsonl", "--audit-key", audit_key, "--auditor-key",
            "auditor/auditor.key", "--out", "read.jsonl")
        said = [json.loads(line) for line in (work / "read.jsonl").read_text().splitlines()]
        decrypts = [s for s in said if s["operation"] == "decrypt" and s["principal"] == user]
        assert decrypts and decrypts[-1]["key_id"] == aes and decrypts[-1]["outcome"] == "KMS_OK"

        # usage and local errors exit 1, verification errors exit 2 (nothing sent)
        sessions = server.session_rpcs()
        assert b"MRSIGNER" in kms(env, "key", "list", "--mrsigner", "11" * 32, check=2).stderr
        assert b"policy_simulation" in kms({**env, "KMS_ALLOW_SIMULATION_INSECURE": "0"}, "key", "list",
                                           check=2).stderr
        assert server.session_rpcs() == sessions
        kms(env, "key", "create", "--spec", "NOPE", check=1)
        kms(env, "encrypt", check=1)
        ident = kms_json(env, "admin", "identity")  # the head moved with every change since init
        assert ident["domain_id"] == init["domain_id"]
        assert int(ident["state_head"].split(":")[0]) > int(init["state_head"].split(":")[0])
        assert kms_json(env, "credentials", "show")["state_head"] == ident["state_head"]
    finally:
        server.stop()


def test_sdk_walkthrough(admin) -> None:
    aes = admin.create_key("SYMMETRIC_DEFAULT", description="sdk")
    ct = admin.encrypt(aes.key_id, b"attack at dawn", {"tenant": "42"})
    assert admin.decrypt(ct.ciphertext, {"tenant": "42"}).plaintext == b"attack at dawn"
    with pytest.raises(errors.InvalidCiphertext):
        admin.decrypt(ct.ciphertext, {"tenant": "43"})
    ed, p256 = admin.create_key("ED25519"), admin.create_key("ECC_NIST_P256")
    for key in (ed, p256):
        sig = admin.sign(key.key_id, b"block 7")
        assert admin.verify(key.key_id, signature=sig.signature, message=b"block 7")
    pub = serialization.load_der_public_key(admin.get_public_key(p256.key_id).public_key)
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    pub.verify(admin.sign(p256.key_id, b"m").signature, b"m", ec.ECDSA(hashes.SHA256()))
    assert admin.rotate_key(aes.key_id).current_version == 2
    assert admin.decrypt(ct.ciphertext, {"tenant": "42"}).plaintext == b"attack at dawn"
    assert admin.encrypt(aes.key_id, b"x").key_version == 2
    assert {aes.key_id, ed.key_id, p256.key_id} <= {k.key_id for k in admin.list_keys(page_size=2)}


@pytest.mark.slow
def test_restart_keeps_keys_working(build: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    creds = Credentials.generate("alice")
    server = ServerProcess(data)
    try:
        with client_for(server, creds, new_domain=True) as client:
            client.init(recovery_public(1), threshold=1, auditor_public_keys=auditor_public())
            aes, ed = client.create_key(), client.create_key("ED25519")
            ct = client.encrypt(aes.key_id, b"before restart").ciphertext
            client.rotate_key(aes.key_id)
            ct2 = client.encrypt(aes.key_id, b"second version").ciphertext
            sig = client.sign(ed.key_id, b"msg").signature
            pub = client.get_public_key(ed.key_id).public_key
    finally:
        assert server.stop() == 0
    server = ServerProcess(data)
    try:
        assert server.info["initialized"] is True
        with client_for(server, creds) as client:
            assert client.evidence.result.ok  # the restarted enclave's evidence, verified again
            assert client.decrypt(ct).plaintext == b"before restart"
            assert client.decrypt(ct2).plaintext == b"second version"
            assert client.verify(ed.key_id, signature=sig, message=b"msg")
            assert client.get_public_key(ed.key_id).public_key == pub
            assert client.describe_key(aes.key_id).version_count == 2
            assert client.verify(ed.key_id, signature=client.sign(ed.key_id, b"after").signature, message=b"after")
    finally:
        server.stop()


def test_idle_session_closed_by_the_server_reconnects_even_for_create(build: Path, tmp_path: Path) -> None:
    """The server ends idle sessions (DEADLINE_EXCEEDED); the client notices before sending, so even a
    non-idempotent request (create_key) goes out once, on a fresh verified session."""
    server = ServerProcess(tmp_path / "data", "--session-idle-timeout-s=1")
    try:
        with client_for(server, Credentials.generate("alice"), new_domain=True) as client:
            client.init(recovery_public(1), threshold=1, auditor_public_keys=auditor_public())
            time.sleep(2.5)
            key = client.create_key()
            assert client.connects == 2
            assert [k.key_id for k in client.list_keys()] == [key.key_id]
    finally:
        server.stop()
