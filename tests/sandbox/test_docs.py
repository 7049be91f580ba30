"""docs/sandbox.md documents every review rule the sandbox applies."""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_every_review_code_is_documented() -> None:
    source = (ROOT / "sandbox" / "review.py").read_text(encoding="utf-8")
    codes = set(re.findall(r'Finding\(\s*"([a-z_]+)"', source)) - {"material", "field"}
    assert len(codes) >= 12
    doc = (ROOT / "docs" / "sandbox.md").read_text(encoding="utf-8")
    missing = sorted(c for c in codes if f"`{c}`" not in doc)
    assert not missing, f"review codes not in docs/sandbox.md: {missing}"
