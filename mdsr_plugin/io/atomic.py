"""Write-to-temporary-then-rename, so an output file appears only when it is complete."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

__all__ = ["AtomicFiles", "write_text_atomically", "temporary_name", "is_temporary_name", "remove_open_temporaries"]

#: Temporary files of this process not yet committed or aborted; a process killed by
#: SIGTERM removes them (:func:`remove_open_temporaries`) before it exits.
_OPEN: set[Path] = set()


def temporary_name(path: Path) -> Path:
    """A hidden sibling of ``path`` that keeps its extension (libraries pick formats by it)."""
    path = Path(path)
    return path.with_name(f".{path.stem}.partial-{uuid.uuid4().hex[:8]}{path.suffix}")


def is_temporary_name(path) -> bool:
    """Whether ``path`` looks like a :func:`temporary_name` (a leftover of a killed writer)."""
    name = Path(path).name
    if not name.startswith(".") or ".partial-" not in name:
        return False
    tag = name.split(".partial-", 1)[1][:8]
    return len(tag) == 8 and all(c in "0123456789abcdef" for c in tag)


def remove_open_temporaries() -> None:
    """Delete this process's uncommitted temporary files (for signal handlers)."""
    for temp in list(_OPEN):
        try:
            temp.unlink()
        except OSError:
            pass
    _OPEN.clear()


class AtomicFiles:
    """Temporary names for a group of output files that are published together.

    ``commit()`` renames every temporary file onto its final name (each rename is
    atomic on POSIX); ``abort()`` deletes them.  As a context manager it gives the
    temporary paths and commits on success, aborts on any exception.  A writer producing two files (a DCD
    and its velocity DCD) commits both or neither.
    """

    def __init__(self, *paths: Path):
        self.final = [Path(p) for p in paths]
        self.temporary = [temporary_name(p) for p in self.final]
        _OPEN.update(self.temporary)

    def commit(self) -> None:
        for temp, final in zip(self.temporary, self.final):
            os.replace(temp, final)
            _OPEN.discard(temp)

    def __enter__(self) -> list[Path]:
        """The temporary paths to write; committed when the block ends normally, else deleted."""
        return self.temporary

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.abort()
        return False

    def abort(self) -> None:
        for temp in self.temporary:
            _OPEN.discard(temp)
            try:
                temp.unlink()
            except FileNotFoundError:
                pass


def write_text_atomically(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file; returns ``path``.

    Readers see the old file or the whole new one, never a part; on an error the
    old file is left as it was.
    """
    path = Path(path)
    with AtomicFiles(path) as (temporary,):
        temporary.write_text(text, encoding="utf-8")
    return path
