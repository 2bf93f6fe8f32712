"""``mdsr-eval``: how good is a reconstruction?  The paper's checks on the user's own data.

:func:`evaluate` takes a fine reference trajectory, keeps every ``factor``-th frame
as the coarse input, reconstructs it with each method, and compares; or compares an
existing upsampled file with the reference (``candidate``).  Both files are streamed
twice in chunks (first for the coarse frames, then in lockstep with the
reconstructions), so memory does not grow with their length.
:func:`mdsr_plugin.evaluation.report.write_report` turns the result into JSON,
plots and one HTML page.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..elements import symbols_of
from ..io import open_reader
from ..methods import MethodError, checked_settings
from ..resolve import resolve_method
from ..molecule import infer_bonds
from ..settings import UpsampleSettings
from ..trajectory import Trajectory, TrajectoryError, concatenate
from .coordinates import choose_coordinates, main_torsions
from .statistics import Binning, Errors, Observables, spectral_overlap_of

__all__ = ["evaluate", "Evaluation", "DEFAULT_METHODS"]

#: Compared by default; "ml" is the neural method (a checkpoint must fit the molecule).
DEFAULT_METHODS = ("ml", "hermite", "quintic", "spline", "linear")


@dataclass
class Evaluation:
    """What :func:`evaluate` measured.  Units: Å, fs, Å/fs, cm⁻¹, degrees."""

    reference: str
    factor: int
    dt: float  # fine (reference) step, fs
    n_atoms: int
    symbols: list
    n_frames: int  # reference frames compared
    binning: Binning
    reference_observables: Observables
    coarse_spectrum: tuple
    observables: dict = field(default_factory=dict)  # method -> Observables
    errors: dict = field(default_factory=dict)  # method -> Errors
    metrics: dict = field(default_factory=dict)  # method -> summary dict
    skipped: dict = field(default_factory=dict)  # method -> why it was not evaluated
    positions_only: bool = False

    def to_json(self) -> dict:
        return {
            "reference": self.reference, "factor": self.factor, "fine_dt_fs": self.dt,
            "coarse_dt_fs": self.dt * self.factor, "n_atoms": self.n_atoms, "atoms": self.symbols,
            "frames_compared": self.n_frames, "positions_only_input": self.positions_only,
            "units": {"position": "Å", "velocity": "Å/fs", "distance": "Å"},
            "coordinates": [{"label": c.label, "atoms": list(c.atoms)} for c in self.binning.coordinates],
            "torsions": [{"label": c.label, "atoms": list(c.atoms)} for c in self.binning.torsions],
            "methods": self.metrics, "skipped": self.skipped,
        }


def evaluate(
    reference,
    factor: int,
    methods=DEFAULT_METHODS,
    *,
    candidate=None,
    positions_only: bool = False,
    strict: bool = False,
    reader_options: dict | None = None,
    candidate_options: dict | None = None,
    chunk_size: int = 5000,
    device: str = "cpu",
    stride: int = 1,
    settings: UpsampleSettings | None = None,
) -> Evaluation:
    """Reconstruct the coarse version of ``reference`` with each method and compare.

    Parameters
    ----------
    reference : path-like
        A fine trajectory (any readable format); its every ``factor``-th frame is the
        coarse input.
    factor : int
        Fine frames per coarse step.
    methods : sequence of str
        Method names ("ml" is the neural method); ignored with ``candidate``.
    candidate : path-like, optional
        An existing upsampled trajectory to score instead: its frames must be the
        reference's compared frames, one for one (as many, at the same times, same
        atoms).  A candidate with fewer or more frames is refused, never scored on
        the frames it happens to share (its first frame is a coarse one, reproduced
        exactly: a one-frame candidate would score a perfect zero).
    positions_only : bool
        Drop velocities and forces from the coarse input (as from an XYZ archive).
    strict : bool
        A method the data cannot support is an error, not a skipped entry.
    reader_options : dict, optional
        ``dt``, ``topology``... for the reference reader; ``candidate_options`` likewise.
    stride : int
        Use every ``stride``-th reference frame as the fine reference: a 0.5 fs
        AIMD trajectory with ``stride=2`` evaluates models that output 1 fs frames.
    settings : UpsampleSettings, optional
        What every method is built with (its ``method`` is replaced by each of
        ``methods``); by default ``factor`` and ``device`` alone.

    Returns
    -------
    Evaluation

    Raises
    ------
    TrajectoryError
        Too few reference frames, or a candidate (or a method's output) whose frames
        are not the reference's compared frames one for one.
    """
    reader_options = reader_options or {}
    settings = checked_settings(settings or UpsampleSettings(factor=factor, device=device))
    coarse = _coarse_frames(reference, factor * stride, reader_options, chunk_size)
    if coarse.n_frames < 2:
        raise TrajectoryError(f"{Path(reference).name}: fewer than {factor + 1} frames; nothing to reconstruct")
    n_frames = (coarse.n_frames - 1) * factor + 1
    coarse_input = coarse.without("velocities", "forces") if positions_only else coarse

    with open_reader(reference, **reader_options) as reader:
        chunks = _strided(reader.chunks(chunk_size), stride)
        first = next(chunks)
        dt = first.dt if first.n_frames > 1 else coarse.dt / factor
        bonds = infer_bonds(first.numbers, first.positions[0])
        binning = Binning(first, choose_coordinates(first.numbers, first.positions[0], bonds),
                          main_torsions(first.numbers, bonds), segment=min(2048, n_frames))
        result = Evaluation(
            reference=str(reference), factor=factor, dt=dt, n_atoms=first.n_atoms,
            symbols=symbols_of(first.numbers), n_frames=n_frames, binning=binning,
            reference_observables=Observables(binning, dt), coarse_spectrum=_coarse_spectrum(coarse),
            positions_only=positions_only,
        )
        sources = _sources(result, coarse_input, factor, methods, candidate, candidate_options, strict, settings,
                           chunk_size)
        try:
            position = 0
            for chunk in _chain(first, chunks):
                chunk = chunk[: max(0, n_frames - position)]
                if chunk.n_frames == 0:
                    break
                result.reference_observables.add(chunk.positions, chunk.velocities)
                for name, source in sources.items():
                    fine = source.take(chunk.n_frames)
                    if fine is not None:
                        _check_times(fine, chunk, name)
                    if fine is None or fine.n_frames < chunk.n_frames:
                        had = position + (0 if fine is None else fine.n_frames)
                        raise TrajectoryError(_count_mismatch(name, str(had), n_frames, coarse.n_frames, factor))
                    if name == "candidate":
                        fine = _in_orientation_of(fine, chunk)
                        _check_coarse_frames(fine, chunk, position, factor)
                    result.errors[name].add(fine, chunk, position)
                    result.observables[name].add(fine.positions, fine.velocities)
                position += chunk.n_frames
            for name, source in sources.items():
                if source.take(1) is not None:
                    raise TrajectoryError(_count_mismatch(name, f"more than {n_frames}", n_frames, coarse.n_frames,
                                                         factor))
        finally:
            for source in sources.values():
                source.close()
    for name, errors in result.errors.items():
        summary = errors.summary(result.n_atoms)
        summary["spectral_overlap"] = spectral_overlap_of(result.observables[name], result.reference_observables)
        result.metrics[name] = summary
    return result


def _count_mismatch(name: str, has: str, n_frames: int, n_coarse: int, factor: int) -> str:
    """One line: ``name``'s frames are not the reference's compared frames, one for one."""
    return (f"{name} has {has} frame{'' if has == '1' else 's'}; the reference's {n_coarse} coarse frames "
            f"at factor {factor} make {n_frames}: refusing to score a part of it (was it upsampled from "
            "this reference, whole, with this --factor?)")


def _coarse_frames(path, factor, options, chunk_size) -> Trajectory:
    """Every ``factor``-th frame of ``path`` (first streaming pass)."""
    parts, start = [], 0
    with open_reader(path, **options) as reader:
        for chunk in reader.chunks(chunk_size):
            index = np.nonzero((start + np.arange(chunk.n_frames)) % factor == 0)[0]
            if len(index):
                parts.append(chunk[index])
            start += chunk.n_frames
    if not parts:
        raise TrajectoryError(f"{Path(path).name}: no frames")
    return concatenate(parts)


def _strided(chunks, stride):
    """Every ``stride``-th frame of a chunked trajectory, in chunks (empty ones skipped)."""
    start = 0
    for chunk in chunks:
        picked = chunk[(-start) % stride :: stride]
        start += chunk.n_frames
        if picked.n_frames:
            yield picked


def _coarse_spectrum(coarse: Trajectory):
    """The coarse data's own spectrum: its velocities, or finite differences without them."""
    from ..metrics import vdos

    velocities = coarse.velocities
    if velocities is None:
        velocities = np.gradient(coarse.positions, coarse.dt, axis=0)
    return vdos(velocities, coarse.dt, coarse.masses)


def _sources(result, coarse, factor, methods, candidate, candidate_options, strict, settings, chunk_size):
    """A frame source per method (or the candidate), with its accumulators registered."""
    from ..driver import stream_method

    sources = {}
    if candidate is not None:
        reader = open_reader(candidate, **(candidate_options or {}))
        sources["candidate"] = _FrameSource(reader.chunks(chunk_size), closing=reader)
    else:
        for name in methods:
            method = "neural" if name in ("ml", "neural") else name
            try:
                ready, _ = resolve_method(method, coarse, factor, settings.with_method(method))
            except MethodError as err:
                if strict:
                    raise
                result.skipped[name] = str(err)
                continue
            sources[name] = _FrameSource(stream_method([coarse], factor, ready))
    for name in sources:
        result.errors[name] = Errors(result.n_atoms, factor)
        result.observables[name] = Observables(result.binning, result.dt)
    return sources


class _FrameSource:
    """Fine frames from a chunk iterator, handed out in arbitrary-sized pieces."""

    def __init__(self, chunks, closing=None):
        self.chunks = iter(chunks)
        self.buffer: Trajectory | None = None
        self.closing = closing

    def _pull(self) -> bool:
        chunk = next(self.chunks, None)
        if chunk is None:
            self.close()
            return False
        self.buffer = chunk if self.buffer is None else concatenate([self.buffer, chunk])
        return True

    def close(self) -> None:
        if self.closing is not None:
            self.closing.close()
            self.closing = None

    def take(self, n: int) -> Trajectory | None:
        while self.buffer is None or self.buffer.n_frames < n:
            if not self._pull():
                break
        if self.buffer is None or self.buffer.n_frames == 0:
            return None
        piece, self.buffer = self.buffer[:n], self.buffer[n:]
        return piece


def _check_times(fine: Trajectory, reference: Trajectory, name: str) -> None:
    tolerance = 1e-3 * max(reference.dt if reference.n_frames > 1 else 1.0, 1e-9)
    off = ~np.isclose(fine.times, reference.times[: fine.n_frames], rtol=0, atol=tolerance)
    if off.any():
        k = int(np.argmax(off))  # the first frame off, not the chunk's first
        raise TrajectoryError(
            f"{name}: its frames are not at the reference's times (frame at {fine.times[k]:g} fs "
            f"vs {reference.times[k]:g} fs); was it upsampled from this reference with this --factor?"
        )
    if not np.array_equal(fine.numbers, reference.numbers):
        raise TrajectoryError(f"{name}: its atoms differ from the reference's")


def _in_orientation_of(fine: Trajectory, reference: Trajectory) -> Trajectory:
    """``fine`` with its vectors rotated back into ``reference``'s cell orientation.

    The TRR, XTC, NetCDF and DCD writers rotate a cell that is not in MDAnalysis'
    orientation (a along x, b in the xy plane), and every vector with it
    (:func:`~mdsr_plugin.io.mdanalysis.rotations_to_mda_frame`): the frames are the same,
    the coordinates are not.  The rotations come from the reference's cells, so a cell that
    changes (NPT, the candidate's filled frames interpolating it) is undone too; where
    ``fine``'s cells are not those rotations of the reference's, ``fine`` is left for the
    coarse-frame check to refuse.
    """
    from ..io.mdanalysis import in_mda_orientation, right_handed, rotations_to_mda_frame

    # a rotated file's cells are in MDAnalysis' orientation, and the reference's are not
    if fine.cell is None or reference.cell is None or not in_mda_orientation(fine.cell, tolerance=1e-6).all():
        return fine
    rotations = rotations_to_mda_frame(reference.cell[: fine.n_frames])
    if rotations is None:
        return fine

    def back(vectors):
        return None if vectors is None else np.einsum("fni,fji->fnj", vectors, rotations)

    cell = back(fine.cell)
    # the filled frames' cells are interpolated: equal to the reference's to well within 0.05 Å
    if not np.allclose(cell, right_handed(reference.cell[: fine.n_frames]), atol=5e-2):
        return fine
    return replace(fine, positions=back(fine.positions), velocities=back(fine.velocities),
                   forces=back(fine.forces), cell=cell)


#: Largest difference, Å, between a candidate's coarse frame and the reference's: what storage
#: rounds (XTC keeps 0.001 nm, so up to 0.005 Å), not what a method makes of a frame it fills.
COARSE_FRAME_TOLERANCE = 6e-3


def _check_coarse_frames(fine: Trajectory, reference: Trajectory, position: int, factor: int) -> None:
    """Refuse a candidate whose every ``factor``-th frame is not the reference's coarse frame:
    upsampled with another factor, its frame counts can still match (a factor-20 file of a
    reference's every 20th frame scored at ``--factor 10`` of every 10th), and its filled
    frames would be taken for coarse ones and left out of the errors."""
    index = np.flatnonzero((position + np.arange(reference.n_frames)) % factor == 0)
    if not len(index):
        return
    difference = fine.positions[index] - reference.positions[index]
    if reference.cell is not None:  # the same frame wrapped otherwise is still the same frame
        fractional = np.einsum("fnj,fjk->fnk", difference, np.linalg.inv(reference.cell[index]))
        fractional -= np.where(reference.pbc, np.round(fractional), 0.0)
        difference = np.einsum("fnk,fkj->fnj", fractional, reference.cell[index])
    largest = np.abs(difference).max(axis=(1, 2))
    if (largest > COARSE_FRAME_TOLERANCE).any():
        k = int(np.argmax(largest > COARSE_FRAME_TOLERANCE))
        raise TrajectoryError(
            f"candidate: frame {position + index[k]} is {largest[k]:.2g} Å off the reference's coarse frame "
            f"{(position + index[k]) // factor}, which an upsampled file keeps exactly: was it upsampled from "
            f"this reference with --factor {factor}?")


def _chain(first, rest):
    yield first
    yield from rest
