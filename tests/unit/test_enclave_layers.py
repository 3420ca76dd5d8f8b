"""The trusted modules keep the layering docs/architecture.md describes: every file of
enclave/src is in the layer table, and every `#include "x.h"` of a project header goes to the
same layer or one below. Also: only the trusted edge knows the marshalling structs, and only
the platform file, among trusted code, includes the simulated CPU's header."""

from __future__ import annotations

import re
from fnmatch import fnmatch
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "enclave/src"


def layers() -> list[list[str]]:
    text = (REPO / "docs/architecture.md").read_text()
    table = text[text.index("<!-- layers -->"):text.index("<!-- end layers -->")]
    rows = re.findall(r"^\| (\d+) \| (.*?) \|", table, flags=re.M)
    return [re.findall(r"`([\w.*]+)`", mods) for _, mods in rows]


def layer_of(name: str, table: list[list[str]]) -> int:
    """Layer of a file: a module pattern matches its stem, a header entry matches it exactly."""
    stem = name.rsplit(".", 1)[0]
    hits = [i for i, mods in enumerate(table)
            for m in mods if (m == name if m.endswith(".h") else fnmatch(stem, m))]
    assert len(hits) == 1, f"{name} is in {len(hits)} layers of docs/architecture.md"
    return hits[0]


def test_every_include_goes_down() -> None:
    table = layers()
    assert len(table) >= 10
    bad = []
    for path in sorted(SRC.glob("*.[ch]")):
        own = layer_of(path.name, table)
        for inc in re.findall(r'^#include "(\w+\.h)"', path.read_text(), flags=re.M):
            if (SRC / inc).exists() and layer_of(inc, table) < own:
                bad.append(f"{path.name} (layer {own + 1}) includes {inc} (layer {layer_of(inc, table) + 1})")
    assert not bad, "\n".join(bad)


def test_one_file_knows_the_marshalling() -> None:
    users = [p.name for p in SRC.glob("*.c") if '#include "kms/edge.h"' in p.read_text()]
    assert users == ["edge.c"]
    trusted_sim = [p.name for p in SRC.glob("*.[ch]") if '#include "kms/simcpu.h"' in p.read_text()]
    assert trusted_sim == [], trusted_sim  # trusted code reaches the CPU through platform.h only
