"""The reader and writer contracts every format backend fulfils.

A reader is a context manager whose :meth:`TrajectoryReader.chunks` yields
:class:`~mdsr_plugin.trajectory.Trajectory` pieces of at most ``chunk_size``
frames, in internal units, so that a file of any length is read in bounded
memory.  A writer is a context manager that accepts such pieces in order and
publishes its file(s) only when the ``with`` block ends without an exception.

To add a format, subclass these two classes in a module of
:mod:`mdsr_plugin.io` and register them with :func:`mdsr_plugin.io.register_format`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Iterator

import numpy as np

from ..trajectory import Trajectory, TrajectoryError
from .atomic import AtomicFiles

__all__ = ["TrajectoryReader", "TrajectoryWriter", "FormatError", "frame_times"]


class FormatError(ValueError):
    """A file that cannot be read or written as asked (missing metadata, wrong contents)."""


class NotATrajectory(FormatError):
    """A code's output that holds no MD run (a pw.x SCF or relaxation log, an FHI-aims single
    point, a SIESTA relaxation): nothing to upsample.  ``mdsr-batch`` lists such files apart
    from its failures."""


def frame_times(first_frame: int, n: int, file_times, dt: float | None, source: str) -> np.ndarray:
    """Times (fs) of ``n`` frames from ``first_frame`` on: the user's ``dt`` (fs) when given,
    else the file's ``file_times`` (fs), else a :class:`FormatError` asking for a step."""
    if dt is not None:
        return (first_frame + np.arange(n)) * float(dt)
    if file_times is None:
        raise FormatError(f"{source}: the file records no time step; pass --dt or dt= (coarse step in fs)")
    return np.asarray(file_times, dtype=np.float64)


class TrajectoryReader(ABC):
    """Streaming reader; subclasses implement :meth:`_chunks` and may set ``n_frames``."""

    #: Number of frames in the file when known without reading it all, else None.
    n_frames: int | None = None

    def __init__(self, path, *, dt: float | None = None):
        self.path = Path(path)
        #: Time step in fs forced by the user; overrides what the file says.
        self.dt_override = dt

    def chunks(self, chunk_size: int = 1000) -> Iterator[Trajectory]:
        """Yield consecutive pieces of the trajectory, each validated (finite values)."""
        first = 0
        for chunk in self._chunks(chunk_size):
            chunk.validate(first_frame=first)
            first += chunk.n_frames
            yield chunk

    def read(self) -> Trajectory:
        """The whole trajectory in memory (for short files and tests)."""
        from ..trajectory import concatenate

        parts = list(self.chunks())
        if not parts:
            raise FormatError(f"{self.path}: no frames")
        return concatenate(parts)

    @abstractmethod
    def _chunks(self, chunk_size: int) -> Iterator[Trajectory]:
        """Yield consecutive pieces of at most ``chunk_size`` frames, in internal units."""

    def _times(self, first_frame: int, n: int, file_times: np.ndarray | None) -> np.ndarray:
        return frame_times(first_frame, n, file_times, self.dt_override, self.path.name)

    def close(self) -> None:  # noqa: B027 - readers without open resources need not close
        """Release open files; readers holding none keep this default."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class TrajectoryWriter(ABC):
    """Writer publishing its files atomically.

    Subclasses list their output paths in ``_paths()`` (the first is the main
    file), open the temporary names in :meth:`_open`, and implement
    :meth:`_write` and :meth:`_close`.
    """

    def __init__(self, path):
        self.path = Path(path)
        self._files = AtomicFiles(*self._paths())
        self._opened = False
        self.frames_written = 0

    def _paths(self) -> list[Path]:
        return [self.path]

    @property
    def temporary_paths(self) -> list[Path]:
        return self._files.temporary

    @property
    def paths(self) -> list[Path]:
        """Final paths of every file this writer produces."""
        return self._files.final

    def write(self, traj: Trajectory) -> None:
        """Append the frames of ``traj`` (internal units)."""
        if not isinstance(traj, Trajectory):
            raise TypeError(f"a writer takes a Trajectory, not {type(traj).__name__}")
        if traj.n_frames == 0:
            return
        try:  # the writer boundary: NaN, inf or overflowed positions never reach a file
            traj.validate(first_frame=self.frames_written)
        except TrajectoryError as err:
            raise TrajectoryError(f"{self.path.name}: not written: output {err}") from None
        if not self._opened:
            self._open(traj)
            self._opened = True
        self._write(traj)
        self.frames_written += traj.n_frames

    @abstractmethod
    def _open(self, first: Trajectory) -> None:
        """Create the temporary file(s); ``first`` is the first chunk to be written."""

    @abstractmethod
    def _write(self, traj: Trajectory) -> None:
        """Append the frames of ``traj``."""

    @abstractmethod
    def _close(self) -> None:
        """Flush and close the temporary file(s); publishing is done by the base class."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if self._opened:
                self._close()
        except BaseException:
            self._files.abort()
            raise
        if exc_type is None and self._opened:
            self._files.commit()
        else:
            self._files.abort()
            if exc_type is None:
                raise TrajectoryError(f"{self.path}: no frames to write")
        return False
