"""The client CLI (`kms key|encrypt|decrypt|sign|verify|public-key|admin|credentials`) in process,
against the fake server over the real enclave: flows, output formats, secrets I/O and exit codes."""

from __future__ import annotations

import base64
import io
import json
import stat
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from kms.cli import main
from kms.client.recovery import open_share


class Cli:
    def __init__(self, server, tmp: Path, capsys, monkeypatch) -> None:
        self.server, self.tmp, self.capsys, self.monkeypatch = server, tmp, capsys, monkeypatch
        self.root = server.platform.directory / "root-ca.pem"

    def flags(self, creds: Path, mrsigner: str | None = None, simulation: bool = True) -> list[str]:
        out = ["--server", self.server.target, "--credentials", str(creds), "--simulated-root", str(self.root),
               "--mrsigner", mrsigner or self.server.mrsigner.hex()]
        return [*out, "--allow-simulation-insecure"] if simulation else out

    def run(self, *argv: str, stdin: bytes = b"") -> tuple[int, str, str]:
        self.monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        self.capsys.readouterr()
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse usage errors and --help
            code = int(exc.code or 0)
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *argv: str, stdin: bytes = b"") -> dict:
        code, out, err = self.run(*argv, "--output", "json", stdin=stdin)
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def cli(server, tmp_path, capsys, monkeypatch) -> Cli:
    for name in ("KMS_SERVER", "KMS_CREDENTIALS", "KMS_MRSIGNER", "KMS_SIMULATED_ROOT", "KMS_OUTPUT"):
        monkeypatch.delenv(name, raising=False)
    return Cli(server, tmp_path, capsys, monkeypatch)


def new_auditor(cli: Cli, name: str = "auditor") -> tuple[Path, str]:
    """An auditor key pair made by `kms audit keygen`: (its directory, its public key in hex)."""
    info = cli.json("audit", "keygen", "--out", str(cli.tmp / name))
    assert stat.S_IMODE((cli.tmp / name / "auditor.key").stat().st_mode) == 0o600
    return cli.tmp / name, info["auditor_public_key"]


def new_credentials(cli: Cli, name: str, *pin: str) -> tuple[Path, str]:
    """New credentials; `pin` (--domain HEX or --from DIR) pins them to a domain."""
    d = cli.tmp / name
    info = cli.json("credentials", "new", "--out", str(d), "--name", name, *pin)
    assert stat.S_IMODE((d / "key.pem").stat().st_mode) == 0o600
    return d, info["principal_id"]


def test_walkthrough(cli: Cli) -> None:
    admin, admin_id = new_credentials(cli, "admin")
    f = cli.flags(admin)
    rec = cli.tmp / "recovery"
    auditor, _ = new_auditor(cli)
    init = cli.json("admin", "init", *f, "--recovery-keys", "3", "--recovery-dir", str(rec), "--threshold", "2",
                    "--auditor-key", str(auditor / "auditor.pub"))
    assert init["admin_principal_id"] == admin_id and init["shares"] == 3 and init["threshold"] == 2
    assert init["auditors"] == 1
    for i in range(3):
        assert stat.S_IMODE((rec / "keys" / f"recovery-{i}.key").stat().st_mode) == 0o600
        doc = json.loads((rec / "shares" / f"share-{i}.json").read_text())
        key = load_pem_private_key((rec / "keys" / f"recovery-{i}.key").read_bytes(), None)
        assert isinstance(key, x25519.X25519PrivateKey)
        x, share = open_share(doc, key)
        assert x == i + 1 and len(share) == 32

    key = cli.json("key", "create", *f, "--description", "demo")
    kid = key["key_id"]
    plain = cli.tmp / "plain.txt"
    plain.write_bytes(b"attack at dawn")
    ct = cli.tmp / "ct.bin"
    enc = cli.json("encrypt", *f, "--key-id", kid, "--in", str(plain), "--out", str(ct), "--context", "app=demo")
    assert enc["ciphertext_file"] == str(ct) and enc["key_version"] == 1
    code, out, err = cli.run("decrypt", *f, "--in", str(ct), "--context", "app=demo", "--out", "-")
    assert code == 0 and out == "attack at dawn", err
    code, _, err = cli.run("decrypt", *f, "--in", str(ct), "--context", "app=other")
    assert code == 2 and "KMS_ERR_INVALID_CIPHERTEXT" in err and "Traceback" not in err

    signing = cli.json("key", "create", *f, "--spec", "ed25519")["key_id"]
    sig = cli.json("sign", *f, "--key-id", signing, stdin=b"block 1")
    assert sig["algorithm"] == "ED25519_PURE"
    sig_file = cli.tmp / "sig.b64"
    sig_file.write_text(sig["signature"])
    ok = cli.json("verify", *f, "--key-id", signing, "--signature", str(sig_file), "--signature-base64",
                  stdin=b"block 1")
    assert ok["valid"] is True
    code, _, err = cli.run("verify", *f, "--key-id", signing, "--signature", str(sig_file), "--signature-base64",
                           stdin=b"block 2")
    assert code == 2 and "NOT valid" in err
    pem = cli.json("public-key", *f, "--key-id", signing, "--pem")["public_key_pem"]
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")

    rotated = cli.json("key", "rotate", *f, "--key-id", kid)
    assert rotated["current_version"] == 2
    code, out, _ = cli.run("decrypt", *f, "--in", str(ct), "--context", "app=demo", "--out", "-")
    assert code == 0 and out == "attack at dawn"
    dec = cli.json("decrypt", *f, "--in-base64", "--context", "app=demo",
                   stdin=base64.b64encode(ct.read_bytes()))
    assert base64.b64decode(dec["plaintext"]) == b"attack at dawn" and dec["key_version"] == 1

    code, out, _ = cli.run("key", "list", *f)
    assert code == 0 and kid in out and "KEY_ID" in out
    assert cli.json("key", "disable", *f, "--key-id", kid)["state"] == "DISABLED"
    assert cli.json("key", "enable", *f, "--key-id", kid)["state"] == "ENABLED"
    assert cli.json("key", "describe", *f, "--key-id", kid)["version_count"] == 2


def test_users_principals_and_grants(cli: Cli) -> None:
    admin, _ = new_credentials(cli, "admin")
    user, user_id = new_credentials(cli, "user")
    f, uf = cli.flags(admin), cli.flags(user)
    pub = cli.tmp / "r.pub"
    pub.write_bytes(x25519.X25519PrivateKey.generate().public_key().public_bytes_raw())
    auditor, _ = new_auditor(cli)
    cli.json("admin", "init", *f, "--recovery-public-key", str(pub), "--shares-dir", str(cli.tmp / "shares"),
             "--auditor-key", str(auditor / "auditor.pub"))
    code, _, err = cli.run("encrypt", *uf, "--key-id", "k", stdin=b"x")
    assert code == 1 and "not pinned" in err  # the user's credentials name no domain yet: nothing is trusted
    assert cli.json("credentials", "pin", "--credentials", str(user), "--from", str(admin))["domain_id"] == \
        cli.json("credentials", "show", "--credentials", str(admin))["domain_id"]
    kid = cli.json("key", "create", *f)["key_id"]
    listed = cli.json("admin", "principal", "add", *f, "--certificate", str(user / "cert.pem"), "--name", "svc")
    assert {p["name"] for p in listed} == {"admin", "svc"}
    code, _, err = cli.run("encrypt", *uf, "--key-id", kid, stdin=b"x")
    assert code == 2 and "PERMISSION_DENIED" in err
    code, _, err = cli.run("admin", "principal", "list", *uf)
    assert code == 2 and "PERMISSION_DENIED" in err
    grant = cli.json("grant", "create", *f, "--key-id", kid, "--principal-id", user_id, "--operations", "*")
    assert grant["operations"] == "encrypt,decrypt,sign,verify,mac,derive,describe"
    assert cli.json("encrypt", *uf, "--key-id", kid, stdin=b"x")["key_version"] == 1
    assert [g["grantee"] for g in cli.json("grant", "list", *f, "--key-id", kid)] == [user_id]  # one grant system
    cli.json("grant", "revoke", *f, "--key-id", kid, "--grant-id", grant["grant_id"])
    assert cli.run("encrypt", *uf, "--key-id", kid, stdin=b"x")[0] == 2


def test_verification_failures_exit_2_and_send_nothing(cli: Cli) -> None:
    creds, _ = new_credentials(cli, "admin", "--domain", "00" * 16)
    code, _, err = cli.run("key", "list", *cli.flags(creds, mrsigner="00" * 32))
    assert code == 2 and "policy_mrsigner" in err and "nothing was sent" in err
    code, _, err = cli.run("key", "list", *cli.flags(creds, simulation=False))
    assert code == 2 and "policy_simulation" in err
    assert cli.server.session_rpcs == 0


def test_local_errors_exit_1(cli: Cli) -> None:
    creds, _ = new_credentials(cli, "admin")
    f = cli.flags(creds)
    assert cli.run("key", "create", "--bogus")[0] == 1  # usage
    code, _, err = cli.run("key", "list", "--server", cli.server.target)
    assert code == 1 and "credentials" in err
    code, _, err = cli.run("key", "list", "--credentials", str(creds), "--server", cli.server.target)
    assert code == 1 and "MRSIGNER" in err  # no pinned identity: refused locally
    code, _, err = cli.run("encrypt", *f, "--key-id", "k", "--in", str(cli.tmp / "missing"))
    assert code == 1 and "cannot read plaintext" in err
    code, _, err = cli.run("encrypt", *f, "--key-id", "k", "--context", "novalue", stdin=b"x")
    assert code == 1
    code, _, err = cli.run("credentials", "new", "--out", str(creds))
    assert code == 1 and "refusing to overwrite" in err
    auditor, _ = new_auditor(cli)
    code, _, err = cli.run("admin", "init", *f, "--recovery-keys", "99", "--auditor-key", str(auditor / "auditor.pub"))
    assert code == 1 and "--recovery-keys is 1.." in err
    code, _, err = cli.run("admin", "init", *f, "--recovery-keys", "2", "--recovery-dir", str(cli.tmp / "r"))
    assert code == 1 and "--auditor-key" in err  # no auditor: refused before anything is generated or sent
    assert not (cli.tmp / "r").exists()
    code, _, err = cli.run("admin", "init", *f, "--recovery-keys", "2", "--recovery-dir", str(cli.tmp / "r"),
                           "--auditor-key", str(auditor / "auditor.key"))  # the private key is not a public key
    assert code == 1 and "auditor public key" in err
    assert cli.server.session_rpcs == 0


def test_unreachable_server_exits_2(cli: Cli) -> None:
    creds, _ = new_credentials(cli, "admin", "--domain", "00" * 16)
    f = cli.flags(creds)
    f[f.index("--server") + 1] = "127.0.0.1:1"
    code, _, err = cli.run("key", "list", *f, "--timeout", "2")
    assert code == 2 and "connection refused" in err and "127.0.0.1:1" in err and "Traceback" not in err


def test_pins_heads_and_new_domain(cli: Cli) -> None:
    admin, _ = new_credentials(cli, "admin")
    f = cli.flags(admin)
    auditor = ("--auditor-key", str(new_auditor(cli)[0] / "auditor.pub"))
    rec = ("--recovery-keys", "1", "--recovery-dir", str(cli.tmp / "rec"), *auditor)
    init = cli.json("admin", "init", *f, *rec)
    shown = cli.json("credentials", "show", "--credentials", str(admin))
    assert shown["domain_id"] == init["domain_id"] and shown["state_head"] == init["state_head"]
    sessions = cli.server.session_rpcs
    code, _, err = cli.run("admin", "init", *f, *rec)  # pinned already: refused here
    assert code == 1 and "--new-domain" in err and cli.server.session_rpcs == sessions
    code, _, err = cli.run("admin", "init", *f, "--new-domain", "--recovery-keys", "1", "--recovery-dir",
                           str(cli.tmp / "rec2"), *auditor)
    assert code == 2 and "already serves domain" in err  # a server with a domain is not one to create one on
    assert cli.server.session_rpcs == sessions
    code, out, err = cli.run("admin", "principal", "list", *f)
    assert code == 0 and f"domain {init['domain_id']}  state head " in err and out.startswith("PRINCIPAL_ID")
    ident = cli.json("admin", "identity", *f)
    assert ident["domain_id"] == init["domain_id"] and ident["state_head"]

    other = "ab" * 16
    code, _, err = cli.run("credentials", "pin", "--credentials", str(admin), "--domain", other)
    assert code == 1 and "--replace" in err
    assert cli.json("credentials", "pin", "--credentials", str(admin), "--domain", other, "--replace")["domain_id"] \
        == other
    code, _, err = cli.run("key", "list", *f)
    assert code == 2 and "not the pinned domain" in err and cli.server.session_rpcs == sessions + 2
    cli.json("credentials", "pin", "--credentials", str(admin), "--domain", init["domain_id"], "--replace")
    assert cli.json("credentials", "show", "--credentials", str(admin))["state_head"] == ident["state_head"]
    bob, _ = new_credentials(cli, "bob", "--from", str(admin))  # the admin's pin and head travel with --from
    assert cli.json("credentials", "show", "--credentials", str(bob))["state_head"] == ident["state_head"]
    forgot = cli.json("credentials", "forget-head", "--credentials", str(bob))
    assert forgot["forgotten_head"] == ident["state_head"]
    assert cli.json("credentials", "show", "--credentials", str(bob))["state_head"] is None
    (bob / "state.json").write_text("{")
    code, _, err = cli.run("key", "list", *cli.flags(bob))
    assert code == 1 and "corrupt" in err and (bob / "state.json").read_text() == "{"  # never reset


def test_auditors_are_set_by_admins(cli: Cli) -> None:
    admin, _ = new_credentials(cli, "admin")
    f = cli.flags(admin)
    first, _ = new_auditor(cli, "first")
    cli.json("admin", "init", *f, "--recovery-keys", "1", "--recovery-dir", str(cli.tmp / "rec"),
             "--auditor-key", str(first / "auditor.pub"))
    user, user_id = new_credentials(cli, "user", "--from", str(admin))
    uf = cli.flags(user)
    cli.json("admin", "principal", "add", *f, "--principal-id", user_id, "--name", "svc")
    second, second_pub = new_auditor(cli, "second")
    third, third_pub = new_auditor(cli, "third")
    keys = ["--auditor-key", str(second / "auditor.pub"), "--auditor-key", str(third / "auditor.pub")]
    code, _, err = cli.run("admin", "auditors", "set", *uf, *keys)
    assert code == 2 and "PERMISSION_DENIED" in err
    assert cli.json("admin", "auditors", "set", *f, *keys)["auditors"] == [second_pub, third_pub]
    code, _, err = cli.run("admin", "auditors", "set", *f, "--auditor-key", str(second / "auditor.pub"),
                           "--auditor-key", str(second / "auditor.pub"))
    assert code == 1 and "twice" in err
