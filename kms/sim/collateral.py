"""Simulated collateral: TCB Info v3 and QE Identity v2 signed over their exact JSON text, CRLs, chains."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from kms.attestation.collateral import Collateral, SignedDocument, collateral_from_parts
from kms.sim import pki
from kms.sim.files import PUBLIC, atomic_write
from kms.sim.levels import QE_LEVELS, TCB_EVALUATION_DATA_NUMBER, TCB_LEVELS
from kms.sim.platform import SimPlatform, ca_type
from kms.sim.qe import QE_FLAGS, QE_ISVPRODID, QE_MISCSELECT, QE_MRSIGNER

VALIDITY = timedelta(days=30)  # as Intel's PCS: nextUpdate = issueDate + 30 days


def _date(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _compact(obj: Any) -> bytes:
    """Compact JSON in the given key order: the bytes that are signed and served."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _times(now: datetime | None) -> tuple[datetime, datetime]:
    issued = (now or datetime.now(UTC)).replace(microsecond=0) - pki.BACKDATE
    return issued, issued + VALIDITY


def tcb_info_text(platform: SimPlatform, *, now: datetime | None = None) -> bytes:
    """The `tcbInfo` object (v3, id SGX, TCB type 0) with every simulated level, newest first."""
    issued, next_update = _times(now)
    levels = []
    for level in TCB_LEVELS:
        entry: dict[str, Any] = {
            "tcb": {"sgxtcbcomponents": [{"svn": svn} for svn in level.components], "pcesvn": level.pcesvn},
            "tcbDate": level.tcb_date,
            "tcbStatus": level.status,
        }
        if level.advisory_ids:
            entry["advisoryIDs"] = list(level.advisory_ids)
        levels.append(entry)
    return _compact({
        "id": "SGX", "version": 3, "issueDate": _date(issued), "nextUpdate": _date(next_update),
        "fmspc": platform.fmspc.hex().upper(), "pceId": platform.pce_id.hex().upper(), "tcbType": 0,
        "tcbEvaluationDataNumber": TCB_EVALUATION_DATA_NUMBER, "tcbLevels": levels,
    })


def qe_identity_text(*, now: datetime | None = None) -> bytes:
    """The `enclaveIdentity` object (v2, id QE) of the simulated QE, with byte-order masks as Intel's."""
    issued, next_update = _times(now)
    levels = []
    for level in QE_LEVELS:
        entry: dict[str, Any] = {"tcb": {"isvsvn": level.isvsvn}, "tcbDate": level.tcb_date,
                                 "tcbStatus": level.status}
        if level.advisory_ids:
            entry["advisoryIDs"] = list(level.advisory_ids)
        levels.append(entry)
    attributes = QE_FLAGS.to_bytes(8, "little") + bytes(8)
    return _compact({
        "id": "QE", "version": 2, "issueDate": _date(issued), "nextUpdate": _date(next_update),
        "tcbEvaluationDataNumber": TCB_EVALUATION_DATA_NUMBER,
        "miscselect": QE_MISCSELECT.to_bytes(4, "little").hex().upper(), "miscselectMask": "FFFFFFFF",
        "attributes": attributes.hex().upper(), "attributesMask": "FBFFFFFFFFFFFFFF0000000000000000",
        "mrsigner": QE_MRSIGNER.hex().upper(), "isvprodid": QE_ISVPRODID, "tcbLevels": levels,
    })


def signed_response(key: str, body: bytes, signature: bytes) -> bytes:
    """The PCS response `{"<key>":<body>,"signature":"<hex r||s>"}` around the exact body bytes."""
    return b'{"' + key.encode() + b'":' + body + b',"signature":"' + signature.hex().encode() + b'"}'


@dataclass(frozen=True)
class SimCollateral:
    """One collateral set as served: exact JSON texts, raw r||s signatures, PEM chains, DER CRLs."""

    ca: str
    tcb_info: bytes
    tcb_info_signature: bytes
    qe_identity: bytes
    qe_identity_signature: bytes
    tcb_info_issuer_chain: bytes
    qe_identity_issuer_chain: bytes
    pck_crl_issuer_chain: bytes
    root_ca_crl: bytes
    pck_crl: bytes

    def tcb_info_response(self) -> bytes:
        return signed_response("tcbInfo", self.tcb_info, self.tcb_info_signature)

    def qe_identity_response(self) -> bytes:
        return signed_response("enclaveIdentity", self.qe_identity, self.qe_identity_signature)

    def to_json(self) -> str:
        """The nine-field collateral JSON of vectors/dcap/dcap-qvl/sgx_quote_collateral.json
        (chains PEM, CRLs hex DER, tcb_info/qe_identity the inner object text, signatures hex r||s)."""
        return json.dumps({
            "pck_crl_issuer_chain": self.pck_crl_issuer_chain.decode("ascii"),
            "root_ca_crl": self.root_ca_crl.hex(),
            "pck_crl": self.pck_crl.hex(),
            "tcb_info_issuer_chain": self.tcb_info_issuer_chain.decode("ascii"),
            "tcb_info": self.tcb_info.decode("ascii"),
            "tcb_info_signature": self.tcb_info_signature.hex(),
            "qe_identity_issuer_chain": self.qe_identity_issuer_chain.decode("ascii"),
            "qe_identity": self.qe_identity.decode("ascii"),
            "qe_identity_signature": self.qe_identity_signature.hex(),
        }, indent=2) + "\n"

    def write_json(self, path: str | Path) -> None:
        atomic_write(Path(path), self.to_json().encode("ascii"), PUBLIC)

    def to_collateral(self) -> Collateral:
        """As kms.attestation's Collateral (parsed, not verified)."""
        return collateral_from_parts(
            pck_crl_issuer_chain=self.pck_crl_issuer_chain, root_ca_crl=self.root_ca_crl, pck_crl=self.pck_crl,
            tcb_info_issuer_chain=self.tcb_info_issuer_chain,
            tcb_info=SignedDocument(self.tcb_info, self.tcb_info_signature),
            qe_identity_issuer_chain=self.qe_identity_issuer_chain,
            qe_identity=SignedDocument(self.qe_identity, self.qe_identity_signature),
        )


def build_collateral(platform: SimPlatform, *, ca: str | None = None, now: datetime | None = None) -> SimCollateral:
    """Fresh collateral for the platform (PCK CRL of `ca`, default the platform's PCK CA), issued at `now`."""
    chosen = ca_type(ca) if ca is not None else platform.pck_ca()
    signer = platform.key("tcb-signing")
    tcb_info, qe_identity = tcb_info_text(platform, now=now), qe_identity_text(now=now)
    der = serialization.Encoding.DER
    chain = pki.cert_pem(platform.tcb_signing, platform.root)
    return SimCollateral(
        ca=chosen,
        tcb_info=tcb_info,
        tcb_info_signature=pki.raw_signature(signer, tcb_info),
        qe_identity=qe_identity,
        qe_identity_signature=pki.raw_signature(signer, qe_identity),
        tcb_info_issuer_chain=chain,
        qe_identity_issuer_chain=chain,
        pck_crl_issuer_chain=pki.cert_pem(platform.cas[chosen], platform.root),
        root_ca_crl=platform.crl("root", now=now).public_bytes(der),
        pck_crl=platform.crl(chosen, now=now).public_bytes(der),
    )
