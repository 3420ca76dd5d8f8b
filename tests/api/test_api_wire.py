"""The Session stream as docs/session-protocol.md specifies it, driven by a TLS client written from that text
(Python's ssl over memory BIOs, not the SDK's channel): the answer rule and its exception, the close sequence."""

from __future__ import annotations

import ssl
import struct
from pathlib import Path

import grpc
import pytest

from kms.client.credentials import Credentials
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.proto.enclave.v1 import errors_pb2 as pb_errors
from tests.api.helpers import GrpcExchange, fetch_evidence


class WireClient:
    """§3 and §4 of session-protocol.md: TLS 1.3 over SessionFrames, u32 BE framed Requests inside."""

    def __init__(self, channel: grpc.Channel, creds: Credentials, tmp: Path) -> None:
        self.expected = fetch_evidence(channel).certificate
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        (tmp / "cert.pem").write_bytes(creds.certificate_pem)
        (tmp / "key.pem").write_bytes(creds.private_key_pem)
        ctx.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.incoming, self.outgoing, server_side=False)
        self.exchange = GrpcExchange(channel)
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.incoming.write(self.exchange(self.outgoing.read()))
        assert self.tls.getpeercert(binary_form=True) == self.expected  # the pin, before anything is written
        assert self.exchange(self.outgoing.read()) == b""  # client Finished: answered with an empty frame

    def call(self, request: pb.Request) -> pb.Response:
        body = request.SerializeToString()
        self.tls.write(struct.pack(">I", len(body)) + body)
        self.incoming.write(self.exchange(self.outgoing.read()))
        length = struct.unpack(">I", self.tls.read(4))[0]
        return pb.Response.FromString(self.tls.read(length))


def test_every_client_frame_gets_exactly_one_answer(admin, channel, tmp_path) -> None:
    client = WireClient(channel, admin, tmp_path)
    assert client.exchange(b"") == b""  # an empty client frame is allowed and answered (with nothing)
    answer = client.call(pb.Request(version=pb.BOUNDARY_VERSION_1, request_id=7,
                                    get_identity=pb.GetIdentityRequest()))
    assert answer.request_id == 7 and answer.error == 0 and answer.get_identity.domain_loaded
    assert len(client.exchange.received) == len(client.exchange.sent)
    refused = client.call(pb.Request(version=2, request_id=8, get_identity=pb.GetIdentityRequest()))
    assert refused.error == pb_errors.KMS_ERR_UNSUPPORTED_VERSION and not refused.HasField("get_identity")
    assert client.call(pb.Request(version=1, request_id=9, generate_random=pb.GenerateRandomRequest(
        length=16))).request_id == 9  # a refused request leaves the session usable (§4)


def test_a_refused_frame_gets_no_answer_only_the_aborted_status(admin, channel, tmp_path) -> None:
    client = WireClient(channel, admin, tmp_path)
    client.tls.write(b"\x00\x00\x00\x00")
    record = client.outgoing.read()
    with pytest.raises(grpc.RpcError) as info:
        client.exchange(record[:-1] + bytes([record[-1] ^ 1]))  # bad record MAC
    assert info.value.code() == grpc.StatusCode.ABORTED
    assert len(client.exchange.received) == len(client.exchange.sent) - 1  # the exception to the rule


def test_close_notify_is_answered_with_close_notify_then_the_stream_ends_ok(admin, channel, tmp_path) -> None:
    client = WireClient(channel, admin, tmp_path)
    with pytest.raises(ssl.SSLWantReadError):
        client.tls.unwrap()  # our close_notify is written; the engine now waits for the enclave's
    answer = client.exchange(client.outgoing.read())
    assert answer[:1] == b"\x17" and len(answer) == 5 + 2 + 1 + 16  # one TLS 1.3 record: an encrypted alert
    client.incoming.write(answer)
    client.tls.unwrap()  # completes: the answer is the enclave's close_notify, authenticated by the session keys
    with pytest.raises(StopIteration):
        next(client.exchange._responses)  # the server ended the stream after that frame ...
    assert client.exchange._responses.code() == grpc.StatusCode.OK  # ... with OK
