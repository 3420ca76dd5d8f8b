"""The host is blind: every frame the front end relays (recorded by a proxy between client and server)
and every line the server logs (at debug level) is searched for known random markers used as
plaintexts, encryption contexts, messages, and for the results (ciphertexts, signatures); none appear,
raw, hex or base64."""

from __future__ import annotations

import base64
import os
import secrets
import time

from kms.proto.v1 import kms_pb2
from tests.e2e.conftest import client_for


def _forms(value: bytes) -> list[bytes]:
    """The encodings under which a secret could leak."""
    forms = [value, value.hex().encode(), value.hex().upper().encode(), base64.b64encode(value),
             base64.urlsafe_b64encode(value).rstrip(b"=")]
    # base64 of a value at another alignment still shares a long run with this one: check a 24-byte core too
    core = value[3:27]
    return [*forms, core, base64.b64encode(core)]


def _leaks(haystacks: list[bytes], secret: bytes) -> list[str]:
    return [f"form {i} in #{n}" for n, hay in enumerate(haystacks) for i, form in enumerate(_forms(secret))
            if form in hay]


def test_frames_and_logs_never_show_data(server, admin_creds, proxy) -> None:
    markers = {name: secrets.token_bytes(32) for name in ("aes-plaintext", "sign-ed25519", "sign-p256",
                                                           "context-value", "second-plaintext")}
    results: dict[str, bytes] = {}
    log_start = len(server.lines)
    with client_for(server, admin_creds, target=proxy.target) as client:
        aes, ed, p256 = client.create_key(), client.create_key("ED25519"), client.create_key("ECC_NIST_P256")
        context = {"purpose": markers["context-value"].hex()}
        ct = client.encrypt(aes.key_id, markers["aes-plaintext"], context).ciphertext
        assert client.decrypt(ct, context).plaintext == markers["aes-plaintext"]
        results["ciphertext"] = ct
        ct2 = client.encrypt(aes.key_id, markers["second-plaintext"]).ciphertext
        assert client.decrypt(ct2).plaintext == markers["second-plaintext"]
        for name, key in (("sign-ed25519", ed), ("sign-p256", p256)):
            sig = client.sign(key.key_id, markers[name]).signature
            assert client.verify(key.key_id, signature=sig, message=markers[name])
            results[f"signature-{name}"] = sig
        certificate = client.evidence.certificate
    time.sleep(0.5)  # let the server log the end of the session
    frames = proxy.all_bytes()
    logs = [line.encode() for line in server.lines[log_start:]]
    session = proxy.session_frames()

    # Controls: the recorder sees raw bytes (the public certificate crosses in clear inside
    # GetEvidence), the session's traffic was captured, and the server logged during the test.
    evidence = kms_pb2.GetEvidenceResponse.FromString(next(f for m, d, f in proxy.frames
                                                           if m == "GetEvidence" and d == "s2c"))
    assert evidence.certificate == certificate and any(certificate in f for f in frames)
    assert len(session) >= 8 and sum(len(f) for f in session) > 1000
    assert logs and any(b"session" in line for line in logs)

    for name, secret in {**markers, **results}.items():
        assert not _leaks(frames, secret), f"{name} visible in a relayed frame: {_leaks(frames, secret)}"
        assert not _leaks(logs, secret), f"{name} visible in the server log: {_leaks(logs, secret)}"
    # and nothing of it in the server's data directory either (store, sealed blobs, logs)
    on_disk = [p.read_bytes() for p in server.data_dir.rglob("*") if p.is_file()]
    for name in markers:
        assert not _leaks(on_disk, markers[name]), f"{name} found on the server's disk"


def test_proxy_detects_a_leak_when_there_is_one(proxy) -> None:
    """The negative control: a marker that does cross in clear (here, as a GetEvidence request's unknown field)
    is found by the same search."""
    import grpc

    marker = os.urandom(32)
    raw = b"\x1a\x20" + marker  # field 3, length-delimited, 32 bytes: unknown to GetEvidenceRequest
    with grpc.insecure_channel(proxy.target) as channel:
        channel.unary_unary("/kms.v1.KeyManagementService/GetEvidence")(raw, timeout=10)
    assert _leaks(proxy.all_bytes(), marker)
