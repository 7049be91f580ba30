"""docs/api.md's endpoint table and the SDK name the same endpoints."""

from __future__ import annotations

import pathlib
import re

from .test_client import CALLS

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "api.md"
# reached by the download helper rather than a resource method
FOLLOWED = {
    ("GET", "/v1/certificates/C-1/content"),
    ("GET", "/v1/notices/N-1/content"),
    ("GET", "/v1/downloads/tok-1"),
}


def _documented() -> list[tuple[str, str]]:
    rows = re.findall(r"^\| (GET|POST|PUT|DELETE) \| (/v1/[^ |]*) \|", DOC.read_text(encoding="utf-8"), re.M)
    assert rows, "no endpoint table found in docs/api.md"
    return rows


def _regex(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(template)) + "$")


def test_every_sdk_endpoint_is_documented() -> None:
    documented = [(m, _regex(t)) for m, t in _documented()]
    used = {(m, p) for m, p, *_ in CALLS} | FOLLOWED
    for method, path in used:
        assert any(m == method and rx.match(path) for m, rx in documented), f"{method} {path} is not in docs/api.md"


def test_every_documented_endpoint_is_in_the_sdk() -> None:
    used = {(m, p) for m, p, *_ in CALLS} | FOLLOWED
    for method, template in _documented():
        rx = _regex(template)
        assert any(m == method and rx.match(p) for m, p in used), f"{method} {template} has no SDK method"
