"""`kms serve` as a subprocess: SIGTERM drains gracefully, a restart unseals without an admin, a damaged
row fails only its key, start-up errors are clear."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from kms import errors
from kms.client.credentials import Credentials
from kms.proto.enclave.v1 import boundary_pb2 as pb
from tests.api.helpers import (
    REPO,
    SubprocessServer,
    clean_env,
    create_aes_key,
    decrypt,
    encrypt,
    fetch_evidence,
    health_status,
    init_domain,
    open_session,
    wait_until,
)

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


def _ed25519_sign(session, key_id: str, message: bytes) -> bytes:
    return session.call(pb.Request(sign=pb.SignRequest(key_id=key_id, message=message,
                                                       algorithm=pb.ED25519_PURE))).sign.signature


def _status_or_none(address: str) -> int | None:
    try:
        return health_status(address)
    except grpc.RpcError:
        return None


def test_sigterm_reports_not_serving_then_exits_zero_within_the_grace_period(build, tmp_path: Path) -> None:
    delay, grace = 1.5, 2.0
    srv = SubprocessServer(tmp_path / "data", f"--shutdown-delay-s={delay}", f"--shutdown-grace-s={grace}")
    try:
        assert health_status(srv.health) == SERVING
        with grpc.insecure_channel(srv.api) as ch:
            _open, _ = open_session(ch, Credentials.generate("alice"))  # a session open during shutdown
            start = time.monotonic()
            srv.terminate()
            assert wait_until(lambda: _status_or_none(srv.health) == NOT_SERVING, timeout=delay)
            assert _status_or_none(srv.api) in (NOT_SERVING, None)
            assert srv.proc.wait(delay + grace + 10) == 0
            assert time.monotonic() - start < delay + grace + 10
    finally:
        srv.stop()
    assert any('"health NOT_SERVING; draining"' in line for line in srv.lines)
    assert any('"event": "stopped"' in line for line in srv.lines)


def test_restart_unseals_and_keys_still_work(build, tmp_path: Path) -> None:
    data, alice = tmp_path / "data", Credentials.generate("alice")
    srv = SubprocessServer(data, "--shutdown-delay-s=0")
    try:
        assert srv.saw("The domain is NOT initialized") and srv.saw("kms admin init --server")
        with grpc.insecure_channel(srv.api) as ch:
            assert not fetch_evidence(ch).initialized
            session, _ = open_session(ch, alice)
            init_domain(session)
            assert fetch_evidence(ch).initialized  # the flags kept for the first certificate went with it
            aes = create_aes_key(session)
            ed = session.call(pb.Request(create_key=pb.CreateKeyRequest(
                spec=pb.ED25519, usage=pb.SIGN_VERIFY))).key_metadata.key_id
            ct = encrypt(session, aes, b"before the restart")
            sig = _ed25519_sign(session, ed, b"block 1")
            session.close()
    finally:
        assert srv.stop() == 0
    assert (data / "domain-key.sealed").exists() and (data / "kms.sqlite3").exists()
    srv = SubprocessServer(data, "--shutdown-delay-s=0")
    try:
        assert srv.info["initialized"] is True and srv.saw("is initialized and unsealed")
        with grpc.insecure_channel(srv.api) as ch:
            assert fetch_evidence(ch).initialized
            session, _ = open_session(ch, alice)
            assert decrypt(session, ct) == b"before the restart"
            assert _ed25519_sign(session, ed, b"block 1") == sig  # Ed25519 is deterministic: same key
            verified = session.call(pb.Request(verify=pb.VerifyRequest(
                key_id=ed, message=b"block 1", signature=sig, algorithm=pb.ED25519_PURE))).verify
            assert verified.valid
    finally:
        assert srv.stop() == 0


def test_a_damaged_row_gives_a_typed_error_for_that_key_only(build, tmp_path: Path) -> None:
    data, alice = tmp_path / "data", Credentials.generate("alice")
    srv = SubprocessServer(data, "--shutdown-delay-s=0")
    try:
        with grpc.insecure_channel(srv.api) as ch:
            session, _ = open_session(ch, alice)
            init_domain(session)
            victim, other = create_aes_key(session), create_aes_key(session)
            ct = encrypt(session, other, b"unharmed")
    finally:
        srv.stop()
    with sqlite3.connect(data / "kms.sqlite3") as db:
        blob = bytearray(db.execute("SELECT blob FROM records WHERE key_id = ?", (victim,)).fetchone()[0])
        blob[-3] ^= 0x40
        db.execute("UPDATE records SET blob = ? WHERE key_id = ?", (bytes(blob), victim))
    srv = SubprocessServer(data, "--shutdown-delay-s=0")
    try:
        with grpc.insecure_channel(srv.api) as ch:
            session, _ = open_session(ch, alice)
            with pytest.raises(errors.StoreError) as info:
                session.call(pb.Request(describe_key=pb.DescribeKeyRequest(key_id=victim)))
            assert info.value.code_name == "KMS_ERR_RECORD_CORRUPT"
            assert decrypt(session, ct) == b"unharmed"  # same session, other key
    finally:
        srv.stop()


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kms", "serve", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60, env={**clean_env(), "KMS_LISTEN": "127.0.0.1:0"})


def test_bad_settings_exit_1_with_a_clear_error(tmp_path: Path) -> None:
    result = _serve(f"--data-dir={tmp_path}", "--workers=9")
    assert result.returncode == 1
    assert "error: workers: 9 exceeds the enclave's 8 thread slots" in result.stderr


def test_world_writable_data_dir_is_refused_unless_insecure(build, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o777)
    ports = ["--health-listen=127.0.0.1:0", "--metrics-listen=127.0.0.1:0"]
    result = _serve(f"--data-dir={data}", *ports)
    assert result.returncode == 2 and "writable by other users" in result.stderr
    assert "allow_world_writable_data_dir_insecure" in result.stderr
    srv = SubprocessServer(data, "--allow-world-writable-data-dir-insecure", "--shutdown-delay-s=0")
    try:
        warned = [line for line in srv.lines if '"insecure setting enabled"' in line]
        assert warned and '"setting": "allow_world_writable_data_dir_insecure"' in warned[0]
    finally:
        assert srv.stop() == 0


def test_a_damaged_sealed_key_stops_the_start_with_a_clear_error(build, tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = SubprocessServer(data, "--shutdown-delay-s=0")
    try:
        with grpc.insecure_channel(srv.api) as ch:
            init_domain(open_session(ch, Credentials.generate("alice"))[0])
    finally:
        srv.stop()
    sealed = data / "domain-key.sealed"
    blob = bytearray(sealed.read_bytes())
    blob[-1] ^= 1
    sealed.write_bytes(bytes(blob))
    result = _serve(f"--data-dir={data}", "--health-listen=127.0.0.1:0", "--metrics-listen=127.0.0.1:0")
    assert result.returncode == 2
    assert f"cannot unseal {sealed} (KMS_ERR_SEAL_MAC_MISMATCH)" in result.stderr


def test_port_in_use_is_a_start_up_error(build, tmp_path: Path) -> None:
    srv = SubprocessServer(tmp_path / "a", "--shutdown-delay-s=0")
    try:
        result = _serve(f"--data-dir={tmp_path / 'b'}", f"--listen={srv.api}", "--health-listen=127.0.0.1:0",
                        "--metrics-listen=127.0.0.1:0")
        assert result.returncode == 2 and "listen: cannot listen on" in result.stderr
    finally:
        srv.stop()
