"""Housekeeping: on a timer, ask the enclave to destroy keys past their deletion window and rotate keys that are due.

The host only proposes: for every key id in the store it calls `destroy_key` and `rotate_if_due`
on the host path, and the enclave acts only when the key's own schedule (read from its encrypted
record, against the host's clock) says so; otherwise it refuses with KMS_ERR_NOT_DUE or a state
error, which is the normal answer. Each call is one audited enclave operation. Only counts are
logged, never key ids or data.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Protocol

from kms.errors import E, KmsError
from kms.log import get_logger
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.service.relay import Overloaded, Relay

_log = get_logger("kms.housekeeping")
KEY_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")  # not aliases, not vstate-*
PAGE = 256
FIRST_ROUND_S = 30.0
# Refusals that only say "nothing to do for this key": not due yet, not pending deletion, not enabled, gone.
_NOTHING_TO_DO = frozenset({E.KMS_ERR_NOT_DUE, E.KMS_ERR_INVALID_ARGUMENT, E.KMS_ERR_KEY_DISABLED,
                            E.KMS_ERR_KEY_DESTROYED, E.KMS_ERR_KEY_PENDING_DELETION, E.KMS_ERR_KEY_NOT_FOUND,
                            E.KMS_ERR_PERMISSION_DENIED})


class KeyLister(Protocol):
    def list(self, after: str, limit: int) -> list[str]:
        """Up to limit record names after `after`, in order."""


@dataclass
class RoundResult:
    """What one housekeeping round did (counts only)."""

    keys: int = 0
    destroyed: int = 0
    rotated: int = 0
    not_due: int = 0
    errors: int = 0
    skipped: bool = False   # the domain is not loaded, or the enclave was overloaded


class Housekeeping:
    """Runs rounds every `interval_s` seconds on the relay's ECALL pool; `clock` gives the host time it passes."""

    def __init__(self, relay: Relay, store: KeyLister, *, interval_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.relay, self.store, self.interval_s, self.clock = relay, store, interval_s, clock
        self.rounds = 0
        self.last: RoundResult | None = None

    async def _keys(self) -> list[str]:
        out, after = [], ""
        while names := await asyncio.to_thread(self.store.list, after, PAGE):
            out += [n for n in names if KEY_ID.match(n)]
            after = names[-1]
        return out

    async def _act(self, request: pb.Request, result: RoundResult) -> bool:
        """One host-path operation; True if the enclave acted."""
        request.host_time = int(self.clock())
        try:
            await self.relay.run("housekeeping", self.relay.enclave.call, request)
        except Overloaded:
            raise
        except KmsError as exc:
            if exc.code == E.KMS_ERR_NOT_DUE:
                result.not_due += 1
            elif exc.code not in _NOTHING_TO_DO:
                result.errors += 1
            return False
        return True

    async def run_once(self) -> RoundResult:
        """One round over every key in the store."""
        result, start = RoundResult(), time.monotonic()
        try:
            if not (await self.relay.identity()).domain_loaded:
                result.skipped = True
                return result
            for key_id in await self._keys():
                result.keys += 1
                if await self._act(pb.Request(destroy_key=pb.DestroyKeyRequest(key_id=key_id)), result):
                    result.destroyed += 1
                    continue
                if await self._act(pb.Request(rotate_if_due=pb.RotateIfDueRequest(key_id=key_id)), result):
                    result.rotated += 1
        except Overloaded:
            result.skipped = True
            _log.warning("housekeeping round cut short: the enclave is overloaded", **asdict(result))
        finally:
            self.rounds += 1
            self.last = result
            _log.info("housekeeping round", duration_ms=round((time.monotonic() - start) * 1000), **asdict(result))
        return result

    async def run(self) -> None:
        """Rounds forever: the first one soon after start (a restart never postpones it by a whole interval),
        then every interval_s; a failed round is logged and the next one runs."""
        delay = min(self.interval_s, FIRST_ROUND_S)
        while True:
            await asyncio.sleep(delay)
            delay = self.interval_s
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _log.error("housekeeping round failed", error_type=type(exc).__name__, error=str(exc))
