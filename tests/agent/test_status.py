"""The agent's tables against what they must cover: every ErrorCode of errors.proto has a gRPC status; every
operation of the session API is either forwarded, with an RPC of agent.proto whose messages are the session's
own, or named as not forwarded; docs/agent.md's error table is this table."""

from __future__ import annotations

import re
from pathlib import Path

import grpc

from kms.agent.grpc_api import SERVICE, rpc_operations
from kms.agent.operations import FORWARDED, NOT_FORWARDED
from kms.agent.status import AGENT_STATUS, STATUS_BY_CODE
from kms.client.idempotency import IDEMPOTENT, NOT_IDEMPOTENT
from kms.proto.enclave.v1 import boundary_pb2 as pb
from kms.proto.enclave.v1 import errors_pb2

REPO = Path(__file__).resolve().parents[2]


def test_every_error_code_has_a_status() -> None:
    codes = {v.number for v in errors_pb2.ErrorCode.DESCRIPTOR.values if v.number != errors_pb2.KMS_OK}
    assert set(STATUS_BY_CODE) == codes
    assert all(isinstance(s, grpc.StatusCode) and s != grpc.StatusCode.OK for s in STATUS_BY_CODE.values())


def test_every_operation_is_forwarded_or_named() -> None:
    ops = {f.name for f in pb.Request.DESCRIPTOR.oneofs_by_name["op"].fields}
    assert set(FORWARDED) | set(NOT_FORWARDED) == ops and not set(FORWARDED) & set(NOT_FORWARDED)
    assert set(FORWARDED) <= IDEMPOTENT | NOT_IDEMPOTENT   # the SDK's one table says how each is retried


def test_each_rpc_carries_its_operation_with_the_sessions_messages() -> None:
    results = {f.message_type.full_name for f in pb.Response.DESCRIPTOR.oneofs_by_name["result"].fields}
    operations = rpc_operations()
    assert {m.name for m in SERVICE.methods} == set(operations)
    for method in SERVICE.methods:
        field = pb.Request.DESCRIPTOR.fields_by_name[operations[method.name]]
        assert method.input_type is field.message_type, method.name
        assert method.output_type.full_name in results, method.name
        assert not method.client_streaming and not method.server_streaming


def test_the_docs_table_is_the_code() -> None:
    text = (REPO / "docs" / "agent.md").read_text()
    rows = dict(re.findall(r"^\| `(KMS_ERR_\w+|AGENT_\w+|OUTCOME_UNKNOWN)` \| `(\w+)` \|", text, re.MULTILINE))
    expected = {errors_pb2.ErrorCode.Name(code): status.name for code, status in STATUS_BY_CODE.items()}
    expected.update({name: status.name for _, status, name in AGENT_STATUS})
    assert rows == expected


def test_the_operations_doc_lists_every_agent_flag() -> None:
    from kms.cli import build_parser

    agent = build_parser()._subparsers._group_actions[0].choices["agent"]
    (group,) = [g for g in agent._action_groups if g.title == "agent"]
    flags = {a.option_strings[0] for a in group._group_actions}
    doc = (REPO / "docs" / "operations.md").read_text().split("## The agent (`kms agent`)", 1)[1].split("\n## ")[0]
    documented = set(re.findall(r"^\| `(--[\w-]+)", doc, re.MULTILINE))
    assert documented == flags
