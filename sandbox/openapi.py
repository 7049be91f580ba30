"""Write the sandbox's OpenAPI document: ``python -m sandbox.openapi > docs/openapi.json``.

``tests/sandbox/test_openapi.py`` fails when docs/openapi.json is stale or when its public paths
disagree with the endpoint table of docs/api.md.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def document() -> dict[str, Any]:
    from .app import create_app
    from .store import Store

    spec: dict[str, Any] = create_app(Store(), run_worker=False).openapi()
    return spec


def render() -> str:
    return json.dumps(document(), ensure_ascii=False, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
