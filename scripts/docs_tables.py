#!/usr/bin/env python3
"""Generate the tables of docs/boundary.md from their single sources, or check them.

- the operation table from enclave/src/operations.def (the enclave's one list of operations);
- the error table from proto/kms/proto/enclave/v1/errors.proto and kms.errors (the Python
  exception each code raises).

Each table sits between `<!-- generated: NAME -->` and `<!-- end generated: NAME -->` markers.
`python scripts/docs_tables.py` rewrites them; `--check` exits 1 (naming the table) when the
committed docs differ from what the sources say. tests/unit/test_docs_tables.py runs the check.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NONE = "\u2013"  # the docs' en dash for "none"
OPERATIONS_DEF = REPO / "enclave/src/operations.def"
ERRORS_PROTO = REPO / "proto/kms/proto/enclave/v1/errors.proto"
BOUNDARY_MD = REPO / "docs/boundary.md"

CALLERS = {"HOST": "host", "ADMIN": "admin", "USER": "user", "ANYONE": "any principal", "NEWDOMAIN": "no domain yet"}
AUDIT = {"NO": "no", "YES": "yes", "HOUSEKEEPING": "yes, except the host's refused proposals"}
CLASSES = {"OP_NONE": NONE, "OP_BATCH": "by batch operation"}


def _split_args(text: str) -> list[str]:
    """Top-level comma-separated arguments of a macro call body."""
    args, depth, cur = [], 0, []
    for ch in text:
        if ch == "," and depth == 0:
            args.append("".join(cur).strip())
            cur = []
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur.append(ch)
    args.append("".join(cur).strip())
    return args


def operations() -> list[dict[str, str]]:
    """The KMS_OP entries of operations.def, in order, as their seven arguments."""
    text = re.sub(r"/\*.*?\*/", "", OPERATIONS_DEF.read_text(), flags=re.S)
    ops, pos = [], 0
    while (start := text.find("KMS_OP(", pos)) >= 0:
        depth, i = 0, start + len("KMS_OP")
        while True:
            depth += text[i] == "("
            depth -= text[i] == ")"
            if depth == 0:
                break
            i += 1
        name, allow, audit, cls, key, source, context = _split_args(text[start + len("KMS_OP("):i])
        ops.append({"name": name, "allow": allow, "audit": audit, "class": cls, "key": key, "source": source,
                    "context": context})
        pos = i + 1
    return ops


def _key_column(op: dict[str, str]) -> str:
    if op["key"] == "NOKEY":
        return NONE
    parts = []
    req = re.search(r"REQ\(([\w.]+)\)", op["key"])
    resp = re.search(r"RESP\((\w+), ([\w.]+)\)", op["key"])
    ct = re.search(r"CT\(([\w.]+)\)", op["key"])
    if resp:
        parts.append(f"answer `{resp.group(1)}.{resp.group(2)}`")
    if req:
        parts.append(f"request `{req.group(1)}`")
    if ct:
        parts.append(f"the header of `{ct.group(1)}`")
    text = ", else ".join(parts)
    if op["source"] != "NOKEY":
        text += "; source key: " + _key_column({"key": op["source"], "source": "NOKEY"})
    return text


def operation_table() -> str:
    rows = ["| operation | callers | audited | policy class | key id in the audit record | encryption context |",
            "|---|---|---|---|---|---|"]
    for op in operations():
        callers = ", ".join(CALLERS[c.strip()] for c in op["allow"].split("|"))
        cls = CLASSES.get(op["class"], op["class"].removeprefix("OP_"))
        ctx = NONE if op["context"] == "NOCTX" else "`" + re.search(r"CTX\(([\w.]+)\)", op["context"]).group(1) + "`"
        rows.append(f"| `{op['name']}` | {callers} | {AUDIT[op['audit']]} | {cls} | {_key_column(op)} | {ctx} |")
    return "\n".join(rows) + "\n"


def error_codes() -> list[tuple[str, int, str]]:
    """(name, number, comment) of every ErrorCode, in file order."""
    codes = []
    for line in ERRORS_PROTO.read_text().splitlines():
        m = re.match(r"\s*(KMS_[A-Z0-9_]+)\s*=\s*(\d+);\s*(?://\s*(.*))?$", line)
        if m:
            codes.append((m.group(1), int(m.group(2)), (m.group(3) or "").strip()))
    return codes


def error_table() -> str:
    sys.path.insert(0, str(REPO))
    from kms import errors  # the Python half of the vocabulary

    rows = ["| code | name | meaning | Python exception |", "|---|---|---|---|"]
    for name, number, comment in error_codes():
        cls = NONE if number == 0 else errors.error_for_code(number).__class__.__name__
        rows.append(f"| {number} | `{name}` | {comment or NONE} | {NONE if number == 0 else f'`{cls}`'} |")
    return "\n".join(rows) + "\n"


TABLES = {"operations": operation_table, "errors": error_table}


def render(doc: str) -> str:
    for name, make in TABLES.items():
        begin, end = f"<!-- generated: {name} -->\n", f"<!-- end generated: {name} -->"
        a, b = doc.index(begin) + len(begin), doc.index(end)
        doc = doc[:a] + make() + doc[b:]
    return doc


def main(argv: list[str]) -> int:
    current = BOUNDARY_MD.read_text()
    wanted = render(current)
    if "--check" in argv:
        if wanted != current:
            print(f"{BOUNDARY_MD.relative_to(REPO)}: generated tables are stale; run scripts/docs_tables.py")
            return 1
        return 0
    BOUNDARY_MD.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
