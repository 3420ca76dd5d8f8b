"""A short bounded libFuzzer run on the call ECALL (`make fuzz-smoke FUZZ_SECONDS=20`).

The harness (enclave/fuzz/fuzz_ecall.c) loads the ASan + UBSan + coverage-instrumented enclave
image through the instrumented simulated CPU and aborts on any crash, sanitizer report, ECALL
failure, code outside ErrorCode or oversized response; libFuzzer then exits non-zero. The
longer run is described in docs/fuzzing.md.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SECONDS = 20


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_fuzz_smoke_runs_clean() -> None:
    proc = subprocess.run(
        ["make", "fuzz-smoke", f"FUZZ_SECONDS={SECONDS}"], cwd=REPO, capture_output=True, text=True, timeout=1800
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"fuzz-smoke failed (a crash or a build error):\n{output[-8000:]}"
    done = re.search(r"^Done (\d+) runs in (\d+) second", output, re.MULTILINE)
    progress = [int(n) for n in re.findall(r"^#(\d+)\s", output, re.MULTILINE)]
    runs = int(done.group(1)) if done else max(progress, default=0)
    assert runs > 0, f"libFuzzer reported no executions:\n{output[-4000:]}"
    assert "ERROR: AddressSanitizer" not in output and "runtime error:" not in output
