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


def test_the_ecall_and_ocall_tables_are_the_edl() -> None:
    """docs/boundary.md lists every ECALL and OCALL of enclave/kms.edl, numbered as edge.h numbers them."""
    edl = (REPO / "enclave/kms.edl").read_text()
    edge = (REPO / "enclave/include/kms/edge.h").read_text()
    doc = (REPO / "docs/boundary.md").read_text()
    for kind in ("ecall", "ocall"):
        declared = re.findall(rf"\b(kms_{kind}_\w+)\s*\(", edl)
        assert declared, kind
        numbered = {f"kms_{kind}_{name.lower()}": int(n)
                    for name, n in re.findall(rf"KMS_{kind.upper()}_(\w+) = (\d+)", edge) if name != "COUNT"}
        documented = {name: int(n) for n, name in re.findall(rf"^\| (\d+) \| `(kms_{kind}_\w+)\(", doc, flags=re.M)}
        assert documented == {name: numbered[name] for name in declared}, kind
    counts = re.search(r"has (\w+) ECALLs and (\w+) OCALLs", doc)
    words = {6: "six", 7: "seven", 8: "eight", 9: "nine", 10: "ten"}
    assert counts and counts.groups() == (words[len(re.findall(r"\bkms_ecall_\w+\s*\(", edl))],
                                          words[len(re.findall(r"\bkms_ocall_\w+\s*\(", edl))])
