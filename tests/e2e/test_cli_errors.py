"""Bad input to every `kms` command: one line on stderr that names the flag, setting or file at fault, exit 1
(local or usage) or 2 (the server or a verification), never a traceback; against a real `kms serve` on loopback
(its API, health and metrics ports) and a port where nothing listens.

The commands are those of kms.cli.build_parser(): a command without an entry in tests/e2e/cli_cases.py fails
test_every_command_has_bad_input_cases, and the generic cases (server, identity, output) reach every command
that takes those flags without being listed. The cases run in this process (main(), with fd-level capture);
what only a process shows (gRPC's C-core log lines, the entry point's exit) runs as subprocesses below.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import logging
import os
import re
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog
from cryptography.hazmat.primitives.asymmetric import ed25519

from kms.cli import build_parser, main
from tests.e2e.cli_cases import COMMANDS, IDENTITY, OUTPUT, SERVER, Case
from tests.e2e.server import REPO, ServerProcess

C_CORE_LINE = re.compile(r"^[EWID]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ [\w./-]+:\d+\]", re.M)  # absl's prefix


def leaf_parsers() -> dict[str, argparse.ArgumentParser]:
    """Every command of the CLI by its words ("key create"), from the parser itself."""
    out: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, words: tuple[str, ...]) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            out[" ".join(words)] = parser
        for action in subs:
            for name, sub in action.choices.items():
                walk(sub, (*words, name))

    walk(build_parser(), ())
    return out


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {o: a for a in parser._actions for o in a.option_strings}


def generic_cases(parser: argparse.ArgumentParser, without: frozenset[str] = frozenset()) -> tuple[Case, ...]:
    """The cases a command gets for the flags it has (less the sets its entry leaves out)."""
    opts, cases = _options(parser), []
    if "--server" in opts and "server" not in without:
        cases += SERVER
    if "--credentials" in opts and "--mrsigner" in opts and "identity" not in without:
        cases += IDENTITY
    if "--output" in opts and "KMS_OUTPUT" in (opts["--output"].help or "") and "output" not in without:
        cases += OUTPUT
    return tuple(cases)


def all_cases() -> Iterator[tuple[str, tuple[str, ...], Case]]:
    for name, parser in leaf_parsers().items():
        command = COMMANDS.get(name)
        if command is None:
            continue  # test_every_command_has_bad_input_cases names it
        for c in (*command.cases, *generic_cases(parser, command.without)):
            yield name, command.valid, c  # the case's flags come after `valid`: a repeated flag overrides it


def _id(item: tuple[str, tuple[str, ...], Case]) -> str:
    name, _, c = item
    env = " ".join(f"{k}={v}" for k, v in c.env.items())
    return f"{name} {' '.join(c.argv)} {env}".strip()


CASES = list(all_cases())


def test_every_command_has_bad_input_cases() -> None:
    commands = set(leaf_parsers())
    assert not commands - set(COMMANDS), f"commands without bad-input cases in cli_cases.py: {commands - set(COMMANDS)}"
    assert not set(COMMANDS) - commands, f"cases for commands that do not exist: {set(COMMANDS) - commands}"
    assert all(COMMANDS[c].cases for c in commands)


@dataclass
class World:
    values: dict[str, str]
    env: dict[str, str]
    scratch: Path

    def fill(self, text: str) -> str:
        return text.format(**self.values)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kms(*argv: str, env: dict[str, str], cwd: Path) -> str:
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "kms", *argv, "--output", "json"], capture_output=True, text=True,
                          env={**os.environ, **env}, cwd=cwd, timeout=120)
    assert proc.returncode == 0, (argv, proc.stderr)
    return proc.stdout


@pytest.fixture(scope="module")
def server(build: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("cli-errors") / "data")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def world(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> World:
    """An initialized domain (admin credentials, an AES and an Ed25519 key, an audit export) and files to misuse."""
    home = tmp_path_factory.mktemp("cli-world")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMS_")}
    env.update(KMS_SERVER=server.api, KMS_MRSIGNER=server.mrsigner.hex(), KMS_SIMULATED_ROOT=str(server.root_pem),
               KMS_ALLOW_SIMULATION_INSECURE="1", KMS_CREDENTIALS=str(home / "admin"))
    _kms("credentials", "new", "--out", str(home / "admin"), env=env, cwd=home)
    auditor = json.loads(_kms("audit", "keygen", "--out", "auditor", env=env, cwd=home))
    init = json.loads(_kms("admin", "init", "--recovery-keys", "1", "--recovery-dir", "recovery", "--auditor-key",
                           auditor["public_key_file"], env=env, cwd=home))
    aes = json.loads(_kms("key", "create", env=env, cwd=home))["key_id"]
    ed = json.loads(_kms("key", "create", "--spec", "ED25519", env=env, cwd=home))["key_id"]
    audit_key = json.loads(_kms("admin", "identity", env=env, cwd=home))["audit_public_key"]
    (home / "plain.txt").write_bytes(b"hello\n")
    (home / "garbage").write_bytes(b"\x00\xff not base64, not JSON, not PEM ~~~\n")
    bad = home / "not-credentials"
    bad.mkdir()
    (bad / "cert.pem").write_text("not a certificate\n")
    (bad / "key.pem").write_text("not a key\n")
    (home / "unknown.toml").write_text('colour = "blue"\n')
    (home / "bad-value.toml").write_text('enclave_tcs = "eight"\n')
    (home / "policy.json").write_text('{"statements": []}\n')
    (home / "validator.toml").write_text('[kms]\nserver = "nowhere"\n[signer]\n[[validator]]\nchain_id = "c"\n'
                                         'key_id = "k"\naddr = "tcp://127.0.0.1:9"\n')
    (home / "eth-remote.toml").write_text('[eth]\nlisten = "0.0.0.0:9000"\n')
    (home / "eth-bad-server.toml").write_text('[kms]\nserver = "nowhere"\n[eth]\n')
    seed = os.urandom(32)
    pub = ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    (home / "priv_validator_key.json").write_text(json.dumps({"priv_key": {
        "type": "tendermint/PrivKeyEd25519", "value": base64.b64encode(seed + pub).decode()}}))
    (home / "priv_validator_state.json").write_text('{"height": "0", "round": 0, "step": 0}\n')
    validator = json.loads(_kms("validator", "create", "--chain-id", "test-1", env=env, cwd=home))["key_id"]
    state_export = json.loads(_kms("validator", "status", "--key-id", validator, env=env, cwd=home))["export"]
    (home / "state-export.b64").write_text(state_export + "\n")
    eth = json.loads(_kms("validator", "eth", "create", "--genesis-validators-root", "11" * 32, env=env,
                          cwd=home))["key_id"]
    _kms("validator", "eth", "export-slashing", "--key-id", eth, "--out", str(home / "interchange.json"), env=env,
         cwd=home)
    other = json.loads((home / "interchange.json").read_text())
    other["metadata"]["genesis_validators_root"] = "0x" + "22" * 32
    (home / "interchange-other.json").write_text(json.dumps(other))
    (home / "keystore.json").write_text(json.dumps({  # well-formed EIP-2335; no password opens it
        "version": 4, "crypto": {
            "kdf": {"function": "pbkdf2", "params": {"dklen": 32, "c": 16, "prf": "hmac-sha256", "salt": "00" * 32}},
            "checksum": {"function": "sha256", "params": {}, "message": "00" * 32},
            "cipher": {"function": "aes-128-ctr", "params": {"iv": "00" * 16}, "message": "00" * 32}}}))
    export = home / "audit.jsonl"
    import subprocess

    subprocess.run([sys.executable, "-m", "kms", "audit", "export", "--data-dir", str(server.data_dir), "--out",
                    str(export)], check=True, capture_output=True, env=env, cwd=home, timeout=120)
    scratch = home / "cwd"
    scratch.mkdir()
    values = {
        "repo": str(REPO), "tmp": str(home / "tmp"), "file": str(home / "plain.txt"),
        "garbage": str(home / "garbage"), "missing": str(home / "missing" / "nothing"),
        "not_credentials": str(bad), "unknown_setting_toml": str(home / "unknown.toml"),
        "bad_value_toml": str(home / "bad-value.toml"), "policy": str(home / "policy.json"),
        "validator_bad_server": str(home / "validator.toml"), "export": str(export), "audit_key": audit_key,
        "auditor_pub": auditor["public_key_file"], "auditor_key": auditor["private_key_file"],
        "creds": str(home / "admin"), "domain": init["domain_id"], "share": init["share_files"][0],
        "recovery_key": init["recovery_private_keys"][0], "aes": aes, "ed": ed, "data": str(server.data_dir),
        "api": server.api, "health": server.info["health_listen"], "metrics": server.metrics,
        "down": f"127.0.0.1:{_free_port()}", "validator_key": str(home / "priv_validator_key.json"),
        "validator_state": str(home / "priv_validator_state.json"), "validator": validator,
        "state_export": str(home / "state-export.b64"), "mrsigner": server.mrsigner.hex(),
        "eth_remote": str(home / "eth-remote.toml"), "eth_bad_server": str(home / "eth-bad-server.toml"),
        "eth": eth, "eth_keystore": str(home / "keystore.json"), "eth_interchange": str(home / "interchange.json"),
        "eth_interchange_other": str(home / "interchange-other.json"),
    }
    (home / "tmp").mkdir()
    return World({k: str(Path(home, v)) if k in ("share", "recovery_key", "auditor_pub", "auditor_key") else v
                  for k, v in values.items()},
                 {k: v for k, v in env.items() if k.startswith("KMS_")}, scratch)


def run_cli(world: World, argv: list[str], env: dict[str, str], capfd: pytest.CaptureFixture[str],
            monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    for name in [k for k in os.environ if k.startswith("KMS_")]:
        monkeypatch.delenv(name)
    for name, value in {**world.env, **env}.items():
        monkeypatch.setenv(name, world.fill(value))
    monkeypatch.chdir(world.scratch)  # a relative default (data, build/...) lands here, not in the checkout
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    capfd.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: usage errors, --help
        code = exc.code if isinstance(exc.code, int) else 1
    finally:  # a command that set up logging (validator run) leaves it on this test's captured stream
        for handler in [h for h in logging.getLogger().handlers if getattr(h, "_kms", False)]:
            logging.getLogger().removeHandler(handler)
        structlog.reset_defaults()
    out, err = capfd.readouterr()
    return code, out, err


def _is_log_line(line: str) -> bool:
    """A structured log line (JSON with an event): the daemon's log channel (`validator run`), not its error."""
    try:
        return isinstance(doc := json.loads(line), dict) and "event" in doc
    except ValueError:
        return False


@pytest.mark.parametrize("item", CASES, ids=[_id(i) for i in CASES])
def test_bad_input_is_one_line_naming_the_fault(world: World, item: tuple[str, tuple[str, ...], Case],
                                               capfd: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    command, valid, c = item
    argv = [*command.split(), *(world.fill(a) for a in ((() if c.alone else valid) + c.argv))]
    code, _, err = run_cli(world, argv, c.env, capfd, monkeypatch)
    lines = [line for line in err.splitlines() if line.strip() and not _is_log_line(line)]
    assert "Traceback" not in err and not C_CORE_LINE.search(err), err
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert code == c.code, f"exit {code}, expected {c.code}: {lines[0]}"
    for name in c.names:
        assert world.fill(name) in lines[0], f"{world.fill(name)!r} not named in: {lines[0]}"
    for path in c.absent:
        assert not Path(world.fill(path)).exists(), f"{world.fill(path)} was created"


@pytest.mark.parametrize("where", ["down", "health", "metrics"])
def test_the_entry_point_prints_no_grpc_core_lines(world: World, where: str) -> None:
    """What only a process shows: gRPC's C core writes its own log lines to fd 2 unless silenced before it loads."""
    import subprocess

    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("KMS_", "GRPC_"))}, **world.env}
    proc = subprocess.run([sys.executable, "-m", "kms", "key", "list", "--server", world.values[where]],
                          capture_output=True, text=True, env=env, cwd=world.scratch, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert not C_CORE_LINE.search(proc.stderr) and "Traceback" not in proc.stderr
    assert world.values[where] in lines[0] and "--server" in lines[0]
