"""The streaming driver: coarse chunks in, fine chunks out, in bounded memory.

:func:`stream_method` is the one streaming loop (every entry point ends there, with
a method already resolved: :mod:`mdsr_plugin.resolve`); :func:`prepare_coarse` and
:func:`emit_block` give the same blocks by random access (the lazy MDAnalysis reader).

How a stream is cut
-------------------
Gaps (coarse frame g to g + 1) are processed in blocks of :func:`gaps_per_block`
gaps (``method.block_gaps``, fewer when that many gaps of this many atoms would
hold more than ``MAX_BLOCK_ATOM_FRAMES`` fine atom-frames), whose boundaries depend
only on the global gap index.  A block is handed
to the method together with ``method.context`` coarse frames on each side, so
the numbers computed for a gap are the same whatever size the input chunks
have: the chunked path equals the in-memory path bit for bit.  Memory holds one
input chunk plus one block and its context.

Every fine frame at a coarse time is the coarse frame itself (positions, and
velocities when the input has them).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Iterable, Iterator

import numpy as np

from .checks import BoxJumpCheck, check_fine_envelope, check_step_against_velocities
from .methods.base import Method
from .periodic import Unwrapper, is_wrapped, wrap_positions
from .trajectory import Trajectory, TrajectoryError, check_uniform_times, concatenate

__all__ = ["stream_method", "block_bounds", "gaps_per_block", "prepare_coarse", "emit_block",
           "MAX_BLOCK_ATOM_FRAMES"]

log = logging.getLogger(__name__)


#: Fine frames × atoms one block holds at most: 2**20 makes a (frames, atoms, 3) float64
#: array 24 MB.  A method's ``block_gaps`` is sized for a molecule; 4096 gaps of a
#: 96-atom box at factor 10 peaked at ~1.1 GB (cubic Hermite), of a 1000-atom box at
#: factor 20 would need ~10 GB.
MAX_BLOCK_ATOM_FRAMES = 2**20


def gaps_per_block(method, n_atoms: int, factor: int) -> int:
    """Gaps per block for ``method`` on ``n_atoms`` atoms at ``factor``: its ``block_gaps``,
    fewer when those would hold more than ``MAX_BLOCK_ATOM_FRAMES`` fine atom-frames (at least 1)."""
    return max(1, min(int(method.block_gaps), MAX_BLOCK_ATOM_FRAMES // (int(factor) * max(int(n_atoms), 1))))


def block_bounds(gap: int, block_gaps: int, n_coarse: int | None = None) -> tuple[int, int]:
    """The block of gaps holding ``gap``: ``(first gap, one past the last)``.

    Block boundaries depend only on the global gap index, so a gap's numbers are
    the same however the input is chunked or visited (the streaming driver and the
    lazy MDAnalysis reader both cut by this).  ``n_coarse`` clips the last block.
    """
    start = gap // block_gaps * block_gaps
    end = start + block_gaps
    if n_coarse is not None:
        end = min(end, n_coarse - 1)
    return start, end


class _CoarseBuffer:
    """The coarse frames not yet consumed, with their global index and periodic bookkeeping."""

    def __init__(self):
        self.frames: Trajectory | None = None  # unwrapped positions
        self.original: np.ndarray | None = None  # (F, N, 3) positions as read
        self.wrapped: np.ndarray | None = None  # (F,) bool
        self.start = 0  # global index of frames[0]

    @property
    def end(self) -> int:
        return self.start + (0 if self.frames is None else self.frames.n_frames)

    def append(self, frames, original, wrapped):
        if self.frames is None:
            self.frames, self.original, self.wrapped = frames, original, wrapped
        else:
            self.frames = concatenate([self.frames, frames])
            self.original = np.concatenate([self.original, original])
            self.wrapped = np.concatenate([self.wrapped, wrapped])

    def drop_before(self, index):
        k = index - self.start
        if k > 0:
            self.frames = self.frames[k:]
            self.original, self.wrapped = self.original[k:], self.wrapped[k:]
            self.start = index


def stream_method(chunks: Iterable[Trajectory], factor: int, method: Method) -> Iterator[Trajectory]:
    """Upsample ``chunks`` with a method already resolved for them (:func:`~mdsr_plugin.resolve.resolve_method`).

    The one streaming loop: every entry point ends here.
    """
    if not isinstance(method, Method):
        raise TypeError(f"a method is a subclass of mdsr_plugin.methods.Method, not {type(method).__name__}")
    buffer = _CoarseBuffer()
    next_gap = 0
    block_gaps = None
    dt = None
    last_time = None
    unwrap = None
    first = None
    jumps = BoxJumpCheck()
    for chunk in chunks:
        if chunk.n_frames == 0:
            continue
        chunk.validate(first_frame=buffer.end)  # readers did; arrays handed in from Python not
        if first is None:
            first = chunk
            if chunk.n_frames > 1:
                check_step_against_velocities(chunk[: min(chunk.n_frames, 64)])
            unwrap = Unwrapper(first.pbc) if first.is_periodic else None
            block_gaps = gaps_per_block(method, first.n_atoms, factor)
            log.info("upsampling with method %r, factor %d", method.name, factor)
        elif not first.same_system(chunk):
            raise TrajectoryError(f"frame {buffer.end}: the atoms differ from frame 0")
        else:
            for q in ("velocities", "forces", "cell"):
                if (getattr(first, q) is None) != (getattr(chunk, q) is None):
                    raise TrajectoryError(f"frame {buffer.end}: {q} appear or disappear mid-trajectory")
        times = chunk.times if last_time is None else np.concatenate([[last_time], chunk.times])
        if dt is None and len(times) > 1:
            dt = float(times[1] - times[0])
        check_uniform_times(times, first_frame=max(buffer.end - (last_time is not None), 0), reference=dt)
        last_time = chunk.times[-1]
        jumps(chunk)

        buffer.append(*_unwrapped(chunk, unwrap))

        while True:
            _, block_end = block_bounds(next_gap, block_gaps)
            # Emit a block only once a frame beyond its window has arrived: until then it
            # may be the trajectory's last block, which must also carry the final frame
            # (emit_block knows that only with n_total, after the input has ended).
            if buffer.end <= block_end + 1 + method.context:
                break
            yield emit_block(buffer, method, factor, next_gap, block_end, n_total=None)
            next_gap = block_end
            buffer.drop_before(max(0, next_gap - method.context))

    if first is None:
        raise TrajectoryError("the input has no frames")
    n_total = buffer.end
    if n_total < 2:
        raise TrajectoryError("upsampling needs at least two frames")
    while next_gap < n_total - 1:
        _, block_end = block_bounds(next_gap, block_gaps, n_total)
        yield emit_block(buffer, method, factor, next_gap, block_end, n_total=n_total)
        next_gap = block_end
        buffer.drop_before(max(0, next_gap - method.context))


def _unwrapped(chunk: Trajectory, unwrap: Unwrapper | None):
    """``chunk`` with continuous positions, its positions as read, and which frames were wrapped."""
    original = chunk.positions
    if unwrap is None:
        return chunk, original, np.zeros(chunk.n_frames, dtype=bool)
    wrapped = is_wrapped(original, chunk.cell, chunk.pbc)
    return replace(chunk, positions=unwrap(original, chunk.cell)), original, wrapped


def prepare_coarse(coarse: Trajectory) -> _CoarseBuffer:
    """A whole coarse trajectory, unwrapped, ready for :func:`emit_block` (random access to
    blocks, as the lazy MDAnalysis reader needs; the results equal the streaming path's)."""
    buffer = _CoarseBuffer()
    buffer.append(*_unwrapped(coarse, Unwrapper(coarse.pbc) if coarse.is_periodic else None))
    return buffer


def emit_block(buffer: _CoarseBuffer, method, factor, gap_start, gap_end, n_total) -> Trajectory:
    """Fine frames of gaps ``gap_start`` .. ``gap_end - 1``, plus the final frame if the
    block ends the trajectory (``gap_end == n_total - 1``).

    ``buffer`` must hold the coarse frames from ``gap_start - method.context`` to
    ``gap_end + method.context`` (fewer at the trajectory's ends); ``n_total`` is the
    number of coarse frames when known (None while streaming, before the end).
    """
    window_start = max(0, gap_start - method.context)
    window_stop = gap_end + 1 + method.context
    if n_total is not None:
        window_stop = min(window_stop, n_total)
    lo, hi = window_start - buffer.start, window_stop - buffer.start
    window = buffer.frames[lo:hi]
    fine = method.interpolate(window, factor)

    is_last = n_total is not None and gap_end == n_total - 1
    n_gaps = gap_end - gap_start
    first_fine = (gap_start - window_start) * factor
    n_fine = n_gaps * factor + int(is_last)
    take = slice(first_fine, first_fine + n_fine)
    positions = np.array(fine.positions[take])
    velocities = np.array(fine.velocities[take])

    # Local coarse frames of this block: gap_start .. gap_end (inclusive).
    k0 = gap_start - window_start
    coarse = window[k0 : k0 + n_gaps + 1]
    # no atom far outside its gap's coarse positions (unwrapped)
    check_fine_envelope(positions, coarse.positions, factor, method=method, first_gap=gap_start)
    s = np.arange(factor) / factor
    s_all = np.concatenate([np.tile(s, n_gaps), [1.0] if is_last else []])
    gap_of_frame = np.concatenate([np.repeat(np.arange(n_gaps), factor), [n_gaps - 1] if is_last else []])
    gap_of_frame = gap_of_frame.astype(np.int64)
    times = coarse.times[gap_of_frame] + s_all * (coarse.times[1] - coarse.times[0] if n_gaps else 0)

    cell = None
    if coarse.cell is not None:
        c0, c1 = coarse.cell[gap_of_frame], coarse.cell[gap_of_frame + 1]
        cell = c0 + s_all[:, None, None] * (c1 - c0)

    original = buffer.original[gap_start - buffer.start : gap_end + 1 - buffer.start]
    if coarse.is_periodic:
        wrapped = buffer.wrapped[gap_start - buffer.start : gap_end + 1 - buffer.start]
        both = (wrapped[:-1] & wrapped[1:])[gap_of_frame]
        if both.any():
            positions[both] = wrap_positions(positions[both], cell[both], coarse.pbc)

    # The coarse frames themselves are reproduced exactly.
    at_coarse = np.arange(n_gaps + int(is_last)) * factor
    positions[at_coarse] = original[: len(at_coarse)]
    if coarse.velocities is not None:
        velocities[at_coarse] = coarse.velocities[: len(at_coarse)]

    steps = None
    if coarse.steps is not None and n_gaps:
        stride = coarse.steps[1] - coarse.steps[0]
        if stride % factor == 0:
            steps = coarse.steps[gap_of_frame] + np.rint(s_all * stride).astype(np.int64)

    frame_data = {k: np.asarray(v)[take] for k, v in fine.frame_data.items()}
    block = Trajectory(
        numbers=coarse.numbers,
        masses=coarse.masses,
        names=coarse.names,
        positions=positions,
        velocities=velocities,
        times=times,
        cell=cell,
        pbc=coarse.pbc,
        steps=steps,
        frame_data=frame_data,
    )
    try:
        block.validate(first_frame=gap_start * factor)
    except TrajectoryError as err:  # overflow or a diverging model: never hand it to a writer
        raise TrajectoryError(f"method {method.name!r} produced no usable output: fine {err}") from None
    return block
