"""`kms sim` commands: init, set-tcb, revoke, collateral, pccs (SIGTERM), and usage errors exiting 1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from kms import cli
from kms.attestation import load_collateral_json
from kms.sim import SimPlatform, read_cpusvn
from kms.sim.levels import tcb_level

REPO = Path(__file__).resolve().parents[2]


def main(argv: list[str]) -> int:
    return cli.main(["sim", *argv])


def test_init_is_idempotent_and_shows_the_platform(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "--data-dir", str(data_dir), "--output", "json"]) == 0
    captured = capsys.readouterr()
    info = json.loads(captured.out)
    assert "SIMULATED" in captured.err and info["tcb_level"] == "UpToDate" and info["pck_ca"] == "processor"
    assert Path(info["root_certificate"]).read_bytes() == SimPlatform(data_dir).root_pem()
    assert main(["init", "--data-dir", str(data_dir), "--pck-ca", "platform"]) == 0
    assert "pck_ca: platform" in capsys.readouterr().out
    assert SimPlatform(data_dir).root_pem() == Path(info["root_certificate"]).read_bytes()


def test_set_tcb_and_collateral(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["set-tcb", "OutOfDate", "--data-dir", str(data_dir), "--qe-svn", "6"]) == 0
    assert "restart enclaves" in capsys.readouterr().out
    assert read_cpusvn(data_dir) == tcb_level("OutOfDate").cpusvn and SimPlatform(data_dir).qe_isvsvn() == 6
    out = tmp_path / "c.json"
    assert main(["collateral", "--out", str(out), "--data-dir", str(data_dir)]) == 0
    assert load_collateral_json(out).pck_crl_issuer_chain[0] == SimPlatform(data_dir).cas["processor"]


def test_revoke(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    platform = SimPlatform(data_dir)
    assert main(["revoke", "--pck", "--data-dir", str(data_dir)]) == 0
    leaf = platform.pck_chain()[0]
    assert platform.crl("processor").get_revoked_certificate_by_serial_number(leaf.serial_number)
    assert main(["revoke", "--ca", "platform", "--data-dir", str(data_dir)]) == 0
    assert platform.crl("root").get_revoked_certificate_by_serial_number(platform.cas["platform"].serial_number)
    assert main(["revoke", "--serial", "abc", "--crl", "platform", "--data-dir", str(data_dir)]) == 0
    assert platform.crl("platform").get_revoked_certificate_by_serial_number(0xABC)
    assert main(["revoke", "--clear", "--data-dir", str(data_dir)]) == 0
    assert all(len(platform.crl(n)) == 0 for n in ("root", "processor", "platform"))


@pytest.mark.parametrize("argv", [[], ["set-tcb", "Perfect"], ["revoke"], ["revoke", "--serial", "12"],
                                  ["revoke", "--serial", "xyz", "--crl", "root"], ["collateral"],
                                  ["pccs", "--port", "x"], ["init", "--pck-ca", "socket"], ["bogus"]])
def test_usage_errors_exit_1(argv: list[str], data_dir: Path) -> None:
    try:
        code = main([*argv, "--data-dir", str(data_dir)] if argv and argv[0] != "bogus" else argv)
    except SystemExit as exc:
        code = exc.code
    assert code == 1


def test_pccs_serves_until_sigterm(data_dir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "kms", "sim", "pccs", "--port", "0", "--data-dir", str(data_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        line = proc.stdout.readline()
        url = line.split()[3]
        assert url.endswith("/sgx/certification/v4") and url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{url}/qe/identity", timeout=10) as resp:
            assert resp.status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
