"""The tables of docs/boundary.md are what their sources say: the operation table is generated
from enclave/src/operations.def and the error table from errors.proto and kms.errors
(scripts/docs_tables.py). A stale table fails here; regenerate with `python scripts/docs_tables.py`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

import docs_tables  # noqa: E402


def test_generated_tables_are_current() -> None:
    proc = subprocess.run([sys.executable, "scripts/docs_tables.py", "--check"], cwd=REPO, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_operation_of_the_request_oneof_is_in_the_table() -> None:
    from kms.proto.enclave.v1 import boundary_pb2 as pb

    oneof = {f.name for f in pb.Request.DESCRIPTOR.oneofs_by_name["op"].fields}
    assert {op["name"] for op in docs_tables.operations()} == oneof


def test_every_error_code_is_in_the_table() -> None:
    from kms.proto.enclave.v1 import errors_pb2

    doc = (REPO / "docs/boundary.md").read_text()
    for name in errors_pb2.ErrorCode.keys():
        assert re.search(rf"\| `{name}` \|", doc), name


def test_operation_names_in_the_docs_exist() -> None:
    """Operation names the prose tables mention are operations (no stale names)."""
    names = {op["name"] for op in docs_tables.operations()}
    doc = (REPO / "docs/boundary.md").read_text()
    mentioned = set(re.findall(r"^\| `(\w+)`", doc, flags=re.M)) - {c for c, *_ in docs_tables.error_codes()}
    assert mentioned <= names, mentioned - names
