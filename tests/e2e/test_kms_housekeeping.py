"""Housekeeping: with an injected host clock (the host path passes any time it likes, as a lying host could),
a round destroys a key past its deletion window and rotates a key that is due, and does nothing else;
the destroyed key's ciphertexts then fail with KEY_DESTROYED. And the real server runs rounds on its timer."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519

from kms import errors
from kms.audit import verify_chain
from kms.client import Credentials
from kms.client.channel import SessionChannel
from kms.client.recovery import raw_public
from kms.enclave.bridge import Enclave
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.service.evidence import install_evidence
from kms.service.housekeeping import Housekeeping
from kms.service.relay import Relay
from kms.service.store import SqliteStore
from kms.sim.qe import SimQuotingEnclave
from tests.auditor import AUDITOR, auditor_public
from tests.e2e.conftest import client_for, recovery_public
from tests.e2e.server import ServerProcess

DAY = 86400


def test_rounds_destroy_and_rotate_only_what_is_due(build: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = SqliteStore(data)
    enclave = Enclave(data, store=store)
    cert = install_evidence(enclave, SimQuotingEnclave.open(data)).certificate
    sid = enclave.session_open()
    admin = SessionChannel(lambda d: enclave.session_feed(sid, d)[0], Credentials.generate("alice"), cert)

    def call(**op: object) -> pb.Response:
        return admin.call(pb.Request(**op))

    call(init=pb.InitRequest(admin_name="alice", threshold=1,
                             recovery_public_keys=[raw_public(x25519.X25519PrivateKey.generate())],
                             auditor_public_keys=auditor_public()))
    ids = [call(create_key=pb.CreateKeyRequest(spec=pb.SYMMETRIC_DEFAULT, usage=pb.ENCRYPT_DECRYPT)).key_metadata.key_id
           for _ in range(3)]
    doomed, rotating, untouched = ids
    ct = call(encrypt=pb.EncryptRequest(key_id=doomed, plaintext=b"gone soon")).encrypt.ciphertext
    call(create_alias=pb.AliasRequest(alias="alias/doomed", key_id=doomed))  # an alias record is not a key
    call(schedule_key_deletion=pb.ScheduleKeyDeletionRequest(key_id=doomed, pending_window_days=7))
    call(update_key=pb.UpdateKeyRequest(key_id=rotating, set_rotation_period=True, rotation_period_days=1))
    relay = Relay(enclave, workers=2, max_queued=16, max_sessions=4)
    now = time.time()
    hk = Housekeeping(relay, store, interval_s=3600, clock=lambda: now)

    async def rounds() -> tuple:
        first = await hk.run_once()
        hk.clock = lambda: now + 8 * DAY  # what a host that lies about time (or a week later) passes
        second = await hk.run_once()
        third = await hk.run_once()
        return first, second, third

    try:
        first, second, third = asyncio.run(rounds())
        assert (first.keys, first.destroyed, first.rotated, first.errors) == (3, 0, 0, 0)
        assert first.not_due == 3  # the doomed key's window, the rotating key's period, no period at all
        assert (second.keys, second.destroyed, second.rotated, second.errors) == (3, 1, 1, 0)
        assert (third.destroyed, third.errors) == (0, 0) and third.rotated == 0  # rotated at +8 days: not due again
        with pytest.raises(errors.KeyDestroyed):
            call(decrypt=pb.DecryptRequest(ciphertext=ct))
        meta = {i: call(describe_key=pb.DescribeKeyRequest(key_id=i)).key_metadata for i in ids}
        assert meta[doomed].state == pb.DESTROYED and meta[doomed].version_count == 0
        assert meta[rotating].current_version == 2 and meta[untouched].current_version == 1
        audit = verify_chain([e for _, e in store.audit_entries()], enclave.identity().audit_public_key,
                             auditor_key=AUDITOR)
        host_ops = [r for r in audit.bodies if not r.principal]
        assert audit.ok and {r.operation for r in host_ops} == {"destroy_key", "rotate_if_due"}
    finally:
        asyncio.run(relay.close())
        store.close()


def test_server_runs_rounds_on_its_timer(build: Path, tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--housekeeping-interval-s=1", log_level="info")
    try:
        with client_for(server, Credentials.generate("alice"), new_domain=True) as client:
            client.init(recovery_public(1), threshold=1, auditor_public_keys=auditor_public())
            keys = [client.create_key().key_id for _ in range(2)]
        deadline, rounds = time.monotonic() + 20, []
        while time.monotonic() < deadline and not any(r.get("keys") == 2 for r in rounds):
            time.sleep(0.2)
            rounds = [json.loads(line) for line in list(server.lines)
                      if line.startswith("{") and '"housekeeping round"' in line]
        done = [r for r in rounds if r.get("keys") == 2]
        assert done and done[-1]["errors"] == 0 and done[-1]["not_due"] == 2
        assert not any(k in line for line in server.lines if "housekeeping" in line for k in keys)  # counts only
    finally:
        assert server.stop() == 0
