"""The upsampling driver: coarse chunks in, fine chunks out, in bounded memory.

:func:`upsample_stream` is the one implementation; :func:`upsample` (in memory)
and :func:`upsample_file` (file to file, used by the CLI and the batch runner)
call it.

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
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .methods import resolve_method
from .methods.base import Method, MethodError, Provenance
from .checks import BoxJumpCheck, check_step_against_velocities
from .periodic import Unwrapper, is_wrapped, wrap_positions
from .settings import SettingsError, UpsampleSettings
from .trajectory import Trajectory, TrajectoryError, check_uniform_times, concatenate

__all__ = ["upsample", "upsample_stream", "upsample_file", "stream_method", "settings_of", "block_bounds",
           "gaps_per_block", "prepare_coarse", "emit_block", "learn_from_input", "MAX_BLOCK_ATOM_FRAMES"]

log = logging.getLogger(__name__)


def settings_of(factor, method="auto", options=None) -> UpsampleSettings:
    """Checked settings from the Python API's arguments (``method`` may be a method object)."""
    name = method if isinstance(method, str) else "auto"
    return UpsampleSettings.from_options(factor, name, **(options or {})).checked()


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


def upsample_stream(chunks: Iterable[Trajectory], factor: int, method="auto", **options) -> Iterator[Trajectory]:
    """Upsample a trajectory given as consecutive chunks; yield the fine trajectory in chunks.

    Parameters
    ----------
    chunks : iterable of Trajectory
        Consecutive pieces of one coarse trajectory with a uniform time step.
    factor : int
        Fine frames per coarse step (≥ 2); the fine step is ``dt / factor``.
    method : str or Method
        A registered method name, ``"auto"``, ``"classical"``, or a method object.
    **options
        Fields of :class:`~mdsr_plugin.settings.UpsampleSettings` (``model``,
        ``device``, ``precision``...).

    Yields
    ------
    Trajectory
        Fine frames with positions (Å), velocities (Å/fs), times (fs) and cells;
        ``(n_coarse - 1) * factor + 1`` frames in all.
    """
    settings = settings_of(factor, method, options)
    if settings.adapt is not None:
        raise SettingsError("adapt learns from the whole input first: use upsample() or upsample_file(), "
                            "not upsample_stream()")
    chunks = iter(chunks)
    first = _first_frames(chunks)
    ready, _ = resolve_method(method if not isinstance(method, str) else settings.method, first, factor, settings)
    yield from stream_method(_chain(first, chunks), factor, ready)


def learn_from_input(source, coarse_dt: float, settings: UpsampleSettings, *, reader_options=None,
                     progress: bool = False) -> tuple[dict, Trajectory | None]:
    """Learn the ``adapted`` checkpoint from the coarse input itself (``settings.adapt``).

    Parameters
    ----------
    source : path-like or Trajectory
        The coarse input (read whole: learning needs every gap).
    coarse_dt : float
        Its coarse step, fs; the checkpoint's output step is ``coarse_dt / settings.factor``.
    settings : UpsampleSettings
        With ``adapt`` (the checkpoint stem) and ``adapt_minutes``.
    reader_options : dict, optional
        How to read ``source`` (format, dt, topology, velocities).

    Returns
    -------
    record : dict
        ``checkpoint`` (card path), ``minutes``, ``complete``, ``warm_start``,
        ``held_out_gap_position_mae`` (Å), ``held_out_frames``.
    sample : Trajectory or None
        The coarse frames no training loss saw, for ``auto`` to measure every candidate on.

    Raises
    ------
    MethodError
        The input cannot be learned from (no velocities, too few frames), with nothing written.
    """
    import json

    from .io import read_trajectory
    from .neural.adapt import HELD_OUT_FRAMES, AdaptError, AdaptSettings, adapt

    started = time.perf_counter()
    adapt_settings = AdaptSettings(fine_dt=coarse_dt / settings.factor, max_minutes=settings.adapt_minutes,
                                   device=settings.device, prior=settings.adapt_prior)
    try:
        card_path = adapt([source], settings.adapt, adapt_settings, progress=progress,
                          reader_options=reader_options, manifest=False)
    except AdaptError as err:
        raise MethodError(f"--adapt: {err}") from None
    card = json.loads(Path(card_path).read_text())
    training = card["training"]
    held = training.get(HELD_OUT_FRAMES)
    sample = None
    if held is not None:
        whole = source if isinstance(source, Trajectory) else read_trajectory(source, **(reader_options or {}))
        sample = whole[held["start"]:held["stop"]]
    record = {"checkpoint": str(card_path), "minutes": (time.perf_counter() - started) / 60,
              "complete": training["complete"], "warm_start": training["warm_start"],
              "held_out_gap_position_mae": card["validation"]["position_mae"], "held_out_frames": held}
    log.info("learned %s from the input in %.1f min (held-out gap error %.2e Å)", Path(card_path).stem,
             record["minutes"], record["held_out_gap_position_mae"])
    return record, sample


def _first_frames(chunks) -> Trajectory:
    for chunk in chunks:
        if not isinstance(chunk, Trajectory):
            raise TypeError(f"upsample_stream() takes Trajectory chunks, not {type(chunk).__name__}")
        if chunk.n_frames:
            return chunk
    raise TrajectoryError("the input has no frames")


def stream_method(chunks: Iterable[Trajectory], factor: int, method: Method) -> Iterator[Trajectory]:
    """Upsample ``chunks`` with a method already resolved for them (:func:`~mdsr_plugin.methods.resolve_method`).

    The one streaming loop: every entry point ends here.
    """
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
    from .checks import check_fine_envelope  # no atom far outside its gap's coarse positions (unwrapped)

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


def upsample(coarse: Trajectory, factor: int, method="auto", **options) -> Trajectory:
    """Upsample a trajectory held in memory (the same computation as the streaming path).

    Parameters
    ----------
    coarse : Trajectory
        At least two frames with a uniform time step.
    factor : int
        Fine frames per coarse step.
    method : str or Method
        ``"auto"``, ``"classical"``, ``"linear"``, ``"spline"``, ``"hermite"``, ``"quintic"``,
        ``"neural"`` or another registered name.
    **options
        Fields of :class:`~mdsr_plugin.settings.UpsampleSettings` (``model``, ``device``...).

    Returns
    -------
    Trajectory
        ``(coarse.n_frames - 1) * factor + 1`` frames.
    """
    if not isinstance(coarse, Trajectory):
        raise TypeError(f"upsample() takes a Trajectory (see mdsr_plugin.read_trajectory), not "
                        f"{type(coarse).__name__}; for files use upsample_file()")
    settings = settings_of(factor, method, options)
    if settings.adapt is None:
        return concatenate(list(upsample_stream([coarse], factor, method, **options)))
    _, sample = learn_from_input(coarse, coarse.dt, settings)
    ready, _ = resolve_method(method if not isinstance(method, str) else settings.method, coarse, factor,
                              settings, sample=sample)
    return concatenate(list(stream_method([coarse], factor, ready)))


def upsample_file(
    input_path,
    output_path,
    factor: int | None = None,
    *,
    settings: UpsampleSettings | None = None,
    method: str = "auto",
    topology=None,
    velocities=None,
    forces=None,
    cell=None,
    progress: bool = False,
    **options,
) -> dict:
    """Upsample one trajectory file into another, streaming, and publish it atomically.

    This is the one per-file function that the command line and batch processing call.

    Parameters
    ----------
    input_path, output_path : path-like
        Formats follow the extensions unless the settings name them.
    factor : int, optional
        With ``method`` and ``**options``, the settings; or give ``settings``.
    settings : UpsampleSettings, optional
    topology : path-like, optional
        Topology file (elements and masses for DCD, TRR, NetCDF...).
    velocities, forces, cell : path-like, optional
        Files holding those quantities for the input's frames (CP2K ``-vel-1.xyz``,
        ``-frc-1.xyz``, ``-1.cell``; i-PI ``.vel_0.xyz``, ``.for_0.xyz``; a NAMD velocity
        DCD).  CP2K's and i-PI's are found beside the positions without being named.
    progress : bool
        Show a progress bar over coarse frames (stderr).
    **options
        Fields of :class:`~mdsr_plugin.settings.UpsampleSettings`: ``dt`` (coarse step,
        fs), ``model``, ``device``, ``precision``, ``input_format``, ``output_format``,
        ``chunk_size``...

    Returns
    -------
    dict
        ``frames_in``, ``frames_out``, the provenance (``method``, ``model`` and
        ``model_sha256`` — the checkpoint's id and weights hash, or None —,
        ``velocities_fitted``: True when a learned method fitted the coarse velocities
        of positions-only input), ``disagreement`` (mean and max in Å, or None),
        ``adapted`` (with ``settings.adapt``: what :func:`learn_from_input` learned, else None),
        ``outputs`` (list of paths), ``seconds``, ``read`` (what was read from which file,
        in which units: one phrase each).
    """
    from .io import open_reader, open_writer

    started = time.perf_counter()
    if settings is None:
        settings = settings_of(factor, method, options)
    elif factor is not None or options or method != "auto":
        raise TypeError("give either settings or factor/method/options, not both")
    else:
        settings = settings.checked()
    files = {"topology": topology, "velocities": velocities, "forces": forces, "cell": cell}
    reader_options = {**{k: v for k, v in files.items() if v is not None}, **settings.reader_options()}
    reader_options.pop("dt", None)  # given to the main reader only: the dt check re-reads without it
    with open_reader(input_path, dt=settings.dt, **reader_options) as reader:
        chunks = reader.chunks(settings.chunk_size)
        counted = {"n": 0}
        disagreement = _DisagreementSummary()
        first = next(chunks, None)
        if first is None:
            raise TrajectoryError(f"{Path(input_path).name}: no frames")
        if settings.dt is not None:
            _check_dt_override(input_path, settings, first, reader_options)
        read = _what_was_read(reader, first, input_path, settings)
        log.info("read: %s", "; ".join(read))
        adapted, sample = None, None
        if settings.adapt is not None:
            options = {**reader_options, **({"dt": settings.dt} if settings.dt is not None else {})}
            adapted, sample = learn_from_input(input_path, first.dt, settings, progress=progress,
                                               reader_options=options)
        method, provenance = resolve_method(settings.method, first, settings.factor, settings, sample=sample)
        stream = _chain(first, chunks)
        if progress:
            stream = _progress(stream, reader.n_frames, Path(input_path).name)
        parameters = {**provenance_parameters(provenance, settings.factor, input_path), "read": read}
        writer_options = {"parameters": parameters} if _keeps_provenance(output_path, settings.output_format) else {}
        with open_writer(output_path, format=settings.output_format, **writer_options) as writer:
            for fine in stream_method(_count_into(stream, counted), settings.factor, method):
                disagreement.add(fine)
                writer.write(fine)
                del fine  # else the written block stays alive while the next one is computed
    return {
        **provenance.as_dict(),
        "disagreement": disagreement.summary(),
        "adapted": adapted,
        "frames_in": counted["n"],
        "frames_out": writer.frames_written,
        "outputs": [str(p) for p in writer.paths],
        "seconds": time.perf_counter() - started,
        "read": read,
    }


def _what_was_read(reader, first: Trajectory, input_path, settings: UpsampleSettings) -> list[str]:
    """One phrase per thing read: which file gave positions, velocities, forces, cell, and the step."""
    notes = list(getattr(reader, "notes", []))
    if not notes:
        stored = [q for q in ("velocities", "forces", "cell") if getattr(first, q) is not None]
        notes = [f"positions{''.join(', ' + q for q in stored)} from {Path(input_path).name}"]
    if first.n_frames > 1:
        origin = "--dt" if settings.dt is not None else "the file's times"
        notes.append(f"coarse step {first.dt:g} fs from {origin}")
    return notes


def _check_dt_override(input_path, settings: UpsampleSettings, first: Trajectory, reader_options: dict) -> None:
    """``--dt`` against the step the file itself records (its first frames, read again without
    the override): refused when the stored velocities bear out the file's step and not the
    user's; otherwise the user's step wins, with a warning when it differs."""
    from .checks import RATIO_TOO_LARGE, RATIO_TOO_SMALL, step_velocity_ratio
    from .io import FormatError, open_reader

    try:
        with open_reader(input_path, **reader_options) as own:
            head = next(own.chunks(16), None)
    except FormatError:  # the file records no time: --dt is the only step there is
        return
    if head is None or head.n_frames < 2:
        return
    file_dt = head.dt
    if abs(file_dt - settings.dt) <= 1e-3 * file_dt:
        return
    ratio = step_velocity_ratio(first[:16])
    file_ratio = step_velocity_ratio(head)
    plausible = (lambda r: r is not None and RATIO_TOO_SMALL <= r <= RATIO_TOO_LARGE)
    if not plausible(ratio) and plausible(file_ratio):
        raise SettingsError(f"--dt {settings.dt:g} fs contradicts the file's own step of {file_dt:g} fs, which its "
                            "stored velocities bear out; leave --dt out")
    log.warning("--dt %g fs overrides the file's own step of %g fs", settings.dt, file_dt)


def provenance_parameters(provenance: Provenance, factor: int, source) -> dict:
    """The provenance record an output keeps (H5MD ``parameters/``, extended XYZ's first
    comment line): factor, source and every provenance field that has a value."""
    recorded = {k: v for k, v in provenance.as_dict().items() if v is not None and v is not False}
    return {"factor": int(factor), "source": str(source), **recorded}


class _DisagreementSummary:
    """Running mean and maximum of the neural forward/backward disagreement (Å)."""

    def __init__(self):
        self.total, self.count, self.maximum = 0.0, 0, 0.0

    def add(self, fine):
        values = fine.frame_data.get("disagreement")
        if values is not None and len(values):
            self.total += float(np.sum(values))
            self.count += len(values)
            self.maximum = max(self.maximum, float(np.max(values)))

    def summary(self):
        if not self.count:
            return None
        return {"mean": self.total / self.count, "max": self.maximum}


def _keeps_provenance(path, fmt) -> bool:
    from .io import get_format

    return get_format(path, fmt).keeps_provenance


def _chain(first, rest):
    yield first
    yield from rest


def _count_into(stream, counter):
    for chunk in stream:
        counter["n"] += chunk.n_frames
        yield chunk


def _progress(stream, total, label):
    from tqdm.auto import tqdm

    with tqdm(total=total, unit="frame", desc=label, disable=None, leave=False) as bar:
        for chunk in stream:
            yield chunk
            bar.update(chunk.n_frames)
