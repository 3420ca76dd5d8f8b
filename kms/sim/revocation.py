"""Revocation state of the simulated CRLs (root, processor, platform): serials and CRL numbers."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from kms.sim.errors import SimProvisioningError
from kms.sim.files import read_json, write_json
from kms.sim.pki import CRL_NAMES


class Revocations:
    """revocations.json: {crl: {"number": N, "revoked": {hex serial: RFC 3339 date}}}.

    The CRL number rises with every change, as RFC 5280 requires of a CRL issuer.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @staticmethod
    def empty() -> dict[str, Any]:
        return {crl: {"number": 1, "revoked": {}} for crl in CRL_NAMES}

    def _read(self) -> dict[str, Any]:
        state = read_json(self.path) if self.path.exists() else self.empty()
        if not isinstance(state, dict) or not all(isinstance(state.get(c), dict) for c in CRL_NAMES):
            raise SimProvisioningError(f"{self.path} is malformed")
        return state

    def get(self, crl: str) -> tuple[int, dict[int, datetime]]:
        """(CRL number, {serial: revocation date}) of one CRL."""
        entry = self._read()[crl]
        try:
            revoked = {int(s, 16): datetime.fromisoformat(d) for s, d in entry["revoked"].items()}
            return int(entry["number"]), revoked
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SimProvisioningError(f"{self.path} entry {crl!r} is malformed: {exc}") from exc

    def change(self, crl: str, serial: int, *, revoke: bool, when: datetime) -> None:
        """Add or remove a serial (caller holds the platform lock); a no-op keeps the number."""
        state = self._read()
        revoked = state[crl].setdefault("revoked", {})
        key = f"{serial:x}"
        if revoke == (key in revoked):
            return
        if revoke:
            revoked[key] = when.isoformat()
        else:
            del revoked[key]
        state[crl]["number"] = int(state[crl].get("number", 1)) + 1
        write_json(self.path, state)

    def clear(self) -> None:
        state = self._read()
        for crl in CRL_NAMES:
            if state[crl].get("revoked"):
                state[crl] = {"number": int(state[crl].get("number", 1)) + 1, "revoked": {}}
        write_json(self.path, state)
