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

import warnings
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Iterator

import numpy as np

from ..trajectory import Trajectory, TrajectoryError
from .atomic import AtomicFiles

__all__ = ["TrajectoryReader", "TrajectoryWriter", "FormatError", "frame_times", "Float32Times", "float32_rounding"]


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


def float32_rounding(largest: float, unit_fs: float) -> float:
    """How far, in fs, a time of magnitude ``largest`` (in units of ``unit_fs`` fs) is rounded
    when stored as float32: its spacing there."""
    return float(np.spacing(np.float32(abs(largest)))) * unit_fs


class Float32Times:
    """Even frame times for a file that stores each time as a float32 number.

    XTC, single-precision TRR and AMBER NetCDF store a frame's time as float32 ps: at
    100 ps it is rounded to 0.0076 fs, at 1 ns to 0.061 fs, so frames 10 fs apart look
    uneven by far more than :func:`~mdsr_plugin.trajectory.check_uniform_times` allows,
    and a step taken from two neighbours is off by as much.  Where the first and last
    times are float32 values, frames lie on the line through them to within that
    rounding, and the rounding matters, the times are taken from that line; a file whose
    times stray further keeps them, and is refused as uneven downstream.

    Parameters
    ----------
    first, last : float
        The first and last frames' times as stored, in ``unit_fs`` (ps: 1000).
    n_frames : int
    unit_fs : float
        fs per unit of the stored times.
    """

    #: Rounding below this fraction of the step leaves the times as stored.
    NEGLIGIBLE = 1e-5

    def __init__(self, first: float, last: float, n_frames: int, unit_fs: float):
        self.grid = None
        stored_as_float32 = all(float(np.float32(t)) == t for t in (first, last))
        if n_frames < 2 or not stored_as_float32 or last <= first:
            return
        step = (last - first) / (n_frames - 1) * unit_fs
        self.n_frames = n_frames
        self.rounding = float32_rounding(max(abs(first), abs(last)), unit_fs)
        if self.rounding > self.NEGLIGIBLE * step:
            self.grid = (first * unit_fs, step)
            #: relative uncertainty of the step: two endpoints each rounded
            self.step_uncertainty = self.rounding / (step * (n_frames - 1))

    def __call__(self, times: np.ndarray, first_frame: int) -> np.ndarray:
        """``times`` (fs) of frames ``first_frame`` on, from the line where they lie on it.

        Raises
        ------
        TrajectoryError
            Times off the line by more than the rounding: a step that differs from the
            others (a frame missing, a restart) is named; frames even among themselves but
            off the line say the gap is elsewhere.  The check downstream would blame the
            rounding instead.
        """
        if self.grid is None:
            return times
        start, step = self.grid
        even = start + (first_frame + np.arange(len(times))) * step
        if np.all(np.abs(times - even) <= self.rounding + 1e-9):
            return even
        steps = np.diff(times)
        usual = float(np.median(steps)) if len(steps) else step
        uneven = np.abs(steps - usual) > 2 * self.rounding + 1e-4 * abs(usual)
        if uneven.any():
            i = int(np.argmax(uneven))
            raise TrajectoryError(
                f"frame {first_frame + i + 1}: non-uniform time step ({steps[i]:g} fs after {usual:g} fs; the "
                f"file's float32 times are rounded to {self.rounding:.2g} fs); upsampling needs evenly spaced frames")
        if abs(usual - step) > 0.5 * step / (self.n_frames - 1):
            # even here, but off the line through the file's ends by at least half of what one
            # missing frame makes: the gap is in another part of the file
            raise TrajectoryError(
                f"frames {first_frame}-{first_frame + len(times) - 1} are {usual:.7g} fs apart, but the file's first "
                f"and last frames are {step:.7g} fs apart on average: a frame is missing or the run restarts "
                "elsewhere in the file; upsampling needs evenly spaced frames (--dt replaces the times)")
        return times  # drifting by more than its rounding (times summed in float32): as stored

    def note(self, name: str) -> str | None:
        """What was done, for the summary of what was read; None where nothing was."""
        if self.grid is None:
            return None
        return (f"{name}: times stored as float32, rounded to {self.rounding:.2g} fs; taken evenly spaced "
                f"from the first and last frame (step {self.grid[1]:.6g} fs, known to {self.step_uncertainty:.1g} "
                "of itself; --dt gives it exactly)")


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
        self._said: set[str] = set()  # the notices already given for this file

    def say_once(self, key: str, message: str) -> None:
        """Warn ``message`` about this file, once per ``key`` (a later chunk repeats nothing)."""
        if key not in self._said:
            self._said.add(key)
            warnings.warn(f"{self.path.name}: {message}", stacklevel=3)

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
        try:
            if not self._opened:
                self._open(traj)
                self._opened = True
            self._write(traj)
        except RuntimeError as err:  # HDF5 or NetCDF failing to write (a full disk): say so in one line
            raise OSError(f"{self.path}: cannot be written ({' '.join(str(err).split())})") from err
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
        except Exception as err:
            self._files.abort()
            if exc_type is not None:  # closing a file that failed fails too: the first error is the one
                return False
            if isinstance(err, OSError):
                raise
            raise OSError(f"{self.path}: could not be finished ({' '.join(str(err).split())})") from err
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
