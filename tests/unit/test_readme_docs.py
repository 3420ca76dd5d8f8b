"""The README's map of the repository names every document in docs/: a newcomer finds each one from there."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_doc_is_linked_from_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    linked = set(re.findall(r"\]\((docs/[\w-]+\.md)", readme))
    present = {f"docs/{p.name}" for p in (REPO / "docs").glob("*.md")}
    assert present - linked == set(), "docs not linked from README.md"
    assert linked - present == set(), "README.md links docs that do not exist"
