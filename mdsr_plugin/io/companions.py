"""Quantities stored in files of their own: velocities, forces, cells beside the positions.

CP2K writes ``PROJECT-pos-1.xyz``, ``PROJECT-vel-1.xyz``, ``PROJECT-frc-1.xyz`` and
``PROJECT-1.cell``; i-PI writes ``PREFIX.pos_0.xyz``, ``.vel_0.xyz``, ``.for_0.xyz``.
A :class:`QuantitySource` reads one such file and yields its per-frame values in
internal units; :class:`WithCompanions` joins them to the frames of the positions'
reader, matching frames by count and, where both files store them, by MD step and
time.  Any mismatch is refused in one line: a velocity from the wrong frame would be
silently wrong everywhere downstream.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import numpy as np

from ..trajectory import Trajectory
from .base import FormatError, TrajectoryReader

__all__ = ["QuantityChunk", "QuantitySource", "WithCompanions", "QUANTITIES"]

#: What a companion file can hold, and the shape of one frame of it.
QUANTITIES = {"velocities": (3,), "forces": (3,), "cell": (3, 3)}


@dataclass
class QuantityChunk:
    """Consecutive frames of one quantity.

    Attributes
    ----------
    values : ndarray, shape (n_frames, n_atoms, 3) or (n_frames, 3, 3)
        In internal units (Å/fs, eV/Å, Å).
    steps : ndarray, shape (n_frames,), int, or None
        MD step of each frame, where the file stores it.
    times : ndarray, shape (n_frames,), fs, or None
        Time of each frame, where the file stores it.
    """

    values: np.ndarray
    steps: np.ndarray | None = None
    times: np.ndarray | None = None

    def __len__(self):
        return len(self.values)

    def __getitem__(self, index):
        pick = (lambda a: None if a is None else a[index])
        return QuantityChunk(self.values[index], pick(self.steps), pick(self.times))


class QuantitySource:
    """A file holding one per-frame quantity; subclasses implement :meth:`chunks`.

    Attributes
    ----------
    path : Path
    quantity : str
        ``"velocities"``, ``"forces"`` or ``"cell"``.
    units : str
        How the file's units were read and converted, for the summary ("bohr/a.u. time → Å/fs").
    """

    def __init__(self, path, quantity: str, units: str):
        self.path, self.quantity, self.units = Path(path), quantity, units

    def chunks(self, chunk_size: int) -> Iterator[QuantityChunk]:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.quantity} from {self.path.name} ({self.units})"


class WithCompanions(TrajectoryReader):
    """The frames of ``main`` with quantities from companion files added.

    Parameters
    ----------
    main : TrajectoryReader
        The positions' reader.
    sources : list of QuantitySource
        At most one per quantity; a quantity ``main`` already has is refused.
    """

    def __init__(self, main: TrajectoryReader, sources: list[QuantitySource]):
        super().__init__(main.path, dt=main.dt_override)
        self.main, self.sources = main, sources
        self.n_frames = main.n_frames
        seen = [s.quantity for s in sources]
        if len(set(seen)) != len(seen):
            raise FormatError(f"{self.path.name}: two files give the {seen[0]}")

    @property
    def notes(self) -> list[str]:
        """The main reader's phrases (some known only once it has read), then each companion's."""
        return [*getattr(self.main, "notes", []), *(s.describe() for s in self.sources)]

    def _chunks(self, chunk_size) -> Iterator[Trajectory]:
        streams = [_Buffered(s, s.chunks(chunk_size)) for s in self.sources]
        start, spacing = 0, None  # the frames' spacing, fs, for a chunk of one frame
        for chunk in self.main.chunks(chunk_size):
            if chunk.n_frames > 1 and np.diff(chunk.times).min() > 0:
                spacing = float(np.diff(chunk.times).min())
            changes = {}
            for stream in streams:
                part = stream.take(chunk.n_frames, start, self.path.name)
                if self.dt_override is not None:  # the user's times replace the files': match by step only
                    part.times = None
                _check_frames_match(chunk, part, stream.source, start, self.path.name, spacing)
                if getattr(chunk, stream.source.quantity) is not None and stream.source.quantity != "cell":
                    raise FormatError(f"{self.path.name} already stores {stream.source.quantity}; "
                                      f"{stream.source.path.name} would replace them (give one or the other)")
                if stream.source.quantity != "cell" and part.values.shape[1] != chunk.n_atoms:
                    raise FormatError(f"{stream.source.path.name} has {part.values.shape[1]} atoms, "
                                      f"{self.path.name} has {chunk.n_atoms}")
                changes[stream.source.quantity] = part.values
            if "cell" in changes:
                changes["pbc"] = np.ones(3, dtype=bool)
            yield replace(chunk, **changes)
            start += chunk.n_frames
        for stream in streams:
            stream.expect_end(start, self.path.name)

    def close(self):
        self.main.close()


class _Buffered:
    """A source's chunks, taken in pieces of any length."""

    def __init__(self, source: QuantitySource, chunks):
        self.source, self._chunks, self._pending = source, chunks, None

    def take(self, n: int, start: int, main_name: str) -> QuantityChunk:
        parts, have = [], 0
        while have < n:
            if self._pending is None or len(self._pending) == 0:
                self._pending = next(self._chunks, None)
                if self._pending is None:
                    raise FormatError(f"{self.source.path.name} has {start + have} frames, {main_name} has more; "
                                      "a companion file must hold the same frames (same print frequency)")
            piece = self._pending[: n - have]
            self._pending = self._pending[n - have:]
            parts.append(piece)
            have += len(piece)
        join = (lambda name: None if any(getattr(p, name) is None for p in parts)
                else np.concatenate([getattr(p, name) for p in parts]))
        return QuantityChunk(join("values"), join("steps"), join("times"))

    def expect_end(self, n_frames: int, main_name: str) -> None:
        extra = (0 if self._pending is None else len(self._pending)) + sum(len(c) for c in self._chunks)
        if extra:
            raise FormatError(f"{self.source.path.name} has {n_frames + extra} frames, {main_name} has {n_frames}; "
                              "a companion file must hold the same frames (same print frequency)")


def _check_frames_match(chunk: Trajectory, part: QuantityChunk, source: QuantitySource, start: int,
                        main_name: str, spacing: float | None = None) -> None:
    """Refuse a companion frame that is not the same MD step (or time) as the positions' frame;
    ``spacing`` (fs), the frames' spacing where ``chunk`` is too short to show it."""
    if chunk.steps is not None and part.steps is not None:
        bad = chunk.steps != part.steps
        if bad.any():
            i = int(np.argmax(bad))
            raise FormatError(f"frame {start + i}: {main_name} is MD step {chunk.steps[i]}, {source.path.name} "
                              f"step {part.steps[i]}; the files must hold the same steps")
    elif part.times is not None:
        # printed times agree to their rounding, and never to within a quarter of a frame spacing
        # of another frame (late in a long run 1e-3 of the time is more than a spacing)
        tolerance = 1e-3 * max(abs(chunk.times[-1]), 1.0)
        if len(chunk.times) > 1 and np.diff(chunk.times).min() > 0:
            spacing = np.diff(chunk.times).min()
        if spacing is not None:
            tolerance = min(tolerance, 0.25 * spacing)
        bad = np.abs(chunk.times - part.times) > tolerance
        if bad.any():
            i = int(np.argmax(bad))
            raise FormatError(f"frame {start + i}: {main_name} is at {chunk.times[i]:g} fs, {source.path.name} at "
                              f"{part.times[i]:g} fs; the files must hold the same frames")
