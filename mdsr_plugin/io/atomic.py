"""Write-to-temporary-then-rename, so an output file appears only when it is complete."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

__all__ = ["AtomicFiles", "temporary_name"]


def temporary_name(path: Path) -> Path:
    """A hidden sibling of ``path`` that keeps its extension (libraries pick formats by it)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.partial-{uuid.uuid4().hex[:8]}{path.suffix}")


class AtomicFiles:
    """Temporary names for a group of output files that are published together.

    ``commit()`` renames every temporary file onto its final name (each rename is
    atomic on POSIX); ``abort()`` deletes them.  A writer producing two files (a DCD
    and its velocity DCD) commits both or neither.
    """

    def __init__(self, *paths: Path):
        self.final = [Path(p) for p in paths]
        self.temporary = [temporary_name(p) for p in self.final]

    def commit(self) -> None:
        for temp, final in zip(self.temporary, self.final):
            os.replace(temp, final)

    def abort(self) -> None:
        for temp in self.temporary:
            try:
                temp.unlink()
            except FileNotFoundError:
                pass
