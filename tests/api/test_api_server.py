"""A real server on loopback (in-process): health on both ports, evidence that verifies, sessions over gRPC,
limits with clear errors, tampering that ends one session only, metrics, reflection."""

from __future__ import annotations

import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2

from kms import errors
from kms.api.metrics import METRIC_NAMES
from kms.attestation import AttestationPolicy, PccsClient, verify_ratls_certificate
from kms.client.credentials import Credentials
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.proto.v1 import kms_pb2, kms_pb2_grpc
from kms.sim.platform import SimPlatform
from tests.api.helpers import (
    GrpcExchange,
    create_aes_key,
    decrypt,
    encrypt,
    fetch_evidence,
    health_status,
    now,
    open_session,
)

SERVING = health_pb2.HealthCheckResponse.SERVING


def test_health_serving_on_both_ports(server) -> None:
    for address in (server.addresses.health, server.addresses.api):
        assert health_status(address) == SERVING
        assert health_status(address, "kms.v1.KeyManagementService") == SERVING


def test_evidence_verifies_against_the_simulated_root_and_advertised_pccs(server, channel) -> None:
    ev = fetch_evidence(channel)
    assert ev.simulated and ev.collateral_url == server.addresses.collateral_url.rstrip("/")
    assert ev.collateral_url.startswith("http://127.0.0.1:") and ev.enclave_version
    policy = AttestationPolicy(mrsigner=server.identity.mrsigner, allow_simulation_insecure=True)
    anchor = SimPlatform(server.server.settings.data_dir).trust_anchor()
    result = verify_ratls_certificate(ev.certificate, PccsClient(ev.collateral_url), policy, at=now(),
                                      trust_anchor=anchor)
    assert result.ok, result.to_dict()
    assert len(ev.quote) > 1000 and ev.quote in ev.certificate
    strict = AttestationPolicy(mrsigner=server.identity.mrsigner)  # simulated evidence needs the _insecure flag
    assert not verify_ratls_certificate(ev.certificate, PccsClient(ev.collateral_url), strict, at=now(),
                                        trust_anchor=anchor).ok


def test_session_init_create_encrypt_decrypt(admin, channel) -> None:
    assert fetch_evidence(channel).initialized
    session, exchange = open_session(channel, admin)
    kid = create_aes_key(session)
    ct = encrypt(session, kid, b"attack at dawn")
    assert decrypt(session, ct) == b"attack at dawn"
    assert all(b"attack at dawn" not in frame for frame in exchange.sent + exchange.received)
    session.close()


def test_unknown_principal_is_refused_inside_the_enclave(admin, channel) -> None:
    session, _ = open_session(channel, Credentials.generate("mallory"))
    with pytest.raises(errors.PermissionDenied):
        create_aes_key(session)


def test_flipped_byte_ends_that_session_only(admin, channel) -> None:
    good, _ = open_session(channel, admin)
    kid = create_aes_key(good)
    armed = False

    def flip(data: bytes) -> bytes:
        return data[:-1] + bytes([data[-1] ^ 1]) if armed and data else data

    victim, _ = open_session(channel, admin, tamper=flip)
    armed = True
    with pytest.raises(grpc.RpcError) as info:
        victim.call(pb.Request(get_identity=pb.GetIdentityRequest()))
    assert info.value.code() == grpc.StatusCode.ABORTED
    assert "session ended" in info.value.details() and "KMS_ERR_SESSION_TLS" in info.value.details()
    assert decrypt(good, encrypt(good, kid, b"still fine")) == b"still fine"


def test_message_over_the_grpc_limit_is_resource_exhausted(server, channel) -> None:
    exchange = GrpcExchange(channel)
    with pytest.raises(grpc.RpcError) as info:
        exchange(b"\x16" * (server.server.settings.max_message_bytes + 1))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in info.value.details()


def test_frame_over_the_enclave_limit_is_resource_exhausted(channel) -> None:
    exchange = GrpcExchange(channel)
    with pytest.raises(grpc.RpcError) as info:
        exchange(b"\x16" * (128 * 1024 + 1))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "at most 131072 bytes of TLS records" in info.value.details()


def test_garbage_instead_of_tls_is_aborted(channel) -> None:
    exchange = GrpcExchange(channel)
    with pytest.raises(grpc.RpcError) as info:
        exchange(b"GET / HTTP/1.1\r\n\r\n")
    assert info.value.code() == grpc.StatusCode.ABORTED


def test_request_id_is_echoed(channel) -> None:
    stub = kms_pb2_grpc.KeyManagementServiceStub(channel)
    _, call = stub.GetEvidence.with_call(kms_pb2.GetEvidenceRequest(), metadata=(("x-request-id", "req-42"),))
    assert ("x-request-id", "req-42") in call.initial_metadata()


def test_metrics_endpoint_serves_the_metric_names(server, admin, channel) -> None:
    session, _ = open_session(channel, admin)
    create_aes_key(session)
    session.close()
    body = urllib.request.urlopen(f"http://{server.addresses.metrics}/metrics", timeout=10).read().decode()
    for name in METRIC_NAMES:
        assert f"# TYPE {name} " in body, name
    assert 'grpc_server_handled_total{grpc_code="OK",grpc_method="GetEvidence"' in body
    assert 'kms_ecall_seconds_count{ecall="session_feed"}' in body
    assert 'kms_store_writes_total{result="ok"}' in body


def test_reflection_when_enabled(channel) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for s in next(replies).list_services_response.service}
    assert "kms.v1.KeyManagementService" in names
