"""The PKCS#11 module on its own (pkcs11/, no agent): its C unit tests under ASan + UBSan (a fake agent
in-process), what the shared object exports, and docs/pkcs11.md's mechanism table against the
module's, read through python-pkcs11 (a client nobody here wrote)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "build" / "libkms_pkcs11.so"
DOC = REPO / "docs" / "pkcs11.md"


@pytest.fixture(scope="module")
def module() -> Path:
    subprocess.run(["make", "-s", "pkcs11"], cwd=REPO, check=True, capture_output=True, timeout=600)
    return MODULE


@pytest.mark.timeout(900)
def test_c_unit_tests_pass_under_sanitizers() -> None:
    proc = subprocess.run(["make", "pkcs11-test"], cwd=REPO, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert "-fsanitize=address,undefined" in out or "== build/p11/test/test_pkcs11" in out
    summaries = re.findall(r"^(\d+) passed, (\d+) failed$", proc.stdout, re.MULTILINE)
    assert summaries and all(int(p) > 100 and int(f) == 0 for p, f in summaries), summaries


def test_module_exports_only_cryptoki(module: Path) -> None:
    out = subprocess.run(["nm", "-D", "--defined-only", str(module)], capture_output=True, text=True, check=True)
    names = [line.split()[-1] for line in out.stdout.splitlines() if line.strip()]
    assert "C_GetFunctionList" in names
    assert all(n.startswith("C_") for n in names), [n for n in names if not n.startswith("C_")]


def _doc_table() -> dict[str, set[str]]:
    section = DOC.read_text().split("\n## Mechanisms\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(CKM_\w+)` \| [^|]+ \| ([a-z_, ]+) \|", section, re.MULTILINE)
    return {name: {f.strip() for f in funcs.split(",")} for name, funcs in rows}


LIST_MECHANISMS = """
import json, sys, pkcs11
lib = pkcs11.lib(sys.argv[1])
(slot,) = lib.get_slots(token_present=False)
out = {}
for mech in slot.get_mechanisms():
    flags = slot.get_mechanism_info(mech).flags
    out["CKM_" + mech.name] = sorted(f.name.lower() for f in pkcs11.MechanismFlag
                                     if f in flags and f.name and not f.name.startswith("EC_"))
print(json.dumps({"mechanisms": out, "present": len(lib.get_slots(token_present=True))}))
"""


def test_mechanism_table_is_the_documented_one(module: Path) -> None:
    """Both ways: every mechanism the module lists is in the doc with the same functions, and nothing else is.
    In a child process (python-pkcs11 keeps a loaded module initialized), with no agent: the list needs none."""
    pytest.importorskip("pkcs11", reason="python-pkcs11 is a test dependency (./dev setup)")
    env = dict(os.environ, KMS_PKCS11_SOCKET="/nonexistent/agent.sock")
    proc = subprocess.run([sys.executable, "-c", LIST_MECHANISMS, str(module)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    listed = {name: set(flags) for name, flags in got["mechanisms"].items()}
    documented = _doc_table()
    assert len(documented) >= 20
    assert listed == documented
    assert got["present"] == 0  # no agent there: no token


def test_unsupported_list_names_no_offered_mechanism() -> None:
    section = DOC.read_text().split("\n## Not supported\n", 1)[1].split("\n## ", 1)[0]
    refused = set(re.findall(r"`(CKM_\w+?)`", section))
    offered = set(_doc_table())
    # CKM_RSA_PKCS and CKM_AES_GCM appear there for their refused uses (encrypt/decrypt, raw GCM)
    assert refused - offered, refused
    assert refused & offered <= {"CKM_RSA_PKCS", "CKM_AES_GCM"}
