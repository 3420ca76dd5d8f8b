"""Envelope encryption of large data (kms.client.stream) against the in-process server over the real enclave:
round trips, interoperability with the AWS Encryption SDK's own API and with an independent reader of the
published format (tests/client/format_oracle.py), and every refusal: wrong context, key, suite, commitment,
tampering, truncation, reordering, trailing data; what is released before a failure."""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from pathlib import Path

import aws_encryption_sdk
import pytest
from aws_encryption_sdk.identifiers import Algorithm, CommitmentPolicy

from kms import errors
from kms.attestation import AttestationPolicy
from kms.client import Credentials, InvalidMessage, KmsClient
from kms.client import stream as st
from kms.client.envelope import is_envelope
from kms.client.types import MAX_PLAINTEXT
from tests.auditor import auditor_public
from tests.client import format_oracle
from tests.client.conftest import recovery_public
from tests.client.fakeserver import FakeServer

REPO = Path(__file__).resolve().parents[2]
CONTEXT = {"app": "billing", "tenant": "t-1"}
FRAME = 1024


class Spy:
    """The real client, recording which operations were sent (to show a refusal came before any was)."""

    def __init__(self, client: KmsClient) -> None:
        self.client, self.calls = client, []

    def __getattr__(self, name: str):
        fn = getattr(self.client, name)

        def call(*args, **kwargs):
            self.calls.append(name)
            return fn(*args, **kwargs)

        return call


@pytest.fixture(scope="module")
def kms(build: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KmsClient, str, str]]:
    """An initialized in-process server's admin client, and two SYMMETRIC_DEFAULT keys."""
    server = FakeServer(tmp_path_factory.mktemp("envelope") / "data")
    try:
        with KmsClient(server.target, credentials=Credentials.generate("alice"),
                       policy=AttestationPolicy.build(mrsigner=server.mrsigner, allow_simulation_insecure=True),
                       trust_anchor=server.platform.trust_anchor(), new_domain=True) as client:
            client.init(recovery_public(1), threshold=1, admin_name="alice", auditor_public_keys=auditor_public())
            yield client, client.create_key().key_id, client.create_key().key_id
    finally:
        server.stop()


def encrypt(client, key: str, data: bytes, context=CONTEXT, **kw) -> bytes:
    out = io.BytesIO()
    r = st.encrypt_stream(client, key, io.BytesIO(data), out, context, **kw)
    assert (r.plaintext_length, r.message_length) == (len(data), len(out.getvalue()))
    return out.getvalue()


def decrypt(client, message: bytes, context=CONTEXT, **kw) -> bytes:
    out = io.BytesIO()
    r = st.decrypt_stream(client, io.BytesIO(message), out, context, **kw)
    assert (r.plaintext_length, r.message_length) == (len(out.getvalue()), len(message))
    return out.getvalue()


@pytest.mark.parametrize("size", [0, 1, FRAME - 1, FRAME, FRAME + 1, 5 * FRAME + 3])
def test_round_trip_across_frame_boundaries(kms, size: int) -> None:
    client, key, _ = kms
    data = os.urandom(size)
    message = encrypt(client, key, data, frame_length=FRAME)
    assert is_envelope(message) and message[:3] == b"\x02\x05\x78"
    assert decrypt(client, message) == data
    assert format_oracle.parse_header(message).frame_length == FRAME


def test_sdk_methods_and_default_frames(kms) -> None:
    """KmsClient.encrypt_stream/decrypt_stream, 1 MiB + 5 bytes in 256 KiB frames, with a key restriction."""
    client, key, _ = kms
    data = os.urandom((1 << 20) + 5)
    out = io.BytesIO()
    r = client.encrypt_stream(key, io.BytesIO(data), out, CONTEXT)
    assert r.key_id == key and r.key_version == 1 and r.plaintext_length == len(data)
    back = io.BytesIO()
    r = client.decrypt_stream(io.BytesIO(out.getvalue()), back, CONTEXT, key_ids=[key])
    assert back.getvalue() == data and r.key_id == key
    assert format_oracle.parse_header(out.getvalue()).frame_length == st.FRAME_LENGTH


def test_the_format_as_published(kms) -> None:
    """An independent reader of the published format (pyca only) decrypts what encrypt_stream wrote, with the
    data key that a plain Decrypt of the header's encrypted data key returns under the header's context."""
    client, key, _ = kms
    data = os.urandom(3 * FRAME + 10)
    message = encrypt(client, key, data, frame_length=FRAME)
    header = format_oracle.parse_header(message)
    assert [(p, info) for p, info, _ in header.data_keys] == [("enclave-kms", key)]
    assert set(header.context) == {*CONTEXT, "aws-crypto-public-key"}
    assert {k: header.context[k] for k in CONTEXT} == CONTEXT
    wrapped = header.data_keys[0][2]
    assert wrapped[:2] == b"\x01\x24" and wrapped[2:38] == key.encode()  # the direct Encrypt format
    with pytest.raises(errors.InvalidCiphertext):  # the whole header context is bound to the data key
        client.decrypt(wrapped, CONTEXT)
    data_key = client.decrypt(wrapped, header.context).plaintext
    assert len(data_key) == 32
    assert format_oracle.decrypt(message, data_key) == data
    with pytest.raises(Exception, match="commitment"):
        format_oracle.decrypt(message, bytes(32))


def test_the_aws_encryption_sdk_reads_and_writes_it(kms) -> None:
    """The library's own one-shot API with our master key provider decrypts what encrypt_stream wrote, and
    decrypt_stream reads what the library's one-shot encrypt wrote (its default suite, commitment required)."""
    client, key, _ = kms
    esdk = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)
    data = os.urandom(2 * FRAME + 1)
    plain, header = esdk.decrypt(source=encrypt(client, key, data, frame_length=FRAME),
                                 key_provider=st.KmsMasterKeyProvider(client=client))
    assert plain == data and header.algorithm is Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384
    message, _ = esdk.encrypt(source=data, key_provider=st.KmsMasterKeyProvider(client=client, key_ids=[key]),
                              encryption_context=CONTEXT)
    assert decrypt(client, message) == data
    assert format_oracle.decrypt(message, client.decrypt(format_oracle.parse_header(message).data_keys[0][2],
                                                         format_oracle.parse_header(message).context).plaintext) == data


@pytest.mark.parametrize("given", [{}, {"app": "billing"}, {**CONTEXT, "extra": "1"}, {**CONTEXT, "app": "other"}])
def test_another_context_is_refused_before_anything_is_sent(kms, given: dict[str, str]) -> None:
    client, key, _ = kms
    message = encrypt(client, key, os.urandom(FRAME))
    spy, out = Spy(client), io.BytesIO()
    with pytest.raises(InvalidMessage, match=r"encryption context .* is not the one given"):
        st.decrypt_stream(spy, io.BytesIO(message), out, given)
    assert spy.calls == [] and out.getvalue() == b""


@pytest.mark.parametrize(("algorithm", "policy", "match"), [
    (Algorithm.AES_256_GCM_HKDF_SHA512_COMMIT_KEY, CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT,
     "suite AES_256_GCM_HKDF_SHA512_COMMIT_KEY is not accepted"),
    (Algorithm.AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384, CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT, "ommit"),
])
def test_other_suites_are_refused_before_anything_is_sent(kms, algorithm, policy, match: str) -> None:
    """Only the suite encrypt_stream writes is read: not the unsigned committing one, not a v1 message without
    key commitment (both made by the library with our provider)."""
    client, key, _ = kms
    esdk = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=policy)
    message, _ = esdk.encrypt(source=b"x" * 100, key_provider=st.KmsMasterKeyProvider(client=client, key_ids=[key]),
                              algorithm=algorithm, encryption_context=CONTEXT)
    assert is_envelope(message)
    spy, out = Spy(client), io.BytesIO()
    with pytest.raises(InvalidMessage, match=match):
        st.decrypt_stream(spy, io.BytesIO(message), out, CONTEXT)
    assert spy.calls == [] and out.getvalue() == b""


def test_key_restriction_and_a_header_naming_another_key(kms) -> None:
    client, key, other = kms
    message = encrypt(client, key, b"data")
    spy = Spy(client)
    with pytest.raises(InvalidMessage, match="not under a key of this KMS that is accepted here"):
        st.decrypt_stream(spy, io.BytesIO(message), io.BytesIO(), CONTEXT, key_ids=(other,))
    assert spy.calls == []
    for provider, info in ((b"aws-kms-abc", key.encode()), (b"enclave-kmz", key.encode()),
                           (b"enclave-kms", b"\xff" * len(key))):  # other providers; a key id not text
        forged = message.replace(b"enclave-kms", provider, 1).replace(key.encode(), info, 1)
        with pytest.raises(InvalidMessage, match="not under a key of this KMS"):
            st.decrypt_stream(spy, io.BytesIO(forged), io.BytesIO(), CONTEXT)
    assert spy.calls == []
    with pytest.raises(errors.NotFound):
        encrypt(client, "00000000-0000-4000-8000-000000000000", b"data")
    swapped = message.replace(key.encode(), other.encode(), 1)  # the provider info: the key the header names
    assert swapped != message
    with pytest.raises(InvalidMessage, match=f"under key {key}, the header names {other}"):
        decrypt(client, swapped)


def test_every_tampered_byte_is_refused(kms) -> None:
    """A flipped bit anywhere (header, data key, commitment, frames, tags, signature) is a typed error."""
    client, key, _ = kms
    data = os.urandom(3 * FRAME + 7)
    message = encrypt(client, key, data, frame_length=FRAME)
    end = format_oracle.parse_header(message).end
    offsets = sorted({*range(0, end, 7), end - 1, *range(end, len(message), 97), len(message) - 1})
    for offset in offsets:
        bad = bytearray(message)
        bad[offset] ^= 0x01
        with pytest.raises((InvalidMessage, errors.InvalidCiphertext)):
            decrypt(client, bytes(bad))


def test_header_text_that_is_not_utf8_is_refused(kms) -> None:
    """The provider id is text: bytes that are not UTF-8 there (a flipped length can also pull random bytes into it)
    are one InvalidMessage, not the library's UnicodeDecodeError (seen once as a flake of the test above)."""
    client, key, _ = kms
    message = encrypt(client, key, b"x" * 100, frame_length=FRAME)
    at = message.index(b"enclave-kms")
    bad = message[:at] + b"\xff" + message[at + 1:]
    with pytest.raises(InvalidMessage):
        decrypt(client, bad)


def test_truncation_reordering_and_trailing_data(kms) -> None:
    client, key, _ = kms
    data = os.urandom(3 * FRAME + 7)
    message = encrypt(client, key, data, frame_length=FRAME)
    end = format_oracle.parse_header(message).end
    frame = 4 + 12 + FRAME + 16
    for cut in (0, 1, 3, end - 1, end, end + frame, end + 3 * frame, len(message) - 1):
        with pytest.raises(InvalidMessage):
            decrypt(client, message[:cut])
    first, second = message[end:end + frame], message[end + frame:end + 2 * frame]
    swapped = message[:end] + second + first + message[end + 2 * frame:]
    with pytest.raises(InvalidMessage, match="out of order"):
        decrypt(client, swapped)
    with pytest.raises(InvalidMessage, match="data follows its end"):
        decrypt(client, message + b"\x00")
    with pytest.raises(InvalidMessage, match="data follows its end"):
        decrypt(client, message + message)


def test_what_is_released_before_a_failure(kms) -> None:
    """Frames are released once their tag verified; a tampered final frame (or signature) releases nothing of
    the last read: the caller gets the verified frames before it and an error, and must discard them."""
    client, key, _ = kms
    data = os.urandom(2 * st.CHUNK + 100)
    message = encrypt(client, key, data, frame_length=st.FRAME_LENGTH)
    for where in (len(message) - 10, len(message) - 200):  # the signature; the final frame's tag or content
        bad = bytearray(message)
        bad[where] ^= 0x01
        out = io.BytesIO()
        with pytest.raises(InvalidMessage):
            st.decrypt_stream(client, io.BytesIO(bytes(bad)), out, CONTEXT)
        released = out.getvalue()
        assert released == data[:len(released)] and len(released) == 2 * st.CHUNK


def test_limits_and_context_checks(kms) -> None:
    client, key, _ = kms
    text = (REPO / "enclave/include/kms/limits.h").read_text()
    assert MAX_PLAINTEXT == int(re.search(r"KMS_MAX_DATA_SIZE \((\d+)u \* 1024u\)", text).group(1)) * 1024
    with pytest.raises(ValueError, match=rf"above the enclave's limit of {MAX_PLAINTEXT} .* encrypt_stream"):
        client.encrypt(key, bytes(MAX_PLAINTEXT + 1))
    assert client.decrypt(client.encrypt(key, bytes(MAX_PLAINTEXT)).ciphertext).plaintext == bytes(MAX_PLAINTEXT)
    spy = Spy(client)
    for bad in ({"aws-crypto-public-key": "x"}, {str(i): "v" for i in range(16)}):
        with pytest.raises(ValueError):
            st.encrypt_stream(spy, key, io.BytesIO(b"x"), io.BytesIO(), bad)
    with pytest.raises(ValueError, match="frame_length"):
        st.encrypt_stream(spy, key, io.BytesIO(b"x"), io.BytesIO(), frame_length=st.MAX_FRAME + 1)
    assert spy.calls == []
    many = {f"k{i}": "v" for i in range(st.MAX_CONTEXT)}
    assert decrypt(client, encrypt(client, key, b"x", many), many) == b"x"
