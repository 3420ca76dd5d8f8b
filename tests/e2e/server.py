"""The real `kms serve` as a subprocess on loopback (ports chosen by the OS), with its logs kept for inspection."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import grpc

from kms.proto.v1 import kms_pb2, kms_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
LOOPBACK_FLAGS = ("--listen=127.0.0.1:0", "--health-listen=127.0.0.1:0", "--metrics-listen=127.0.0.1:0",
                  "--sim-pccs-listen=127.0.0.1:0")


class ServerProcess:
    """`python -m kms serve --data-dir D` on loopback; `api`, `metrics`, `collateral_url` come from its
    structured "serving" log line. Every stdout/stderr line is kept in `lines` (and in `log_path`)."""

    def __init__(self, data_dir: Path, *extra: str, log_level: str = "debug",
                 env: dict[str, str] | None = None, repo: Path = REPO) -> None:
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"server-{time.monotonic_ns()}.log"
        cmd = [sys.executable, "-m", "kms", "serve", f"--data-dir={data_dir}", *LOOPBACK_FLAGS,
               f"--log-level={log_level}", "--shutdown-delay-s=0", *extra]
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("KMS_")}, **(env or {})}
        self.proc = subprocess.Popen(cmd, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                     text=True, errors="replace")
        self.lines: list[str] = []
        self._serving = threading.Event()
        self.info: dict = {}
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._serving.wait(90) or not self.info:
            self.stop()
            raise RuntimeError("kms serve did not start:\n" + "\n".join(self.lines[-40:]))
        self.api: str = self.info["listen"]
        self.metrics: str = self.info["metrics_listen"]
        self.mrsigner = bytes.fromhex(self.info["mrsigner"])
        self.mrenclave = bytes.fromhex(self.info["mrenclave"])
        self.root_pem = data_dir / "sgx-sim" / "root-ca.pem"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.log_path.open("w") as log:
            for line in self.proc.stdout:
                line = line.rstrip("\n")
                self.lines.append(line)
                log.write(line + "\n")
                log.flush()
                if line.startswith("{") and '"serving"' in line:
                    try:
                        event = json.loads(line)
                    except ValueError:
                        continue
                    if event.get("event") == "serving":
                        self.info = event
                        self._serving.set()
        self._serving.set()

    def rss_kib(self) -> int:
        """VmRSS of the server process, in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a Prometheus series (matching the given labels) from the metrics endpoint."""
        text = urllib.request.urlopen(f"http://{self.metrics}/metrics", timeout=5).read().decode()
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            series, _, value = line.rpartition(" ")
            if all(f'{k}="{v}"' in series for k, v in labels.items()):
                total += float(value)
        return total

    def session_rpcs(self) -> float:
        return self.metric("grpc_server_started_total", grpc_method="Session")

    def evidence(self) -> kms_pb2.GetEvidenceResponse:
        with grpc.insecure_channel(self.api) as ch:
            return kms_pb2_grpc.KeyManagementServiceStub(ch).GetEvidence(kms_pb2.GetEvidenceRequest(), timeout=10)

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM (graceful shutdown), then SIGKILL if it lingers; returns the exit code."""
        terminate(self.proc, timeout)
        self._reader.join(10)
        return self.proc.returncode


def terminate(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM, then SIGKILL if the process is still there after `timeout` seconds (the harnesses' one stop)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
