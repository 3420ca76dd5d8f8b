"""Large data through the real CLI (subprocesses) against the real `kms serve` on loopback: the walk-through case
(a 1 MiB file encrypted and decrypted), a few MiB through pipes, and a round trip whose peak RSS is printed next
to the file size and must not grow with it.

The memory test round-trips 100 MiB (about 5 s here, 200 MiB of temporary files at most); to see its figures:
`./dev test tests/e2e/test_envelope.py -k memory -s`; KMS_TEST_ENVELOPE_MIB=N changes the size."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kms.client.types import MAX_PLAINTEXT
from tests.e2e.server import REPO, ServerProcess

MIB = 1 << 20
LARGE_MIB = int(os.environ.get("KMS_TEST_ENVELOPE_MIB", "100"))
GROWTH_LIMIT_MIB = 16   # peak RSS may grow this much from the 1 MiB to the LARGE_MIB round trip


def kms(env: dict[str, str], *args: str, stdin: bytes = b"", check: int | None = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "kms", *args], input=stdin, capture_output=True, env=env,
                          cwd=env["WORK"], timeout=120)
    if check is not None:
        assert proc.returncode == check, (args, proc.returncode, proc.stderr.decode())
    assert b"Traceback" not in proc.stderr, proc.stderr.decode()
    return proc


def kms_json(env: dict[str, str], *args: str) -> dict:
    return json.loads(kms(env, *args, "--output", "json").stdout)


def measured(env: dict[str, str], *args: str) -> int:
    """Run a CLI command to completion; its own peak RSS in KiB (from wait4, this child alone)."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-m", "kms", *args], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=env["WORK"])
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        assert proc.returncode == 0, (args, err.read().decode())
    return usage.ru_maxrss


def random_file(path: Path, mib: int) -> str:
    """A file of `mib` MiB of random bytes, written a MiB at a time; its SHA-256."""
    digest = hashlib.sha256()
    with path.open("wb") as f:
        for _ in range(mib):
            chunk = os.urandom(MIB)
            digest.update(chunk)
            f.write(chunk)
    return digest.hexdigest()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def cli(build: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], str]]:
    """A real server initialized through the CLI; the environment the CLI runs with, and a key."""
    tmp = tmp_path_factory.mktemp("envelope")
    server = ServerProcess(tmp / "data")
    try:
        work = tmp / "work"
        work.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("KMS_")}
        env.update(WORK=str(work), PYTHONPATH=str(REPO), KMS_SERVER=server.api, KMS_MRSIGNER=server.mrsigner.hex(),
                   KMS_SIMULATED_ROOT=str(server.root_pem), KMS_ALLOW_SIMULATION_INSECURE="1",
                   KMS_CREDENTIALS=str(work / "admin"), KMS_HOME=str(work / "home"))
        kms(env, "credentials", "new", "--out", "./admin")
        kms(env, "audit", "keygen", "--out", "auditor")
        kms(env, "admin", "init", "--recovery-keys", "1", "--recovery-dir", "recovery", "--auditor-key",
            "auditor/auditor.pub")
        yield env, kms_json(env, "key", "create")["key_id"]
    finally:
        server.stop()


def test_walkthrough_a_1mib_file(cli) -> None:
    env, key = cli
    work = Path(env["WORK"])
    digest = random_file(work / "report.pdf", 1)
    enc = kms_json(env, "encrypt", "--key-id", key, "--in", "report.pdf", "--context", "app=demo",
                   "--out", "report.enc")
    assert enc["format"] == "envelope" and enc["plaintext_bytes"] == MIB and enc["key_id"] == key
    assert (work / "report.enc").read_bytes()[:3] == b"\x02\x05\x78"   # an AWS Encryption SDK v2 message
    dec = kms_json(env, "decrypt", "--in", "report.enc", "--context", "app=demo", "--out", "report.out")
    assert dec["plaintext_bytes"] == MIB and sha256(work / "report.out") == digest

    bad = kms(env, "decrypt", "--in", "report.enc", "--context", "app=other", "--out", "stolen.pdf", check=2)
    assert bad.stderr.decode().startswith("error: ") and bad.stderr.count(b"\n") == 1
    assert not (work / "stolen.pdf").exists() and not list(work.glob("*.part"))
    refused = kms(env, "encrypt", "--key-id", key, "--in", "report.pdf", "--envelope", "never", check=1)
    assert f"larger than {MAX_PLAINTEXT} bytes".encode() in refused.stderr


def test_a_few_mib_through_pipes(cli) -> None:
    env, key = cli
    data = os.urandom(6 * MIB + 3)
    message = kms(env, "encrypt", "--key-id", key, "--in", "-", "--out", "-", stdin=data).stdout
    assert message[:1] == b"\x02" and len(message) > len(data)
    assert kms(env, "decrypt", "--in", "-", "--out", "-", stdin=message).stdout == data


def test_memory_is_bounded(cli) -> None:
    """Peak RSS of `kms encrypt` and `kms decrypt` for a 1 MiB and a LARGE_MIB file: it must not grow with the
    file (reading it whole would add at least the file size, twice over on decrypt)."""
    env, key = cli
    work = Path(env["WORK"])
    peaks = {}
    for mib in (1, LARGE_MIB):
        digest = random_file(work / f"m{mib}.bin", mib)
        enc = measured(env, "encrypt", "--key-id", key, "--in", f"m{mib}.bin", "--out", f"m{mib}.enc")
        (work / f"m{mib}.bin").unlink()
        dec = measured(env, "decrypt", "--in", f"m{mib}.enc", "--out", f"m{mib}.out")
        (work / f"m{mib}.enc").unlink()
        assert sha256(work / f"m{mib}.out") == digest
        (work / f"m{mib}.out").unlink()
        peaks[mib] = (enc, dec)
        print(f"\nenvelope round trip of {mib} MiB: peak RSS encrypt {enc / 1024:.1f} MiB, "
              f"decrypt {dec / 1024:.1f} MiB", file=sys.stderr)
    for small, large in zip(peaks[1], peaks[LARGE_MIB], strict=True):
        assert large - small < GROWTH_LIMIT_MIB * 1024, peaks
