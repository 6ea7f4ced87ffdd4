"""The project's docs stay true to the tests: docs/protocol.md quotes the live sample frames
the tests feed (tests/helpers.py A1-A4) exactly, and the docs cite only files a clone has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import helpers

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["A1", "A2", "A3", "A4"])
def test_protocol_doc_quotes_the_sample_frames_exactly(name: str) -> None:
    doc = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    sample = getattr(helpers, name)
    assert f"```json\n{sample}\n```" in doc, f"docs/protocol.md does not quote {name} exactly"


def test_docs_and_code_cite_only_files_a_clone_has() -> None:
    outside = re.compile(r"DESIGN\.md|PROTOCOL-NOTES|digifinex-live-samples|/work/|shared/fixtures")
    found = []
    for path in ROOT.rglob("*"):
        if path.suffix not in {".py", ".pyx", ".pxd", ".pyi", ".md", ".sh", ".toml"} or any(
            part.startswith(".") or part in {"build", "__pycache__"} for part in path.relative_to(ROOT).parts
        ):
            continue
        if path.name == "test_docs.py":
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if outside.search(line):
                found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not found, "\n".join(found)
