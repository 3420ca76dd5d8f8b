"""`kms encrypt|decrypt` of data above the enclave's limit, in process against the fake server over the real
enclave: the envelope format is chosen and detected, errors name the limit and the way around it, and a
refused message leaves no plaintext file behind (exit 2) while an existing file is kept."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from kms.client.types import MAX_PLAINTEXT
from tests.client.format_oracle import parse_header
from tests.client.test_cli import Cli, new_auditor, new_credentials

BIG = 3 * MAX_PLAINTEXT + 5


@pytest.fixture
def cli(server, tmp_path, capsys, monkeypatch) -> Cli:
    for name in ("KMS_SERVER", "KMS_CREDENTIALS", "KMS_MRSIGNER", "KMS_SIMULATED_ROOT", "KMS_OUTPUT"):
        monkeypatch.delenv(name, raising=False)
    return Cli(server, tmp_path, capsys, monkeypatch)


def setup(cli: Cli) -> tuple[list[str], str]:
    admin, _ = new_credentials(cli, "admin")
    f = cli.flags(admin)
    cli.json("admin", "init", *f, "--recovery-keys", "1", "--recovery-dir", str(cli.tmp / "rec"),
             "--auditor-key", str(new_auditor(cli)[0] / "auditor.pub"))
    return f, cli.json("key", "create", *f)["key_id"]


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".part"))


def test_large_input_is_envelope_encrypted_and_detected(cli: Cli) -> None:
    f, key = setup(cli)
    data = os.urandom(BIG)
    (cli.tmp / "big.bin").write_bytes(data)
    enc = cli.json("encrypt", *f, "--key-id", key, "--in", str(cli.tmp / "big.bin"), "--context", "app=demo",
                   "--out", str(cli.tmp / "big.enc"))
    assert enc["format"] == "envelope" and enc["plaintext_bytes"] == BIG and enc["key_id"] == key
    message = (cli.tmp / "big.enc").read_bytes()
    assert parse_header(message).context["app"] == "demo"
    dec = cli.json("decrypt", *f, "--in", str(cli.tmp / "big.enc"), "--context", "app=demo",
                   "--out", str(cli.tmp / "big.out"))
    assert dec["format"] == "envelope" and dec["plaintext_bytes"] == BIG
    assert (cli.tmp / "big.out").read_bytes() == data
    assert stat.S_IMODE((cli.tmp / "big.out").stat().st_mode) == 0o600
    assert leftovers(cli.tmp) == []

    # from stdin (the size is found by reading), and a small input forced into the envelope format
    enc = cli.json("encrypt", *f, "--key-id", key, "--out", str(cli.tmp / "stdin.enc"), stdin=data)
    assert enc["plaintext_bytes"] == BIG
    cli.json("decrypt", *f, "--in", str(cli.tmp / "stdin.enc"), "--out", str(cli.tmp / "stdin.out"))
    assert (cli.tmp / "stdin.out").read_bytes() == data
    small = cli.tmp / "small.txt"
    small.write_bytes(b"short")
    cli.json("encrypt", *f, "--key-id", key, "--envelope", "always", "--in", str(small), "--out",
             str(cli.tmp / "small.enc"))
    assert (cli.tmp / "small.enc").read_bytes()[:1] == b"\x02"
    code, out, err = cli.run("decrypt", *f, "--in", str(cli.tmp / "small.enc"), "--out", "-")
    assert code == 0 and out == "short", err
    code, out, err = cli.run("decrypt", *f, "--in", "-", "--out", "-", stdin=(cli.tmp / "small.enc").read_bytes())
    assert code == 0 and out == "short", err
    assert cli.json("decrypt", *f, "--in", str(cli.tmp / "small.enc"), "--out", str(cli.tmp / "s"))["key_id"] == key
    (cli.tmp / "small.b64").write_bytes(base64.encodebytes((cli.tmp / "small.enc").read_bytes()))
    code, out, err = cli.run("decrypt", *f, "--in", str(cli.tmp / "small.b64"), "--in-base64", "--out", "-")
    assert code == 0 and out == "short", err
    code, _, err = cli.run("encrypt", *f, "--key-id", "alias/none", "--in", str(cli.tmp / "big.bin"), "--out",
                           str(cli.tmp / "none.enc"))
    assert code == 2 and "ALIAS_NOT_FOUND" in err and not (cli.tmp / "none.enc").exists(), err
    # the direct format still goes through the enclave, and stays the default below the limit
    cli.json("encrypt", *f, "--key-id", key, "--in", str(small), "--out", str(cli.tmp / "direct.enc"))
    assert (cli.tmp / "direct.enc").read_bytes()[:2] == b"\x01\x24"
    code, out, err = cli.run("decrypt", *f, "--in", str(cli.tmp / "direct.enc"), "--out", "-")
    assert code == 0 and out == "short", err


def test_errors_name_the_limit_and_the_way_around_it(cli: Cli) -> None:
    f, key = setup(cli)
    big = cli.tmp / "big.bin"
    big.write_bytes(os.urandom(MAX_PLAINTEXT + 1))
    code, _, err = cli.run("encrypt", *f, "--key-id", key, "--in", str(big), "--envelope", "never")
    assert code == 1 and f"larger than {MAX_PLAINTEXT} bytes" in err and "--envelope never" in err
    assert err.count("\n") == 1
    code, _, err = cli.run("encrypt", *f, "--key-id", key, "--in", str(big))
    assert code == 1 and f"above {MAX_PLAINTEXT} bytes" in err and "--out FILE" in err
    cli.json("encrypt", *f, "--key-id", key, "--in", str(big), "--out", str(cli.tmp / "big.enc"))
    code, _, err = cli.run("decrypt", *f, "--in", str(cli.tmp / "big.enc"))
    assert code == 1 and "--out FILE" in err
    code, _, err = cli.run("encrypt", *f, "--key-id", key, "--in", str(big), "--out", str(cli.tmp / "no/such/dir"))
    assert code == 1 and "cannot write" in err


def test_refused_messages_leave_no_plaintext_file(cli: Cli) -> None:
    f, key = setup(cli)
    data = os.urandom(BIG)
    (cli.tmp / "big.bin").write_bytes(data)
    cli.json("encrypt", *f, "--key-id", key, "--in", str(cli.tmp / "big.bin"), "--context", "app=demo",
             "--out", str(cli.tmp / "big.enc"))
    message = (cli.tmp / "big.enc").read_bytes()
    out = cli.tmp / "plain.out"
    cases = {
        "wrong context": (message, ["--context", "app=other"]),
        "no context": (message, []),
        "tampered frame": (message[:-500] + bytes([message[-500] ^ 1]) + message[-499:], ["--context", "app=demo"]),
        "truncated": (message[:-1], ["--context", "app=demo"]),
    }
    for name, (body, flags) in cases.items():
        (cli.tmp / "bad.enc").write_bytes(body)
        code, _, err = cli.run("decrypt", *f, "--in", str(cli.tmp / "bad.enc"), *flags, "--out", str(out))
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, (name, err)
        assert not out.exists() and leftovers(cli.tmp) == [], name
    out.write_bytes(b"kept")  # an existing file is replaced only by a verified plaintext
    code, _, err = cli.run("decrypt", *f, "--in", str(cli.tmp / "bad.enc"), "--context", "app=demo", "--out", str(out))
    assert code == 2 and out.read_bytes() == b"kept" and leftovers(cli.tmp) == []
    code, _, err = cli.run("decrypt", *f, "--in", str(cli.tmp / "bad.enc"), "--context", "app=demo", "--out", "-")
    assert code == 2 and "discard it" in err
