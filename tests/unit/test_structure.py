"""Structure that is checked, not described: ruff and import-linter (pyproject.toml) run as part of the tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the tools come with the test extras, next to this interpreter


def _tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    tool = BIN / name
    assert tool.is_file(), f"{tool} is missing: install the test extras (./dev setup)"
    return subprocess.run([str(tool), *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_import_contracts_hold() -> None:
    proc = _tool("lint-imports", "--no-cache", "--no-logo")
    assert proc.returncode == 0, f"import-linter found broken contracts:\n{proc.stdout}\n{proc.stderr}"
    assert "0 broken" in proc.stdout, proc.stdout


def test_ruff_is_clean() -> None:
    proc = _tool("ruff", "check", "--no-cache", ".")
    assert proc.returncode == 0, f"ruff check failed:\n{proc.stdout}\n{proc.stderr}"
