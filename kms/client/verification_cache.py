"""A process-local, bounded cache of SUCCESSFUL evidence verifications, keyed by the exact RA-TLS certificate.

Why it is sound (docs/security-model.md, "The client's verification cache"): an entry holds what verifying one
certificate's DER (SHA-256) established under one policy and one trust anchor, with the collateral that verdict
used. A lookup re-checks everything that can change between connections and returns nothing unless all hold:
the verification time is inside the certificate's validity and inside the collateral's window (every CRL,
TCB Info, QE Identity and chain certificate: the earliest expiry and the latest start the verifier recorded),
and the collateral source now yields the same collateral (a refreshed CRL or TCB Info is a miss, verified in
full). The domain pin and the freshness probe are not cached: the client checks them on every connection. An
attacker gains nothing from an entry: it accepts only the byte-identical certificate, whose private key stays
in the enclave, and the TLS handshake that follows still proves possession of it. Only accepted verdicts are
kept (a refusal is re-verified, never remembered); nothing is written anywhere.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from kms.attestation.anchor import TrustAnchor
from kms.attestation.collateral import Collateral, CollateralSource
from kms.attestation.pck import PckCa
from kms.attestation.policy import AttestationPolicy
from kms.attestation.ratls import parse_ratls_certificate
from kms.attestation.result import VerificationResult

MAX_ENTRIES = 64

Key = tuple[bytes, AttestationPolicy, TrustAnchor]


class RecordingSource:
    """A collateral source for one verification: asks `source` once per (FMSPC, CA, time), so a lookup that misses
    and the full verification after it share one answer or one failure (a PCCS that is down is waited for once),
    and remembers the collateral used (the cache compares it next time)."""

    def __init__(self, source: Collateral | CollateralSource) -> None:
        self._source = source
        self._asked: tuple[tuple[bytes, PckCa, datetime], Collateral | Exception] | None = None
        self.used: Collateral | None = None

    def collateral_for(self, fmspc: bytes, ca: PckCa, *, at: datetime) -> Collateral:
        if self._asked is None or self._asked[0] != (fmspc, ca, at):
            try:
                answer: Collateral | Exception = self._source.collateral_for(fmspc, ca, at=at)
            except Exception as exc:
                answer = exc
            self._asked = (fmspc, ca, at), answer
        answer = self._asked[1]
        if isinstance(answer, Exception):
            raise answer
        self.used = answer
        return answer


@dataclass(frozen=True)
class _Entry:
    result: VerificationResult
    collateral: Collateral
    valid_from: datetime      # the latest start: certificate notBefore, collateral issue dates and thisUpdates
    cert_not_after: datetime  # the certificate is valid up to and including this instant
    collateral_expiry: datetime  # expired from this instant on (QvE semantics, kms.attestation.chain.Validity)


class VerificationCache:
    """Accepted verifications by (SHA-256 of the certificate DER, policy, trust anchor); least recently used out."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def key(certificate: bytes, policy: AttestationPolicy, anchor: TrustAnchor) -> Key:
        return hashlib.sha256(certificate).digest(), policy, anchor

    def lookup(self, key: Key, source: Collateral | CollateralSource, at: datetime) -> VerificationResult | None:
        """The cached verdict re-checked at `at` (its time set to `at`), or None: verify in full."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
        if entry is None or not entry.valid_from <= at <= entry.cert_not_after or at >= entry.collateral_expiry:
            return None
        checked = entry.result.checked
        assert checked is not None
        try:
            current = source.collateral_for(checked.fmspc, checked.pck_ca, at=at)
        except Exception:
            return None  # the full verification asks the same source (RecordingSource: once) and reports it
        if current is not entry.collateral and current != entry.collateral:
            return None
        return dataclasses.replace(entry.result, at=at)

    def remember(self, key: Key, certificate: bytes, result: VerificationResult, collateral: Collateral | None) -> None:
        """Keep an accepted verdict whose windows all held at its verification time; anything else is not kept."""
        checked = result.checked
        if not result.ok or checked is None or collateral is None or checked.collateral_expired or \
                checked.collateral_not_yet_valid or checked.collateral_valid_from is None:
            return
        cert = parse_ratls_certificate(certificate)
        entry = _Entry(result, collateral, max(cert.not_before, checked.collateral_valid_from), cert.not_after,
                       checked.collateral_expiry)
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


VERIFIED = VerificationCache()
