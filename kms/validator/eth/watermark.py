"""The validator's own side of the two-sided slashing guard for Ethereum keys (docs/ethereum.md, "The rules").

`kms validator eth serve` keeps, per BLS key, the highest block slot and attestation source/target epochs it
handed a signature out for, each with a digest of the request signed there, in a file named by the public key
(it follows the validator, not the KMS record). It refuses locally a block at or below that slot and an
attestation whose source or target is below the watermark's (EIP-3076's low-watermark rule, which excludes
double and surround votes against everything below it); at the watermark itself only the very same request
passes. It sends the watermark with each request (the enclave signs only above both its own history and it) and
writes the new watermark durably (atomic rename, file and directory fsync) BEFORE the client gets the
signature, raised to the watermark the enclave answers with (its history's bounds; docs/eth-interface.md). A
rolled-back KMS store alone cannot then produce a slashable pair. A missing file starts empty and takes the
KMS's history from the first answer (trust on first use; logged); a corrupt one stops that key (never reset).

    {"format": "enclave-kms eth watermark", "version": 1, "pubkey": "0x…", "block_slot": 123 | null,
     "block_digest": "<64 hex or empty>", "source_epoch": 3 | null, "target_epoch": 4 | null,
     "attestation_digest": "<64 hex or empty>"}
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from kms.client.eth import EthWatermark as SdkWatermark
from kms.log import get_logger
from kms.validator.eth.requests import SignRequest
from kms.validator.watermark import Regression, WatermarkError, lock_exclusive, read_existing, write_durably

FORMAT, VERSION = "enclave-kms eth watermark", 1
_FIELDS = {"format", "version", "pubkey", "block_slot", "block_digest", "source_epoch", "target_epoch",
           "attestation_digest"}
REPAIR = ("see docs/ethereum.md, 'When the watermark file is lost or damaged': move it aside and let the signer "
          "start it again from the KMS's history only once you know that history is complete")
_log = get_logger("kms.validator.eth")

__all__ = ["EthGuard", "EthWatermark", "Regression", "WatermarkError", "digest"]


def digest(req: SignRequest) -> bytes:
    """What identifies a signed message on this side: SHA-256 over its type, fork, root and SSZ bytes."""
    h = hashlib.sha256()
    for part in (req.message_type.encode(), req.fork_version or b"", req.genesis_validators_root or b"", req.ssz):
        h.update(len(part).to_bytes(4, "big") + part)
    return h.digest()


@dataclass(frozen=True)
class EthWatermark:
    """The highest signed block slot and attestation epochs (None: nothing signed), with their digests."""

    block_slot: int | None = None
    block_digest: bytes = b""
    source_epoch: int | None = None
    target_epoch: int | None = None
    attestation_digest: bytes = b""

    def to_sdk(self) -> SdkWatermark:
        """The form eth_sign takes as `watermark`: the lowest slot and epochs still signable (equal positions are
        left to the enclave's own record and to this side's digest check)."""
        return SdkWatermark(min_block_slot=self.block_slot or 0, min_source_epoch=self.source_epoch or 0,
                            min_target_epoch=self.target_epoch or 0)

    def fold(self, enclave: SdkWatermark) -> EthWatermark:
        """Raised to the enclave's guard (its lowest slot and epochs still signable): a slot or target below the
        enclave's minimum was signed or refused there, so it becomes this side's mark without a digest (nothing
        at that position passes here either); positions this side already holds keep their digest."""
        wm = self
        if enclave.min_block_slot > 0 and enclave.min_block_slot - 1 > (wm.block_slot if wm.block_slot is not None
                                                                         else -1):
            wm = replace(wm, block_slot=enclave.min_block_slot - 1, block_digest=b"")
        if enclave.min_target_epoch > 0 and enclave.min_target_epoch - 1 > (
                wm.target_epoch if wm.target_epoch is not None else -1):
            wm = replace(wm, target_epoch=enclave.min_target_epoch - 1, attestation_digest=b"")
        if enclave.min_source_epoch > (wm.source_epoch or 0):
            wm = replace(wm, source_epoch=enclave.min_source_epoch)
        return wm


def _below(value: int, mark: int | None) -> bool:
    return mark is not None and value < mark


def _parse(text: str, pubkey: bytes) -> EthWatermark:
    data = json.loads(text)
    if not isinstance(data, dict) or set(data) != _FIELDS:
        raise ValueError(f"expected exactly the fields {', '.join(sorted(_FIELDS))}")
    if data["format"] != FORMAT or data["version"] != VERSION:
        raise ValueError(f"not a version {VERSION} eth watermark file")
    if data["pubkey"] != "0x" + pubkey.hex():
        raise ValueError(f"it belongs to the key {data['pubkey']!r}")
    for name in ("block_slot", "source_epoch", "target_epoch"):
        value = data[name]
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**64):
            raise ValueError(f"{name}: expected null or an integer in 0..2^64-1")
    for name in ("block_digest", "attestation_digest"):
        value = data[name]
        if not isinstance(value, str) or len(value) not in (0, 64) or value.strip("0123456789abcdef"):
            raise ValueError(f"{name}: expected 64 lowercase hex digits or ''")
    return EthWatermark(data["block_slot"], bytes.fromhex(data["block_digest"]), data["source_epoch"],
                        data["target_epoch"], bytes.fromhex(data["attestation_digest"]))


class EthGuard:
    """One key's watermark file, locked (flock) against a second signer; check -> (the KMS signs) -> record."""

    def __init__(self, state_dir: Path, pubkey: bytes) -> None:
        self.pubkey, self.dir = pubkey, state_dir
        self.path = state_dir / f"0x{pubkey.hex()}.json"
        self.lock = threading.Lock()  # held by the caller across check, signing and record
        self._lock_fd = lock_exclusive(self.path)
        self.current = self._load()

    def _load(self) -> EthWatermark | None:
        text = read_existing(self.path, REPAIR)
        if text is None:
            return None
        try:
            return _parse(text, self.pubkey)
        except (ValueError, TypeError) as exc:
            raise WatermarkError(f"the watermark file {self.path} is corrupt ({exc}); this key will not sign; "
                                 f"{REPAIR}") from exc

    def start(self) -> None:
        """First use without a file (caller holds self.lock): start empty. The first slashable request then goes
        to the enclave with no bound of this side's; its guard checks it against the KMS's history, and its answer's
        watermark (that history's bounds) is folded in: what a seed from the KMS's export would give, without the
        admin right the export needs. Logged: on anything but a first start the file was lost."""
        if self.current is None:
            self._write(EthWatermark())
            _log.warning("eth: no watermark file for this key: started empty, raised to the KMS's slashing-protection "
                         "history by its first answer (right on a first start; otherwise the file was lost, see "
                         "docs/ethereum.md)", pubkey="0x" + self.pubkey.hex(), path=str(self.path))

    def check(self, req: SignRequest) -> EthWatermark:
        """Before asking the KMS (caller holds self.lock): Regression when the request is not above the mark."""
        wm = self.current
        if wm is None:
            raise WatermarkError(f"no watermark for 0x{self.pubkey.hex()} yet (not started)")
        d = digest(req)
        if req.message_type == "BLOCK_V2":
            slot = req.slot or 0
            if _below(slot, wm.block_slot) or (slot == wm.block_slot and d != wm.block_digest):
                raise Regression(f"block at slot {slot}: this validator already signed up to slot {wm.block_slot}")
        elif req.message_type == "ATTESTATION":
            source, target = req.source_epoch or 0, req.target_epoch or 0
            if _below(source, wm.source_epoch) or _below(target, wm.target_epoch) or (
                    target == wm.target_epoch and d != wm.attestation_digest):
                raise Regression(f"attestation {source}->{target}: this validator's watermark is "
                                 f"{wm.source_epoch}->{wm.target_epoch}")
        return wm

    def record(self, req: SignRequest, enclave: SdkWatermark | None = None) -> None:
        """After the KMS signed, before the client gets it (caller holds self.lock): write the new mark, raised
        also to the enclave's guard as it answered (`enclave`, docs/eth-interface.md: the signer keeps the merge)."""
        wm, d = self.current, digest(req)
        assert wm is not None
        if req.message_type == "BLOCK_V2" and (req.slot or 0) != wm.block_slot:
            wm = replace(wm, block_slot=req.slot or 0, block_digest=d)
        elif req.message_type == "ATTESTATION" and (req.target_epoch or 0) != wm.target_epoch:
            source = max(req.source_epoch or 0, wm.source_epoch or 0)
            wm = replace(wm, source_epoch=source, target_epoch=req.target_epoch or 0, attestation_digest=d)
        wm = wm.fold(enclave) if enclave is not None else wm
        if wm != self.current:
            self._write(wm)

    def _write(self, wm: EthWatermark) -> None:
        body = {"format": FORMAT, "version": VERSION, "pubkey": "0x" + self.pubkey.hex(),
                "block_slot": wm.block_slot, "block_digest": wm.block_digest.hex(), "source_epoch": wm.source_epoch,
                "target_epoch": wm.target_epoch, "attestation_digest": wm.attestation_digest.hex()}
        write_durably(self.path, json.dumps(body, indent=1) + "\n")
        self.current = wm

    def close(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1
