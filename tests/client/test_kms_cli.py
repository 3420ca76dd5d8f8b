"""The new CLI commands in process against the fake server over the real enclave: table and JSON output,
and exit codes (1: local errors, found before anything is sent; 2: enclave refusals)."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.client.test_cli import Cli, new_auditor, new_credentials


@pytest.fixture
def cli(server, tmp_path, capsys, monkeypatch) -> Cli:
    for name in ("KMS_SERVER", "KMS_CREDENTIALS", "KMS_MRSIGNER", "KMS_SIMULATED_ROOT", "KMS_OUTPUT"):
        monkeypatch.delenv(name, raising=False)
    return Cli(server, tmp_path, capsys, monkeypatch)


def test_new_commands_output_and_exit_codes(cli: Cli) -> None:
    admin, _ = new_credentials(cli, "admin")
    _, user_id = new_credentials(cli, "user")
    f = cli.flags(admin)
    cli.json("admin", "init", *f, "--recovery-keys", "1", "--recovery-dir", str(cli.tmp / "rec"),
             "--auditor-key", str(new_auditor(cli)[0] / "auditor.pub"))
    ident = cli.json("admin", "identity", *f)
    assert ident["domain_loaded"] and len(ident["audit_public_key"]) == 64
    kid = cli.json("key", "create", *f)["key_id"]
    cli.json("admin", "principal", "add", *f, "--principal-id", user_id, "--name", "svc")

    code, out, err = cli.run("alias", "create", *f, "alias/app", "--key-id", kid)
    assert code == 0 and out.split()[:2] == ["ALIAS", "KEY_ID"] and f"alias/app  {kid}" in out, err
    assert cli.run("alias", "create", *f, "alias/app", "--key-id", kid)[0] == 2  # CONFLICT
    code, out, _ = cli.run("key", "update", *f, "--key-id", kid, "--description", "renamed",
                           "--rotation-period-days", "7")
    assert code == 0 and "rotation_period_days  7" in out and "renamed" in out
    assert cli.run("key", "update", *f, "--key-id", kid)[0] == 1  # nothing to change
    assert cli.run("key", "schedule-deletion", *f, "--key-id", kid, "--pending-window-days", "3")[0] == 1  # range

    dk = cli.json("data-key", "generate", *f, "--key-id", "alias/app", "--bytes", "16", "--no-plaintext")
    assert "plaintext" not in dk and dk["ciphertext"]
    pair = cli.json("data-key", "generate", *f, "--key-id", kid, "--pair", "ed25519")
    assert pair["pair_spec"] == "ED25519" and pair["private_key"] and pair["public_key"]

    ct, moved, cleared = (cli.tmp / n for n in ("ct.bin", "moved.bin", "cleared.bin"))
    cli.run("encrypt", *f, "--key-id", kid, "--context", "app=x", "--out", str(ct), stdin=b"kept")
    assert cli.run("re-encrypt", *f, "--in", str(ct), "--source-context", "app=x", "--destination-key-id", kid,
                   "--out", str(moved))[0] == 0  # no destination context given: the source's is kept
    assert cli.run("decrypt", *f, "--in", str(moved), "--context", "app=x", "--out", "-")[1] == "kept"
    assert cli.run("decrypt", *f, "--in", str(moved), "--out", "-")[0] == 2
    assert cli.run("re-encrypt", *f, "--in", str(moved), "--source-context", "app=x", "--destination-key-id", kid,
                   "--no-destination-context", "--out", str(cleared))[0] == 0
    assert cli.run("decrypt", *f, "--in", str(cleared), "--out", "-")[1] == "kept"

    policy = cli.tmp / "policy.json"
    policy.write_text(json.dumps({"statements": [{"principal": user_id, "operations": ["encrypt"]}]}))
    assert len(cli.json("policy", "put", *f, "--key-id", kid, "--file", str(policy))["policy_hash"]) == 64
    checked = cli.json("policy", "check", "--file", str(policy))
    assert checked["statements"][0]["operations"] == ["encrypt"]
    sessions = cli.server.session_rpcs
    policy.write_text(json.dumps({"statements": [{"principal": "*", "operations": ["launch"]}]}))
    code, _, err = cli.run("policy", "put", *f, "--key-id", kid, "--file", str(policy))
    assert code == 1 and "unknown operation" in err
    code, _, err = cli.run("grant", "create", *f, "--key-id", kid, "--principal-id", user_id, "--operations", "nope")
    assert code == 1 and "unknown operation" in err
    assert cli.run("grant", "revoke", *f, "--key-id", kid, "--grant-id", "abcd")[0] == 1
    assert cli.server.session_rpcs == sessions  # local errors: nothing was sent

    grant = cli.json("grant", "create", *f, "--key-id", kid, "--principal-id", user_id, "--operations",
                     "encrypt,decrypt", "--expires-at", "2099-01-01T00:00:00Z", "--condition", "env=prod")
    assert grant["operations"] == "encrypt,decrypt" and grant["conditions"] == "env=prod"
    code, out, _ = cli.run("grant", "list", *f, "--key-id", kid)
    assert code == 0 and grant["grant_id"] in out and "GRANTEE" in out
    assert cli.json("grant", "revoke", *f, "--key-id", kid, "--grant-id", grant["grant_id"]) == []
    code, _, err = cli.run("grant", "revoke", *f, "--key-id", kid, "--grant-id", grant["grant_id"])
    assert code == 2 and "Traceback" not in err  # already gone: the enclave refuses


def test_key_import_of_a_pem_private_key(cli: Cli) -> None:
    admin, _ = new_credentials(cli, "admin")
    f = cli.flags(admin)
    cli.json("admin", "init", *f, "--recovery-keys", "1", "--recovery-dir", str(cli.tmp / "rec"),
             "--auditor-key", str(new_auditor(cli)[0] / "auditor.pub"))
    private = ec.generate_private_key(ec.SECP256R1())
    pem = cli.tmp / "signer.pem"
    pem.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                          serialization.NoEncryption()))
    info = cli.json("key", "import", *f, "--spec", "ECC_NIST_P256", "--material", str(pem), "--description", "hsm")
    assert info["origin"] == "IMPORTED" and info["usage"] == "SIGN_VERIFY"
    sig = base64.b64decode(cli.json("sign", *f, "--key-id", info["key_id"], stdin=b"m")["signature"])
    private.public_key().verify(sig, b"m", ec.ECDSA(hashes.SHA256()))
    (cli.tmp / "junk.pem").write_bytes(b"-----BEGIN PRIVATE KEY-----\njunk\n-----END PRIVATE KEY-----\n")
    assert cli.run("key", "import", *f, "--spec", "ECC_NIST_P256", "--material", str(cli.tmp / "junk.pem"))[0] == 1


def test_principal_remove(cli: Cli) -> None:
    """Removal is for good: the principal is refused from then on, even its identity, and cannot be
    added back; the last admin cannot be removed."""
    admin, admin_id = new_credentials(cli, "admin")
    f = cli.flags(admin)
    cli.json("admin", "init", *f, "--recovery-keys", "1", "--recovery-dir", str(cli.tmp / "rec"),
             "--auditor-key", str(new_auditor(cli)[0] / "auditor.pub"))
    user, user_id = new_credentials(cli, "user", "--from", str(admin))
    u = cli.flags(user)
    cli.json("admin", "principal", "add", *f, "--principal-id", user_id, "--name", "svc")
    assert cli.run("key", "list", *u)[0] == 0
    remaining = cli.json("admin", "principal", "remove", *f, "--principal-id", user_id)
    assert [p["name"] for p in remaining] == ["admin"]
    code, _, err = cli.run("key", "list", *u)
    assert code == 2 and "KMS_ERR_PERMISSION_DENIED" in err
    code, _, err = cli.run("admin", "principal", "add", *f, "--principal-id", user_id, "--name", "again")
    assert code == 2 and "KMS_ERR_PERMISSION_DENIED" in err
    code, _, err = cli.run("admin", "principal", "remove", *f, "--principal-id", admin_id)
    assert code == 2 and "KMS_ERR_INVALID_ARGUMENT" in err  # the last admin
