"""The signing side of `kms validator eth serve`, synchronous over one KmsClient: which BLS keys it serves (the
KMS's enabled Ethereum validator keys this principal may use, by public key), and one signature through the
two-sided guard: local watermark check -> eth_sign in the enclave (with the watermark) -> durable record ->
release. The HTTP layer (kms.validator.eth.http) runs these in worker threads."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from aiohttp import web

from kms.client.client import KmsClient
from kms.client.eth import EthSignResult
from kms.client.types import KeyInfo
from kms.log import get_logger
from kms.validator.eth.requests import SignRequest
from kms.validator.eth.watermark import EthGuard, EthWatermark

_log = get_logger("kms.validator.eth")
REFRESH_MIN_S = 2.0  # an unknown public key re-reads the KMS's key list at most this often


class UnknownKey(LookupError):
    """No enabled Ethereum validator key with this public key is visible to this signer (HTTP 404)."""


class EthSigner:
    """Thread-safe: the key map under one lock, each key's guard under its own (held across one signature)."""

    def __init__(self, client: KmsClient, state_dir: Path) -> None:
        self.client, self.state_dir = client, state_dir
        self._lock = threading.Lock()
        self._keys: dict[bytes, str] = {}      # public key -> key id (enabled keys only)
        self._pubkeys: dict[str, bytes] = {}   # key id -> public key (cache; a key's public key never changes)
        self._guards: dict[bytes, EthGuard] = {}
        self._refreshed = 0.0
        self.pending: set[bytes] = set()       # keys being imported: not served until their history is in

    def all_keys(self) -> dict[bytes, KeyInfo]:
        """Every Ethereum validator key this principal sees, by public key (an enabled one where a public key has
        several: a key deleted through the keymanager and imported again)."""
        return self._scan()[0]

    def _scan(self) -> tuple[dict[bytes, KeyInfo], set[bytes]]:
        out: dict[bytes, KeyInfo] = {}
        ambiguous: set[bytes] = set()  # public keys of more than one enabled key
        for info in self.client.list_keys():
            if info.usage == "VALIDATOR" and "BLS" in info.spec:
                if info.key_id not in self._pubkeys:
                    self._pubkeys[info.key_id] = bytes(self.client.eth_public_key(info.key_id))
                pub, prior = self._pubkeys[info.key_id], out.get(self._pubkeys[info.key_id])
                if prior is not None and prior.state == info.state == "ENABLED":
                    ambiguous.add(pub)
                if prior is None or (info.state == "ENABLED" and prior.state != "ENABLED"):
                    out[pub] = info
        return out, ambiguous

    def refresh(self) -> dict[bytes, str]:
        """Re-read the KMS's key list; returns the public key -> key id map now served (enabled keys). A public
        key of two enabled keys is not served: each has its own slashing history in the enclave, and a validator
        signing through both could sign a slashable pair."""
        found, ambiguous = self._scan()
        for pub in sorted(ambiguous):
            _log.error("eth: two enabled keys have this public key: not served until one is disabled",
                       pubkey="0x" + pub.hex())
        keys = {pub: info.key_id for pub, info in found.items()
                if info.state == "ENABLED" and pub not in self.pending and pub not in ambiguous}
        with self._lock:
            self._keys, self._refreshed = keys, time.monotonic()
        return dict(keys)

    def withdraw(self, pubkey: bytes) -> None:
        """Stop serving a key now (the keymanager's delete disabled it in the KMS)."""
        with self._lock:
            self._keys.pop(pubkey, None)

    def keys(self) -> dict[bytes, str]:
        with self._lock:
            return dict(self._keys)

    def key_id(self, pubkey: bytes) -> str:
        """The key id serving `pubkey` (re-reading the KMS's list on a miss, at most every REFRESH_MIN_S)."""
        with self._lock:
            found, stale = self._keys.get(pubkey), time.monotonic() - self._refreshed >= REFRESH_MIN_S
        if found is None and stale:
            found = self.refresh().get(pubkey)
        if found is None:
            raise UnknownKey(f"no key for the public key 0x{pubkey.hex()}")
        return found

    def guard(self, pubkey: bytes) -> EthGuard:
        """The key's watermark guard, opened once (a missing file starts empty: see EthGuard.start)."""
        with self._lock:
            guard = self._guards.get(pubkey)
            if guard is None:
                guard = self._guards[pubkey] = EthGuard(self.state_dir, pubkey)
        if guard.current is None:
            with guard.lock:
                guard.start()
        return guard

    def sign(self, pubkey: bytes, req: SignRequest) -> bytes:
        """The signature; UnknownKey, Regression (this side's watermark), or the KMS's typed errors. The enclave's
        watermark in its answer to a slashable request is folded into this side's (docs/eth-interface.md; it
        sends none with the others)."""
        key_id = self.key_id(pubkey)
        if not req.slashable:
            return self._sign(key_id, req, None).signature
        guard = self.guard(pubkey)
        with guard.lock:
            mark = guard.check(req)
            result = self._sign(key_id, req, mark)
            guard.record(req, result.watermark)  # durably, before the signature leaves this process
        return result.signature

    def _sign(self, key_id: str, req: SignRequest, mark: EthWatermark | None) -> EthSignResult:
        return self.client.eth_sign(key_id, req.message_type, req.ssz, req.fork_version, req.genesis_validators_root,
                                    req.signing_root, watermark=None if mark is None else mark.to_sdk())

    def close(self) -> None:
        with self._lock:
            for guard in self._guards.values():
                guard.close()
            self._guards.clear()


SIGNER_KEY: web.AppKey[EthSigner] = web.AppKey("signer", EthSigner)
