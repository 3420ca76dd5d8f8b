"""The `quoting` setting: the simulated QE by default (logged); `--quoting dcap` on this simulated platform is
refused at start-up with a typed error that says why, both when Intel's DCAP quote library is missing and when
it loads but the CPU is the simulated one."""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
from pathlib import Path

import pytest

from kms.service.dcap import LIBRARY
from tests.api.helpers import REPO, SubprocessServer, clean_env
from tests.service.fake_dcap import build_fake_dcap

PORTS = ("--listen=127.0.0.1:0", "--health-listen=127.0.0.1:0", "--metrics-listen=127.0.0.1:0")


def _serve_dcap(data: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kms", "serve", f"--data-dir={data}", "--quoting=dcap",
                           "--no-sim-pccs", *PORTS], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**clean_env(), **env})


def _failure(stderr: str) -> dict:
    (line,) = [json.loads(x) for x in stderr.splitlines() if x.startswith("{") and '"start-up failed"' in x]
    return line


def _host_has_dcap() -> bool:
    try:
        ctypes.CDLL(LIBRARY)
    except OSError:
        return False
    return True


def test_the_default_is_the_simulated_qe_and_the_choice_is_logged(build, tmp_path: Path) -> None:
    srv = SubprocessServer(tmp_path / "data", "--shutdown-delay-s=0")
    try:
        chosen = [json.loads(x) for x in srv.lines if '"quoting enclave"' in x]
        assert chosen[0]["quoting"] == "simulated" and chosen[0]["simulated"] is True
        assert srv.info["quoting"] == "simulated" and srv.saw("  quoting   simulated")
    finally:
        assert srv.stop() == 0


@pytest.mark.skipif(_host_has_dcap(), reason=f"this host has Intel's {LIBRARY}")
def test_without_intels_library_the_start_fails_closed_naming_it(build, tmp_path: Path) -> None:
    result = _serve_dcap(tmp_path / "data")
    assert result.returncode == 2, result.stderr
    assert f"error: quoting = dcap: cannot load Intel's DCAP quote library {LIBRARY}" in result.stderr
    assert _failure(result.stderr)["error_type"] == "QuotingUnavailable"


def test_with_the_library_but_the_simulated_cpu_the_start_is_refused(build, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    build_fake_dcap(lib)  # loads as libsgx_dcap_ql.so.1 through LD_LIBRARY_PATH, as the real one would
    result = _serve_dcap(tmp_path / "data", LD_LIBRARY_PATH=str(lib))
    assert result.returncode == 2, result.stderr
    assert "quoting = dcap, but the enclave runs on the SIMULATED CPU" in result.stderr
    assert _failure(result.stderr)["error_type"] == "QuotingMismatch"
    chosen = [json.loads(x) for x in result.stderr.splitlines() if '"quoting enclave"' in x]
    assert chosen and chosen[0]["quoting"] == "dcap" and chosen[0]["simulated"] is False
