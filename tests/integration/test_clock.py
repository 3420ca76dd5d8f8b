"""Time only moves forward inside the enclave: the host feeds time with every request, and the
enclave uses the highest it has seen (carried by the state log across restarts). A clock rewind
after a grant expired leaves it expired; a host can stall time, never take it back."""

from __future__ import annotations

import time

import pytest

from kms import errors
from kms.proto.enclave.v1 import boundary_pb2 as pb
from tests.integration.test_state_rollback import World


@pytest.fixture
def world(build, tmp_path):
    w = World(build, tmp_path)
    yield w
    w.enclave.close()


def test_a_rewound_clock_does_not_revive_an_expired_grant(world: World) -> None:
    w = world
    now = int(time.time())
    kid = w.admin.call(pb.Request(create_key=pb.CreateKeyRequest(spec=pb.SYMMETRIC_DEFAULT,
                                                                 usage=pb.ENCRYPT_DECRYPT))).key_metadata.key_id
    w.admin.call(pb.Request(create_grant=pb.CreateGrantRequest(key_id=kid, grantee=w.bob.principal_id,
                                                               operations=pb.OP_ENCRYPT, expires_at=now + 3600)))

    def bob_encrypts() -> None:
        w.user.call(pb.Request(encrypt=pb.EncryptRequest(key_id=kid, plaintext=b"x")))

    bob_encrypts()  # the grant is live
    # Time passes: the host hands the enclave a time past the grant's expiry...
    w.enclave.call(pb.Request(host_time=now + 7200, generate_random=pb.GenerateRandomRequest(length=8)))
    with pytest.raises(errors.PermissionDenied):
        bob_encrypts()
    # ...then rewinds its clock (sessions take the feed's time: the real "now", an hour before
    # the expiry): the grant stays expired.
    with pytest.raises(errors.PermissionDenied):
        bob_encrypts()
    w.enclave.call(pb.Request(host_time=now, generate_random=pb.GenerateRandomRequest(length=8)))
    with pytest.raises(errors.PermissionDenied):
        bob_encrypts()
    # A change writes the enclave's time into the state log; a restart keeps it.
    w.admin.call(pb.Request(create_key=pb.CreateKeyRequest(spec=pb.SYMMETRIC_DEFAULT, usage=pb.ENCRYPT_DECRYPT)))
    w.restart()
    w.user = w.channel(w.bob)
    with pytest.raises(errors.PermissionDenied):
        bob_encrypts()


def test_records_carry_the_enclaves_time_not_the_hosts(world: World) -> None:
    w = world
    now = int(time.time())
    w.enclave.call(pb.Request(host_time=now + 10_000, generate_random=pb.GenerateRandomRequest(length=8)))
    made = w.admin.call(pb.Request(create_key=pb.CreateKeyRequest(spec=pb.SYMMETRIC_DEFAULT,
                                                                  usage=pb.ENCRYPT_DECRYPT))).key_metadata
    assert made.created_at >= now + 10_000  # the session's own (earlier) time was not used
