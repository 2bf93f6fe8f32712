"""Plain XYZ frames as MD codes write them (CP2K, i-PI): a count, a comment, ``symbol x y z`` lines.

ASE's extended-XYZ parser reads these too, but it cannot tell what the numbers are:
CP2K writes velocities and forces in files of the same shape as positions, and i-PI
says in the comment line which quantity the file holds and in which unit.  These
readers keep the comment line of every frame so that the code-specific readers
(:mod:`.cp2k`, :mod:`.ipi`) can read it.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Iterator

import numpy as np

from .base import FormatError

__all__ = ["XYZBlock", "xyz_blocks", "first_comment", "fixed_frames", "columns"]


class XYZBlock:
    """Consecutive frames of one XYZ file.

    Attributes
    ----------
    symbols : list of str
        The atom symbols of the first frame of the block (n_atoms,).
    values : ndarray, shape (n_frames, n_atoms, 3)
        The three numbers of every atom line, in the file's units.
    comments : list of str
        The comment line of every frame.
    """

    def __init__(self, symbols, values, comments):
        self.symbols, self.values, self.comments = symbols, values, comments

    @property
    def n_frames(self) -> int:
        return len(self.comments)


def first_comment(path) -> str | None:
    """The comment (second) line of an XYZ file, or None if the file is not XYZ-shaped."""
    try:
        with open(path, "r", errors="replace") as handle:
            head = list(itertools.islice(handle, 2))
    except OSError:
        return None
    if len(head) < 2 or not head[0].strip().isdigit():
        return None
    return head[1].rstrip("\n")


def xyz_blocks(path, chunk_size: int) -> Iterator[XYZBlock]:
    """Yield blocks of at most ``chunk_size`` frames; every frame must have the first frame's atoms.

    Raises
    ------
    FormatError
        A truncated frame, a line that is not ``symbol x y z``, or an atom count that changes.
    """
    path = Path(path)
    n_atoms = symbols = None
    frame = 0
    with open(path, "r") as handle:
        while True:
            comments, lines = [], []
            for _ in range(chunk_size):
                count = handle.readline()
                if not count.strip():
                    if count == "":  # end of file
                        break
                    continue  # blank lines between frames
                try:
                    n = int(count)
                except ValueError:
                    raise FormatError(f"{path.name}: frame {frame}: expected an atom count, got {count.strip()!r}") from None
                if n_atoms is None:
                    n_atoms = n
                elif n != n_atoms:
                    raise FormatError(f"{path.name}: frame {frame} has {n} atoms, frame 0 has {n_atoms}")
                comments.append(handle.readline().rstrip("\n"))
                atoms = list(itertools.islice(handle, n))
                if len(atoms) != n:
                    raise FormatError(f"{path.name}: frame {frame} is cut short ({len(atoms)} of {n} atom lines)")
                lines.extend(atoms)
                frame += 1
            if not comments:
                return
            tokens = np.array("".join(lines).split(), dtype=object)
            if tokens.size != 4 * len(lines):
                raise FormatError(f"{path.name}: atom lines must be 'symbol x y z' (frames {frame - len(comments)}"
                                  f"-{frame - 1})")
            tokens = tokens.reshape(len(comments), n_atoms, 4)
            if symbols is None:
                symbols = [str(s) for s in tokens[0, :, 0]]
            try:
                values = tokens[..., 1:].astype(np.float64)
            except ValueError as err:
                raise FormatError(f"{path.name}: a coordinate is not a number ({err})") from None
            yield XYZBlock(symbols, values, comments)


def fixed_frames(handle, source: str, n_header: int, n_body: int) -> Iterator[tuple[list[str], list[str]]]:
    """Yield ``(header lines, body lines)`` of consecutive frames that all have the same length.

    The frame-based text files of MD codes (Tinker archives, xtb and DFTB+ XYZ, SIESTA
    ``.ANI``) repeat ``n_header`` lines (a count, a title, a box) and ``n_body`` lines (one or
    more per atom).  Blank lines where a frame should start are skipped; a header may itself
    hold a blank line (SIESTA's empty comment), so only the first one is looked past.

    Raises
    ------
    FormatError
        A frame cut short, naming ``source`` and the frame.
    """
    frame = 0
    while True:
        first = handle.readline()
        while first and not first.strip():
            first = handle.readline()
        if not first:
            return
        header = [first] + list(itertools.islice(handle, n_header - 1))
        body = list(itertools.islice(handle, n_body))
        if len(header) < n_header or len(body) < n_body:
            raise FormatError(f"{source}: frame {frame} is cut short ({len(header) + len(body)} of "
                              f"{n_header + n_body} lines); remove the partial frame or let the run finish")
        yield header, body
        frame += 1


def columns(lines: list[str], first: int, n: int, source: str) -> np.ndarray:
    """The ``n`` numbers from token ``first`` on of every line, shape (len(lines), n).

    Raises
    ------
    FormatError
        A line with too few tokens or a token that is not a number.
    """
    try:
        rows = [line.split()[first:first + n] for line in lines]
        table = np.array(rows, dtype=np.float64)
    except ValueError:
        bad = next((line for line in lines if len(line.split()) < first + n), None)
        what = f"a line has fewer than {first + n} fields: {bad.strip()[:60]!r} (cut short or damaged)" \
            if bad is not None else \
            "a field is not a number"
        raise FormatError(f"{source}: {what}") from None
    if table.shape != (len(lines), n):
        raise FormatError(f"{source}: expected {first + n} fields per atom line")
    return table
