"""Shared by the bench scripts: results are JSON lists of rows, appended to run by run."""

from __future__ import annotations

import json
from pathlib import Path


def append_rows(path, rows: list) -> None:
    """Append ``rows`` (dicts) to the JSON list in ``path`` (created with its folder if missing)."""
    path = Path(path)
    existing = json.loads(path.read_text()) if path.exists() else []
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(existing + rows, indent=1))
