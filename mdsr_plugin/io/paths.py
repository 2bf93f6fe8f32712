"""Which files a run reads and writes, and the one rule between them: never overwrite an input.

Every entry point (``mdsr-upsample``, ``mdsr-batch``, the Python functions) lists the
files it reads — the trajectory, its topology, a velocity file, any companion — and
the files it will write — the output *and the companions its writer adds* (a DCD's
``.vel.dcd``), a learned checkpoint — and calls :func:`refuse_overwrite` before any
file is opened for writing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from .base import FormatError
from .atomic import not_a_file

__all__ = ["output_paths", "refuse_overwrite", "same_file"]


def output_paths(path, format: str | None = None) -> list[Path]:
    """Every file the writer for ``path`` produces: ``path`` first, then its companions.

    Parameters
    ----------
    path : path-like
        The output the user named.
    format : str, optional
        Format name when the extension does not tell.
    """
    from . import get_format

    fmt = get_format(path, format, writing=True)  # a format it can only read is named as such
    return [Path(path), *(Path(p) for p in fmt.companion_outputs(Path(path)))]


def same_file(a, b) -> bool:
    """Whether two paths name one file: equal once resolved, or hard links to one inode."""
    a, b = Path(a), Path(b)
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): only equal names can clash
        return False


def refuse_overwrite(inputs: Iterable, outputs: Iterable, *, what: str = "output") -> None:
    """Raise :class:`FormatError` if any of ``outputs`` would replace one of ``inputs``.

    Parameters
    ----------
    inputs : iterable of path-like or None
        Every file the run reads (Nones are skipped).
    outputs : iterable of path-like or None
        Every file the run writes, companions included (Nones are skipped).
    what : str
        How the message names the writing side.
    """
    inputs = [Path(p) for p in inputs if p is not None]
    for out in (Path(p) for p in outputs if p is not None):
        kind = not_a_file(out)
        if kind is not None:
            raise FormatError(f"{out}: the {what} names {kind}, not a file")
        for source in inputs:
            if same_file(out, source):
                named = "" if out.name == Path(source).name and out.resolve() == source.resolve() else f" ({source})"
                raise FormatError(f"{out}: the {what} would overwrite the input{named}")
