"""Key policies and grants: typed statements and grants, operation names, and the policy JSON document."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kms.proto.enclave.v1 import boundary_pb2 as pb

POLICY_FORMAT = "enclave-kms key policy v1"
ANY_PRINCIPAL = "*"
# Operation classes by name (docs/security-model.md); "*" in a document means all of them.
OPERATIONS: dict[str, int] = {"encrypt": pb.OP_ENCRYPT, "decrypt": pb.OP_DECRYPT, "sign": pb.OP_SIGN,
                              "verify": pb.OP_VERIFY, "mac": pb.OP_MAC, "derive": pb.OP_DERIVE,
                              "describe": pb.OP_DESCRIBE}
MAX_STATEMENTS, MAX_CONDITIONS, MAX_CONDITION_KEY, MAX_CONDITION_VALUE = 8, 2, 64, 128


class PolicyError(ValueError):
    """A policy document or grant argument is malformed; the message says where."""


def operations_mask(names: Iterable[str]) -> int:
    """The OperationClass bits for operation names (e.g. ["encrypt", "decrypt"]; "*" = all)."""
    mask = 0
    for name in names:
        key = name.strip().lower()
        if key == "*":
            mask |= sum(OPERATIONS.values())
        elif key in OPERATIONS:
            mask |= OPERATIONS[key]
        else:
            raise PolicyError(f"unknown operation {name!r} (one of: {', '.join(OPERATIONS)}, or *)")
    if not mask:
        raise PolicyError("name at least one operation")
    return mask


def operation_names(mask: int) -> tuple[str, ...]:
    """The names of the OperationClass bits set in mask (unknown bits as 'bit<N>')."""
    names = [n for n, bit in OPERATIONS.items() if mask & bit]
    rest = mask & ~sum(OPERATIONS.values())
    return (*names, *(f"bit{i}" for i in range(32) if rest >> i & 1))


def _conditions(raw: Mapping[str, str] | None, where: str) -> tuple[tuple[str, str], ...]:
    items = tuple(sorted((raw or {}).items()))
    if len(items) > MAX_CONDITIONS:
        raise PolicyError(f"{where}: at most {MAX_CONDITIONS} conditions")
    for k, v in items:
        if not isinstance(k, str) or not isinstance(v, str) or not k:
            raise PolicyError(f"{where}: conditions map non-empty context keys to string values")
        if len(k.encode()) > MAX_CONDITION_KEY or len(v.encode()) > MAX_CONDITION_VALUE:
            raise PolicyError(f"{where}: condition keys are ≤ {MAX_CONDITION_KEY} bytes, values ≤ "
                              f"{MAX_CONDITION_VALUE}")
    return items


def _pb_conditions(items: Iterable[tuple[str, str]]) -> list[pb.ContextCondition]:
    return [pb.ContextCondition(key=k.encode(), value=v.encode()) for k, v in items]


def _text(data: bytes) -> str:
    return data.decode("utf-8", "backslashreplace")


def _principal(value: object, where: str) -> bytes | None:
    if value == ANY_PRINCIPAL:
        return None
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise PolicyError(f"{where}: principal is 64 hex digits (a principal id) or \"*\" (any principal)")
    return raw


@dataclass(frozen=True)
class Statement:
    """Allow `principal` (None: any principal of the domain) the operations, if every condition holds."""

    principal: bytes | None
    operations: int
    conditions: tuple[tuple[str, str], ...] = ()

    @classmethod
    def build(cls, principal: bytes | None, operations: Iterable[str] | int,
              conditions: Mapping[str, str] | None = None) -> Statement:
        if principal is not None and len(principal) != 32:
            raise PolicyError("a principal id is 32 bytes")
        mask = operations if isinstance(operations, int) else operations_mask(operations)
        return cls(principal, mask, _conditions(conditions, "statement"))

    def to_pb(self) -> pb.PolicyStatement:
        return pb.PolicyStatement(principal=self.principal or b"", operations=self.operations,
                                  conditions=_pb_conditions(self.conditions))

    def to_document(self) -> dict[str, Any]:
        return {"principal": self.principal.hex() if self.principal else ANY_PRINCIPAL,
                "operations": list(operation_names(self.operations)), "conditions": dict(self.conditions)}


@dataclass(frozen=True)
class KeyPolicy:
    """A key's policy: up to 8 statements and the export setting."""

    statements: tuple[Statement, ...] = ()
    export_policy: str = "NON_EXPORTABLE"

    @classmethod
    def from_document(cls, doc: object) -> KeyPolicy:
        """Parse (and check) a policy document: see docs/api.md, "Key policy documents"."""
        if not isinstance(doc, dict):
            raise PolicyError("a policy document is a JSON object")
        if unknown := sorted(set(doc) - {"format", "statements", "export_policy"}):
            raise PolicyError(f"unknown field(s) {', '.join(unknown)}")
        if doc.get("format", POLICY_FORMAT) != POLICY_FORMAT:
            raise PolicyError(f"format must be {POLICY_FORMAT!r}")
        export = doc.get("export_policy", "NON_EXPORTABLE")
        if export not in pb.ExportPolicy.keys():
            raise PolicyError(f"export_policy is one of {', '.join(pb.ExportPolicy.keys())}")
        raw = doc.get("statements")
        if not isinstance(raw, list) or len(raw) > MAX_STATEMENTS:
            raise PolicyError(f"statements is a list of at most {MAX_STATEMENTS}")
        statements = []
        for i, st in enumerate(raw):
            where = f"statements[{i}]"
            if not isinstance(st, dict) or (unknown := sorted(set(st) - {"principal", "operations", "conditions"})):
                raise PolicyError(f"{where}: an object with principal, operations and conditions")
            ops = st.get("operations")
            if not isinstance(ops, list) or not all(isinstance(o, str) for o in ops):
                raise PolicyError(f"{where}: operations is a list of names")
            cond = st.get("conditions", {})
            if not isinstance(cond, dict):
                raise PolicyError(f"{where}: conditions is an object of context key: value")
            statements.append(Statement(_principal(st.get("principal"), where), operations_mask(ops),
                                        _conditions(cond, where)))
        return cls(tuple(statements), export)

    @classmethod
    def from_json(cls, text: str | bytes) -> KeyPolicy:
        try:
            return cls.from_document(json.loads(text))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PolicyError(f"not JSON: {exc}") from exc

    def to_document(self) -> dict[str, Any]:
        return {"format": POLICY_FORMAT, "export_policy": self.export_policy,
                "statements": [s.to_document() for s in self.statements]}

    def to_pb(self, key_id: str) -> pb.PutKeyPolicyRequest:
        return pb.PutKeyPolicyRequest(key_id=key_id, statements=[s.to_pb() for s in self.statements],
                                      export_policy=pb.ExportPolicy.Value(self.export_policy))


@dataclass(frozen=True)
class Grant:
    """A delegation on one key: the grantee may run these operations until expires_at, if the conditions hold."""

    grant_id: bytes
    grantee: bytes
    operations: int
    expires_at: datetime | None
    conditions: tuple[tuple[str, str], ...] = field(default=())

    @classmethod
    def from_pb(cls, g: pb.Grant) -> Grant:
        return cls(bytes(g.grant_id), bytes(g.grantee), g.operations,
                   datetime.fromtimestamp(g.expires_at, UTC) if g.expires_at else None,
                   tuple((_text(c.key), _text(c.value)) for c in g.conditions))

    def to_dict(self) -> dict[str, Any]:
        return {"grant_id": self.grant_id.hex(), "grantee": self.grantee.hex(),
                "operations": ",".join(operation_names(self.operations)),
                "expires_at": self.expires_at.isoformat() if self.expires_at else None,
                "conditions": ",".join(f"{k}={v}" for k, v in self.conditions) or None}


def grant_conditions(conditions: Mapping[str, str] | None) -> list[pb.ContextCondition]:
    """Checked grant conditions as protobuf messages."""
    return _pb_conditions(_conditions(conditions, "grant"))
