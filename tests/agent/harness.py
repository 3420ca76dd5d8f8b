"""`kms agent` as a subprocess against real servers (tests/e2e/server.py), with its logs kept; the domain and
credentials made through the real CLI, as an operator would."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from kms.proto.agent.v1 import local_pb2 as lp
from tests.e2e.server import REPO, ServerProcess, terminate


def cli_env(server: ServerProcess, work: Path) -> dict[str, str]:
    """The environment the CLI (and the agent) run with: the server, its MRSIGNER, the simulated root."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMS_")}
    env.update(PYTHONPATH=str(REPO), KMS_SERVER=server.api, KMS_MRSIGNER=server.mrsigner.hex(),
               KMS_SIMULATED_ROOT=str(server.root_pem), KMS_ALLOW_SIMULATION_INSECURE="1",
               KMS_CREDENTIALS=str(work / "admin"), KMS_HOME=str(work / "home"))
    return env


def kms(env: dict[str, str], cwd: Path, *args: str, check: int | None = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "kms", *args], capture_output=True, env=env, cwd=cwd, timeout=120)
    assert b"Traceback" not in proc.stderr, proc.stderr.decode()
    if check is not None:
        assert proc.returncode == check, (args, proc.returncode, proc.stderr.decode())
    return proc


def init_domain(server: ServerProcess, work: Path) -> dict[str, str]:
    """Admin credentials (pinned by init) in work/admin; the CLI's environment."""
    work.mkdir(parents=True, exist_ok=True)
    env = cli_env(server, work)
    kms(env, work, "credentials", "new", "--out", "./admin")
    kms(env, work, "audit", "keygen", "--out", "auditor")
    kms(env, work, "admin", "init", "--recovery-keys", "1", "--recovery-dir", "recovery", "--auditor-key",
        "auditor/auditor.pub")
    return env


class AgentProcess:
    """`python -m kms agent --socket S ...`; `info` is its `serving` log line, `lines` every line it wrote."""

    def __init__(self, env: dict[str, str], socket: Path, *extra: str, wait_serving: bool = True) -> None:
        self.socket = socket
        self.log_path = socket.parent / f"agent-{time.monotonic_ns()}.log"
        cmd = [sys.executable, "-m", "kms", "agent", f"--socket={socket}", "--log-level=debug", "--recheck-s=0.5",
               *extra]
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, errors="replace")
        self.lines: list[str] = []
        self.info: dict = {}
        self._serving = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if wait_serving and (not self._serving.wait(60) or not self.info):
            self.stop()
            raise RuntimeError("kms agent did not start:\n" + "\n".join(self.lines[-40:]))

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.log_path.open("w") as log:
            for line in self.proc.stdout:
                line = line.rstrip("\n")
                self.lines.append(line)
                log.write(line + "\n")
                if line.startswith("{") and '"serving"' in line:
                    event = json.loads(line)
                    if event.get("event") == "serving":
                        self.info = event
                        self._serving.set()
        self._serving.set()

    @property
    def target(self) -> str:
        return f"unix:{self.socket}"

    def wait_for_line(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            time.sleep(0.1)
        raise AssertionError(f"no log line with {text!r}:\n" + "\n".join(self.lines[-20:]))

    def stop(self, timeout: float = 30) -> int | None:
        terminate(self.proc, timeout)
        self._reader.join(10)
        return self.proc.returncode


def local_call(sock, request: lp.LocalRequest) -> lp.LocalResponse:
    """One frame of the PKCS#11 module's protocol, and its answer."""
    data = request.SerializeToString()
    sock.sendall(struct.pack(">I", len(data)) + data)
    return lp.LocalResponse.FromString(read_frame(sock))


def read_frame(sock) -> bytes:
    header = _exact(sock, 4)
    return _exact(sock, struct.unpack(">I", header)[0])


def _exact(sock, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf
