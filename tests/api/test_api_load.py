"""Many concurrent sessions with mixed operations, and a host that sees no data (frames and logs)."""

from __future__ import annotations

import io
import threading
import time

import pytest

from kms import errors, log
from kms.client.credentials import Credentials
from kms.proto.enclave.v1 import boundary_pb2 as pb
from tests.api.helpers import InProcessServer, create_aes_key, decrypt, encrypt, init_domain, open_session, wait_until


def _active(srv: InProcessServer) -> int:
    return srv.server.relay.sessions_active


def test_many_concurrent_sessions_with_mixed_operations(server, admin, channel) -> None:
    """64 sessions at once, each doing a bounded mix of operations: no errors, correct results."""
    setup, _ = open_session(channel, admin)
    aes = create_aes_key(setup)
    ec = setup.call(pb.Request(create_key=pb.CreateKeyRequest(
        spec=pb.ECC_NIST_P256, usage=pb.SIGN_VERIFY))).key_metadata.key_id
    setup.close()
    failures: list[BaseException] = []
    barrier = threading.Barrier(64)

    def worker(n: int) -> None:
        try:
            session, _ = open_session(channel, admin)
            barrier.wait(60)
            for i in range(6):
                msg = f"session {n} op {i}".encode()
                assert decrypt(session, encrypt(session, aes, msg)) == msg
                sig = session.call(pb.Request(sign=pb.SignRequest(
                    key_id=ec, message=msg, algorithm=pb.ECDSA_SHA_256))).sign.signature
                assert session.call(pb.Request(verify=pb.VerifyRequest(
                    key_id=ec, message=msg, signature=sig, algorithm=pb.ECDSA_SHA_256))).verify.valid
            session.close()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(64)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, failures[:3]
    assert time.monotonic() - start < 120
    assert wait_until(lambda: _active(server) == 0)


def test_the_host_sees_no_plaintext_in_frames_or_logs(server, admin, channel) -> None:
    stream = io.StringIO()
    log.configure("debug", stream)
    secret = b"the host must never see this 0123456789"
    try:
        session, exchange = open_session(channel, admin)
        kid = create_aes_key(session)
        ct = encrypt(session, kid, secret)
        assert decrypt(session, ct) == secret
        ed = session.call(pb.Request(create_key=pb.CreateKeyRequest(
            spec=pb.ED25519, usage=pb.SIGN_VERIFY))).key_metadata.key_id
        sig = session.call(pb.Request(sign=pb.SignRequest(key_id=ed, message=secret,
                                                          algorithm=pb.ED25519_PURE))).sign.signature
        session.close()
        time.sleep(0.2)
    finally:
        log.configure("info")
    logs = stream.getvalue()
    assert '"session ended"' in logs and '"rpc finished"' in logs
    frames = exchange.sent + exchange.received
    for needle in (secret, ct, sig):
        assert all(needle not in frame for frame in frames)
        for text in (needle.hex(), repr(needle)[2:-1]):
            assert text not in logs


def test_a_new_init_is_refused_after_the_first(server, admin, channel) -> None:
    session, _ = open_session(channel, Credentials.generate("mallory"))
    with pytest.raises(errors.InvalidRequest):
        init_domain(session)
