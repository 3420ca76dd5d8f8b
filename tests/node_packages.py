"""Node.js for the tests that drive a third-party JavaScript client: node, with a folder's pinned packages installed
by `npm ci` from its committed package.json and package-lock.json (versions and integrity hashes checked by npm;
install scripts not run). Without node or npm the test skips with the reason, except under CI=true, where it fails
(`./dev setup` installs Debian's nodejs when run as root)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_ENV = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}   # the enclave's tunable is not node's


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        reason = f"{tool} is not installed (Debian: apt-get install nodejs npm; ./dev setup does it as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"under CI the Node.js client test must run: {reason}")
        pytest.skip(reason)
    return path


def node_with_packages(folder: Path) -> str:
    """The node executable, with folder's locked packages installed (once; again when the lock file changed)."""
    node, npm = _need("node"), _need("npm")
    lock = folder / "package-lock.json"
    stamp = folder / "node_modules" / ".package-lock.json"
    if not stamp.exists() or stamp.stat().st_mtime < lock.stat().st_mtime:
        proc = subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=folder,
                              capture_output=True, text=True, timeout=300, env=NODE_ENV)
        if proc.returncode != 0:
            pytest.fail(f"npm ci failed in {folder} (the registry unreachable?):\n{proc.stdout}\n{proc.stderr}")
    return node
