"""API test helpers: real servers on loopback (in-process in a thread, or a subprocess), a gRPC session transport."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import grpc
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from kms.client.channel import SessionChannel
from kms.client.credentials import Credentials
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.proto.v1 import kms_pb2, kms_pb2_grpc
from tests.auditor import auditor_public

REPO = Path(__file__).resolve().parents[2]
LOOPBACK = {"listen": "127.0.0.1:0", "health_listen": "127.0.0.1:0", "metrics_listen": "127.0.0.1:0",
            "sim_pccs_listen": "127.0.0.1:0"}


class InProcessServer:
    """KmsServer running in a thread with its own event loop (no signal handlers)."""

    def __init__(self, settings) -> None:
        from kms.api.server import KmsServer

        self.server = KmsServer(settings)
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), name="kms-server", daemon=True)
        self._thread.start()
        if not self._started.wait(60):
            raise TimeoutError("server did not start")
        if self._error is not None:
            raise self._error
        self.addresses = self.server.addresses
        self.identity = self.server.identity

    async def _main(self) -> None:
        try:
            await self.server.start()
        except BaseException as exc:
            self._error = exc
            self._started.set()
            return
        self._started.set()
        await self.server.wait()
        await self.server.shutdown()

    def stop(self) -> None:
        self.server.request_stop("test")
        self._thread.join(60)


def clean_env() -> dict[str, str]:
    """The environment without KMS_* settings (KMS_BUILD_DIR kept), so only the test's flags apply."""
    return {k: v for k, v in os.environ.items() if not k.startswith("KMS_") or k == "KMS_BUILD_DIR"}


class SubprocessServer:
    """`python -m kms serve` with loopback ports; addresses read from its structured start-up log."""

    def __init__(self, data_dir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        flags = [f"--{k.replace('_', '-')}={v}" for k, v in LOOPBACK.items()]
        cmd = [sys.executable, "-m", "kms", "serve", f"--data-dir={data_dir}", *flags, *args]
        self.proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.STDOUT, stdout=subprocess.PIPE,  # banner+log
                                     env={**clean_env(), **(env or {})}, text=True)
        self.lines: list[str] = []
        self._serving: queue.Queue[dict | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        event = self._serving.get(timeout=60)
        if event is None:
            raise RuntimeError("server exited during start-up:\n" + "\n".join(self.lines))
        self.info = event
        self.api, self.health, self.metrics = event["listen"], event["health_listen"], event["metrics_listen"]

    def saw(self, text: str, timeout: float = 10.0) -> bool:
        """Whether a stderr line containing text arrives within timeout."""
        return wait_until(lambda: any(text in line for line in self.lines), timeout)

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.lines.append(line.rstrip("\n"))
            if line.startswith("{") and json.loads(line).get("event") == "serving":
                self._serving.put(json.loads(line))
        self._serving.put(None)

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.terminate()
        return self.proc.wait(30)


class GrpcExchange:
    """SessionChannel transport over the Session stream: one frame written, one frame read."""

    def __init__(self, channel: grpc.Channel, tamper=None) -> None:
        self._queue: queue.Queue[kms_pb2.SessionFrame | None] = queue.Queue()
        self._responses = kms_pb2_grpc.KeyManagementServiceStub(channel).Session(iter(self._queue.get, None))
        self.tamper = tamper
        self.sent: list[bytes] = []
        self.received: list[bytes] = []

    def __call__(self, data: bytes) -> bytes:
        if self.tamper is not None:
            data = self.tamper(data)
        self.sent.append(data)
        self._queue.put(kms_pb2.SessionFrame(tls=data))
        reply = next(self._responses).tls
        self.received.append(reply)
        return reply

    def close(self) -> None:
        self._queue.put(None)


def fetch_evidence(channel: grpc.Channel) -> kms_pb2.GetEvidenceResponse:
    return kms_pb2_grpc.KeyManagementServiceStub(channel).GetEvidence(kms_pb2.GetEvidenceRequest(), timeout=10)


def open_session(channel: grpc.Channel, creds: Credentials, tamper=None) -> tuple[SessionChannel, GrpcExchange]:
    # Evidence first, as the SDK does: after an init the server re-quotes on the first fetch, and a
    # session opened before that would present the previous certificate.
    certificate = fetch_evidence(channel).certificate
    exchange = GrpcExchange(channel, tamper)
    return SessionChannel(exchange, creds, certificate), exchange


def recovery_public_keys(n: int) -> list[bytes]:
    return [x25519.X25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw) for _ in range(n)]


def init_domain(session: SessionChannel) -> pb.InitResponse:
    req = pb.InitRequest(admin_name="alice", recovery_public_keys=recovery_public_keys(3), threshold=2,
                         auditor_public_keys=auditor_public())
    return session.call(pb.Request(init=req)).init


def create_aes_key(session: SessionChannel) -> str:
    return session.call(pb.Request(create_key=pb.CreateKeyRequest(
        spec=pb.SYMMETRIC_DEFAULT, usage=pb.ENCRYPT_DECRYPT))).key_metadata.key_id


def encrypt(session: SessionChannel, key_id: str, plaintext: bytes) -> bytes:
    return session.call(pb.Request(encrypt=pb.EncryptRequest(key_id=key_id, plaintext=plaintext))).encrypt.ciphertext


def decrypt(session: SessionChannel, ciphertext: bytes) -> bytes:
    return session.call(pb.Request(decrypt=pb.DecryptRequest(ciphertext=ciphertext))).decrypt.plaintext


def health_status(address: str, service: str = "") -> int:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as ch:
        return health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def now() -> datetime:
    return datetime.now(UTC)


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
