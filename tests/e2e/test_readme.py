"""The README's walk-through, run as it stands: its client block through bash, from a directory outside the
checkout, against `kms serve` on the walk-through's defaults (data in the KMS home), with a HOME of its own.
Every line must exit 0 unless its comment says `exit N`; afterwards the 1 MiB file came back, the files are
where the README says, and nothing was written inside the checkout."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.server import REPO, ServerProcess

EXPECTED = re.compile(r"#\s*exit (\d)\b")
COMMENT = re.compile(r"(^|\s+)#(\s.*)?$")  # a shell comment: "#" after blanks (the block has no "#" in quotes)


def walkthrough_block() -> list[str]:
    """The lines of the walk-through's client block (the sh block after the one that puts kms on the PATH)."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Five-minute walk-through"):]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    assert len(blocks) >= 3 and "PATH" in blocks[1], "README: the walk-through's shape changed"
    return blocks[2].splitlines()


def script(lines: list[str]) -> str:
    """A bash script that runs each line and checks its exit status against the README's comment."""
    out = ["set -u -o pipefail"]
    for number, line in enumerate(lines, 1):
        code = COMMENT.sub("", line).strip()
        if not code or code.startswith("#"):
            continue
        want = EXPECTED.search(line)
        out.append(f"__rc=0; {{ {code} ; }} || __rc=$?")
        out.append(f'[ "$__rc" = {want.group(1) if want else 0} ] || '
                   f'{{ echo "README walk-through line {number} (of the block): exit $__rc" >&2; exit 90; }}')
    return "\n".join(out) + "\n"


def written_since(root: Path, since: float) -> list[Path]:
    """Files under the checkout changed since `since`, but for build outputs and byte code."""
    skip = {".git", ".venv", "build", "__pycache__", ".pytest_cache", ".local"}
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip and not d.startswith("wt-")]
        found += [Path(dirpath) / f for f in filenames if (Path(dirpath) / f).stat().st_mtime >= since]
    return found


@pytest.mark.timeout(600)
def test_the_readme_walkthrough_runs_from_outside_the_checkout(build: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KMS_", "XDG_"))}
    env.update(HOME=str(home), PATH=f"{REPO / '.venv' / 'bin'}:{env['PATH']}")
    kms_home = home / ".config" / "kms"
    kms_home.mkdir(parents=True)  # for the test server's own log file (kms serve makes the rest)
    started = time.time() - 1
    server = ServerProcess(kms_home / "server")  # `./dev serve`'s defaults, but on free loopback ports
    try:
        env["KMS_SERVER"] = server.api
        env["KMS_HEALTH_SERVER"] = server.info["health_listen"]  # `./dev serve`'s is 127.0.0.1:7444, the default
        proc = subprocess.run(["bash", "-c", script(walkthrough_block())], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=540)
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr
    demo = home / "kms-demo"
    assert (demo / "big.out").read_bytes() == (demo / "big.bin").read_bytes()
    assert (demo / "big.bin").stat().st_size == 1 << 20 and b"attack at dawn" not in (demo / "big.enc").read_bytes()
    for path in ("credentials/default/key.pem", "credentials/bob/key.pem", "auditor/auditor.key",
                 "recovery/keys/recovery-0.key", "recovery/shares/share-0.json", "server/domain-key.sealed"):
        assert (kms_home / path).is_file(), path
    assert not list((kms_home / "recovery" / "keys").glob("share-*")), "shares and keys share a folder"
    assert (kms_home / "credentials" / "default" / "key.pem").stat().st_mode & 0o077 == 0
    assert written_since(REPO, started) == [], "the walk-through wrote inside the checkout"
