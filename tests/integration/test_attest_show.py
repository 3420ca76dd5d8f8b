"""`kms attest show` end to end: the built enclave's RA-TLS certificate, quoted by the simulated QE,
verified by the DCAP verifier; and the same certificate refused without the simulation relaxation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def kms(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kms", *args], capture_output=True, text=True, timeout=120)


def test_show_verifies_the_enclave_and_writes_the_evidence(build, tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    shown = kms("attest", "show", "--data-dir", str(data), "--out-dir", str(out), "--output", "json")
    assert shown.returncode == 0, shown.stderr
    info = json.loads(shown.stdout)
    assert info["ok"] and info["tcb_status"] == "UpToDate" and info["simulated"] and info["ratls_format"] == "dice"
    assert "simulated SGX platform" in shown.stderr
    common = ["--collateral", str(out / "collateral.json"), "--root", str(out / "root-ca.pem"),
              "--mrsigner", info["identity"]["mrsigner"], "--output", "json"]
    refused = kms("attest", "verify-cert", "--cert", str(out / "cert.der"), *common)
    assert refused.returncode == 2 and json.loads(refused.stdout)["failed_step"] == "policy_simulation"
    accepted = kms("attest", "verify-cert", "--cert", str(out / "cert.der"), *common, "--allow-simulation-insecure")
    assert accepted.returncode == 0, accepted.stdout
    wrong = kms("attest", "verify-cert", "--cert", str(out / "cert.der"), *common[:-4], "--mrsigner", "00" * 32,
                "--allow-simulation-insecure", "--output", "json")
    assert wrong.returncode == 2 and json.loads(wrong.stdout)["failed_step"].startswith("policy")


def test_show_reports_an_out_of_date_platform(build, tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert kms("sim", "init", "--data-dir", str(data)).returncode == 0
    assert kms("sim", "set-tcb", "OutOfDate", "--data-dir", str(data)).returncode == 0
    shown = kms("attest", "show", "--data-dir", str(data), "--output", "json")
    assert shown.returncode == 2
    info = json.loads(shown.stdout)
    assert not info["ok"] and info["failed_step"] == "policy_tcb_status" and info["tcb_status"] == "OutOfDate"
