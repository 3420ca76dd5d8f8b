"""Structure that is checked, not described: ruff and import-linter (pyproject.toml) run as part of the tests."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the tools come with the test extras, next to this interpreter


def _tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    tool = BIN / name
    assert tool.is_file(), f"{tool} is missing: install the test extras (./dev setup)"
    return subprocess.run([str(tool), *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_import_contracts_hold() -> None:
    proc = _tool("lint-imports", "--no-cache", "--no-logo")
    assert proc.returncode == 0, f"import-linter found broken contracts:\n{proc.stdout}\n{proc.stderr}"
    assert "0 broken" in proc.stdout, proc.stdout


def test_ruff_is_clean() -> None:
    proc = _tool("ruff", "check", "--no-cache", ".")
    assert proc.returncode == 0, f"ruff check failed:\n{proc.stdout}\n{proc.stderr}"


def _contracts() -> list[dict]:
    with (REPO / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)["tool"]["importlinter"]["contracts"]


def _layers_section() -> str:
    text = (REPO / "docs" / "architecture.md").read_text()
    return text.split("\n## Layers\n", 1)[1].split("\n## ", 1)[0]


def test_architecture_doc_lists_the_contracts_layers() -> None:
    """docs/architecture.md's numbered list is the layers contract, layer by layer, in order."""
    (layers,) = [c for c in _contracts() if c["type"] == "layers"]
    documented = [tuple(re.findall(r"`([\w.]+)`", m.group(1)))
                  for m in re.finditer(r"^\d+\. ((?:`[\w.]+`(?: \| )?)+):", _layers_section(), re.MULTILINE)]
    declared = [tuple(part.strip() for part in layer.split("|")) for layer in layers["layers"]]
    assert documented == declared


def test_architecture_doc_describes_every_other_contract() -> None:
    """Each forbidden contract appears by name, with the kms modules it forbids."""
    section = " ".join(_layers_section().replace("`", "").split())
    for contract in (c for c in _contracts() if c["type"] == "forbidden"):
        name = " ".join(contract["name"].split())
        assert name in section, f"docs/architecture.md does not describe the contract {name!r}"
        bullet = section.split(name, 1)[1].split(" - ", 1)[0]
        missing = [m for m in contract["forbidden_modules"] if m.startswith("kms.") and m not in bullet]
        assert not missing, f"{name!r}: the doc does not name {missing}"


def test_the_sdk_the_cli_and_the_signer_load_without_the_enclave_build() -> None:
    """What the contracts promise, at run time: with the native bridge unimportable, the client SDK, the `kms`
    parser and the validator signer still import, and nothing pulled in the bridge."""
    code = (
        "import sys\n"
        "sys.modules['kms.enclave._native'] = None  # importing it now raises ImportError\n"
        "import kms.client, kms.validator.runner, kms.cli\n"
        "kms.cli.build_parser()\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('kms.enclave.bridge', 'kms.service', 'kms.api')))\n"
        "assert not loaded, loaded\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
