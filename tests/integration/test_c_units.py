"""The C unit tests under ASan + UBSan, through `make ctest`.

`make ctest` builds the sanitizer copies of the simulated CPU and the enclave image
(build/asan/), the test-only stub enclave, and every enclave/tests/test_*.c program, then runs
them one after another; each prints "N passed, M failed" last and exits non-zero on failure.
test_boundary, test_simcpu and test_elrange (ELRANGE and the edge's pointer checks) reach the enclave
only through simcpu_ecall, as the bridge does.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REQUIRED = (
    "test_boundary", "test_simcpu", "test_elrange", "test_crypto",
    "test_operations", "test_authz", "test_policy", "test_audit", "test_keystore", "test_session", "test_statelog",
    "test_hpke", "test_bridge_queues",
)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_make_ctest_passes() -> None:
    proc = subprocess.run(["make", "ctest"], cwd=REPO, capture_output=True, text=True, timeout=1800)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"make ctest failed:\n{output[-6000:]}"
    ran = re.findall(r"^== (\S+)$", proc.stdout, re.MULTILINE)
    summaries = [(int(p), int(f)) for p, f in re.findall(r"^(\d+) passed, (\d+) failed$", proc.stdout, re.MULTILINE)]
    for name in REQUIRED:
        assert any(path.endswith("/" + name) for path in ran), f"{name} did not run:\n{proc.stdout[-3000:]}"
    assert len(summaries) == len(ran), f"a test program did not print its summary:\n{proc.stdout[-3000:]}"
    assert all(passed > 0 and failed == 0 for passed, failed in summaries), summaries
