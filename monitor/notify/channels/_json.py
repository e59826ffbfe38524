from __future__ import annotations

import json
from typing import Any


def dumps(body: Any) -> bytes:
    """The exact bytes sent (and signed): compact UTF-8 JSON."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
