"""Docs stay true: every error code has a troubleshooting section."""

from __future__ import annotations

import re
from pathlib import Path

from mailport.errors import all_error_classes

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_error_code_has_a_troubleshooting_section():
    headings = set(re.findall(r"^## (\S+)\s*$", (DOCS / "troubleshooting.md").read_text(), re.M))
    missing = sorted({cls.code for cls in all_error_classes()} - headings)
    assert not missing, f"docs/troubleshooting.md lacks sections for: {missing}"
