"""TCB Info (v2, v3) and QE Identity (v2): parsing and evaluation (reference §2.3 steps 9, 11, 12)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from kms.attestation.errors import CollateralError, Step, TcbError
from kms.attestation.quote import ReportBody


class TcbStatus(StrEnum):
    """TCB level statuses of Intel's collateral (QVL TcbStatus.h)."""

    UP_TO_DATE = "UpToDate"
    SW_HARDENING_NEEDED = "SWHardeningNeeded"
    CONFIGURATION_NEEDED = "ConfigurationNeeded"
    CONFIGURATION_AND_SW_HARDENING_NEEDED = "ConfigurationAndSWHardeningNeeded"
    OUT_OF_DATE = "OutOfDate"
    OUT_OF_DATE_CONFIGURATION_NEEDED = "OutOfDateConfigurationNeeded"
    REVOKED = "Revoked"


@dataclass(frozen=True)
class TcbLevel:
    """One platform TCB level; `status` is kept as served and converted only when matched."""

    components: tuple[int, ...]
    pcesvn: int
    tcb_date: datetime
    status: str
    advisory_ids: tuple[str, ...]


@dataclass(frozen=True)
class TcbInfo:
    version: int
    id: str | None
    issue_date: datetime
    next_update: datetime
    fmspc: bytes
    pce_id: bytes
    tcb_type: int
    tcb_evaluation_data_number: int
    levels: tuple[TcbLevel, ...]


@dataclass(frozen=True)
class QeTcbLevel:
    isvsvn: int
    tcb_date: datetime
    status: str
    advisory_ids: tuple[str, ...]


@dataclass(frozen=True)
class QeIdentity:
    id: str
    version: int
    issue_date: datetime
    next_update: datetime
    tcb_evaluation_data_number: int
    miscselect: bytes
    miscselect_mask: bytes
    attributes: bytes
    attributes_mask: bytes
    mrsigner: bytes
    isvprodid: int
    levels: tuple[QeTcbLevel, ...]


class _Doc:
    """Typed field access over one JSON object; every failure names the collateral step."""

    def __init__(self, obj: Any, step: Step, where: str) -> None:
        if not isinstance(obj, dict):
            raise CollateralError(step, f"{where} is not a JSON object")
        self.obj, self.step, self.where = obj, step, where

    def _get(self, key: str, kind: type, optional: bool = False) -> Any:
        if key not in self.obj:
            if optional:
                return None
            raise CollateralError(self.step, f"{self.where} lacks {key!r}")
        value = self.obj[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise CollateralError(self.step, f"{self.where}.{key} is not a {kind.__name__}")
        return value

    def integer(self, key: str, limit: int = 2**32 - 1) -> int:
        value = self._get(key, int)
        if not 0 <= value <= limit:
            raise CollateralError(self.step, f"{self.where}.{key} = {value} is out of range")
        return value

    def text(self, key: str, optional: bool = False) -> Any:
        return self._get(key, str, optional)

    def hex(self, key: str, size: int) -> bytes:
        try:
            value = bytes.fromhex(self.text(key))
        except ValueError as exc:
            raise CollateralError(self.step, f"{self.where}.{key} is not hex") from exc
        if len(value) != size:
            raise CollateralError(self.step, f"{self.where}.{key} is not {size} bytes")
        return value

    def date(self, key: str) -> datetime:
        text = self.text(key)
        try:
            value = datetime.fromisoformat(text)
        except ValueError as exc:
            raise CollateralError(self.step, f"{self.where}.{key} is not an RFC 3339 date") from exc
        if value.tzinfo is None:
            raise CollateralError(self.step, f"{self.where}.{key} has no time zone")
        return value

    def sub(self, key: str) -> _Doc:
        return _Doc(self._get(key, dict), self.step, f"{self.where}.{key}")

    def items(self, key: str) -> list[_Doc]:
        values = self._get(key, list)
        if not values:
            raise CollateralError(self.step, f"{self.where}.{key} is empty")
        return [_Doc(v, self.step, f"{self.where}.{key}[{i}]") for i, v in enumerate(values)]

    def advisories(self) -> tuple[str, ...]:
        values = self._get("advisoryIDs", list, optional=True) or []
        if not all(isinstance(v, str) for v in values):
            raise CollateralError(self.step, f"{self.where}.advisoryIDs holds a non-string")
        return tuple(values)


def _load(body: bytes, step: Step, what: str) -> _Doc:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ValueError("duplicate key")
        return dict(pairs)

    def no_constants(name: str) -> Any:
        raise ValueError(f"non-standard constant {name}")

    try:
        obj = json.loads(body, object_pairs_hook=no_duplicates, parse_constant=no_constants)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CollateralError(step, f"{what} is not valid JSON: {exc}") from exc
    return _Doc(obj, step, what)


@lru_cache(maxsize=64)
def parse_tcb_info(body: bytes) -> TcbInfo:
    """Parse the signed `tcbInfo` object text (v2 with sgxtcbcompNNsvn, v3 with sgxtcbcomponents)."""
    doc = _load(body, Step.TCB_INFO, "tcbInfo")
    version = doc.integer("version")
    if version not in (2, 3):
        raise CollateralError(Step.TCB_INFO, f"TCB Info version {version} is not supported (2, 3)")
    tcb_type = doc.integer("tcbType")
    if tcb_type != 0:
        raise CollateralError(Step.TCB_INFO, f"TCB type {tcb_type} is not supported (0)")
    levels = []
    for level in doc.items("tcbLevels"):
        tcb = level.sub("tcb")
        if version == 3:
            comps = tcb.items("sgxtcbcomponents")
            if len(comps) != 16:
                raise CollateralError(Step.TCB_INFO, f"{tcb.where} has {len(comps)} components, not 16")
            svns = tuple(c.integer("svn", 255) for c in comps)
        else:
            svns = tuple(tcb.integer(f"sgxtcbcomp{i:02d}svn", 255) for i in range(1, 17))
        levels.append(
            TcbLevel(svns, tcb.integer("pcesvn", 0xFFFF), level.date("tcbDate"), level.text("tcbStatus"),
                     level.advisories())
        )
    return TcbInfo(
        version=version,
        id=doc.text("id") if version == 3 else None,
        issue_date=doc.date("issueDate"),
        next_update=doc.date("nextUpdate"),
        fmspc=doc.hex("fmspc", 6),
        pce_id=doc.hex("pceId", 2),
        tcb_type=tcb_type,
        tcb_evaluation_data_number=doc.integer("tcbEvaluationDataNumber"),
        levels=tuple(levels),
    )


@lru_cache(maxsize=64)
def parse_qe_identity(body: bytes) -> QeIdentity:
    """Parse the signed `enclaveIdentity` object text (QE Identity v2)."""
    doc = _load(body, Step.QE_IDENTITY, "enclaveIdentity")
    version = doc.integer("version")
    if version != 2:
        raise CollateralError(Step.QE_IDENTITY, f"QE Identity version {version} is not supported (2)")
    levels = tuple(
        QeTcbLevel(lv.sub("tcb").integer("isvsvn", 0xFFFF), lv.date("tcbDate"), lv.text("tcbStatus"),
                   lv.advisories())
        for lv in doc.items("tcbLevels")
    )
    return QeIdentity(
        id=doc.text("id"),
        version=version,
        issue_date=doc.date("issueDate"),
        next_update=doc.date("nextUpdate"),
        tcb_evaluation_data_number=doc.integer("tcbEvaluationDataNumber"),
        miscselect=doc.hex("miscselect", 4),
        miscselect_mask=doc.hex("miscselectMask", 4),
        attributes=doc.hex("attributes", 16),
        attributes_mask=doc.hex("attributesMask", 16),
        mrsigner=doc.hex("mrsigner", 32),
        isvprodid=doc.integer("isvprodid", 0xFFFF),
        levels=levels,
    )


def _status(text: str, step: Step, what: str) -> TcbStatus:
    try:
        return TcbStatus(text)
    except ValueError as exc:
        raise TcbError(step, f"{what} has an unrecognized TCB status {text!r}") from exc


def _masked(value: bytes, mask: bytes) -> bytes:
    return bytes(v & m for v, m in zip(value, mask, strict=True))


def match_qe_identity(identity: QeIdentity, qe: ReportBody) -> tuple[TcbStatus, QeTcbLevel]:
    """Check the QE report against the QE Identity and pick the QE's TCB level (step 9)."""
    step = Step.QE_IDENTITY_MATCH
    if _masked(qe.miscselect, identity.miscselect_mask) != identity.miscselect:
        raise TcbError(step, f"QE MISCSELECT {qe.miscselect.hex()} does not match the QE Identity")
    if _masked(qe.attributes, identity.attributes_mask) != identity.attributes:
        raise TcbError(step, f"QE ATTRIBUTES {qe.attributes.hex()} do not match the QE Identity")
    if qe.mrsigner != identity.mrsigner:
        raise TcbError(step, f"QE MRSIGNER {qe.mrsigner.hex()} is not the QE Identity's")
    if qe.isvprodid != identity.isvprodid:
        raise TcbError(step, f"QE ISVPRODID {qe.isvprodid} is not {identity.isvprodid}")
    for level in identity.levels:
        if level.isvsvn <= qe.isvsvn:
            return _status(level.status, step, "QE Identity level"), level
    raise TcbError(step, f"QE ISVSVN {qe.isvsvn} is below every QE Identity TCB level (not supported)")


def match_platform_level(info: TcbInfo, components: tuple[int, ...], pcesvn: int) -> TcbLevel:
    """The first TCB level that the PCK certificate's SVNs reach (step 11)."""
    for level in info.levels:
        if pcesvn >= level.pcesvn and all(c >= r for c, r in zip(components, level.components, strict=True)):
            _status(level.status, Step.PLATFORM_TCB, "TCB Info level")
            return level
    raise TcbError(Step.PLATFORM_TCB, "the PCK certificate's TCB is below every TCB Info level "
                   "(TCB not supported)")


_OUT_OF_DATE_FROM_QE: dict[TcbStatus, TcbStatus] = {
    TcbStatus.UP_TO_DATE: TcbStatus.OUT_OF_DATE,
    TcbStatus.SW_HARDENING_NEEDED: TcbStatus.OUT_OF_DATE,
    TcbStatus.CONFIGURATION_NEEDED: TcbStatus.OUT_OF_DATE_CONFIGURATION_NEEDED,
    TcbStatus.CONFIGURATION_AND_SW_HARDENING_NEEDED: TcbStatus.OUT_OF_DATE_CONFIGURATION_NEEDED,
}


def converge(platform: TcbStatus, qe: TcbStatus) -> TcbStatus:
    """Merge the platform and QE statuses as QVL's convergeTcbStatusWithQeTcbStatus does (step 12)."""
    if qe is TcbStatus.REVOKED:
        return TcbStatus.REVOKED
    if qe is TcbStatus.OUT_OF_DATE:
        return _OUT_OF_DATE_FROM_QE.get(platform, platform)
    return platform


def merge_advisories(*groups: tuple[str, ...]) -> tuple[str, ...]:
    """Union of advisory IDs, first occurrence order."""
    return tuple(dict.fromkeys(a for group in groups for a in group))
