"""The public upsampling API: in memory, streamed, file to file, and learning from the input.

:func:`upsample` (in memory), :func:`upsample_stream` (chunks) and
:func:`upsample_file` (file to file, used by the CLI and the batch runner) check
their settings, resolve the method (:mod:`mdsr_plugin.resolve`) and hand the
frames to the one streaming loop (:func:`mdsr_plugin.driver.stream_method`).
:func:`learn_from_input` is ``--adapt``: it learns the ``adapted`` checkpoint
from the input first.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .driver import (  # noqa: F401  (re-exported: the driver's names were this module's)
    MAX_BLOCK_ATOM_FRAMES, block_bounds, emit_block, gaps_per_block, prepare_coarse, stream_method,
)
from .methods import checked_settings
from .methods.base import MethodError, Provenance
from .resolve import resolve_method
from .settings import SettingsError, UpsampleSettings
from .trajectory import Trajectory, TrajectoryError, concatenate

__all__ = ["upsample", "upsample_stream", "upsample_file", "stream_method", "settings_of", "block_bounds",
           "gaps_per_block", "prepare_coarse", "emit_block", "learn_from_input", "MAX_BLOCK_ATOM_FRAMES"]

log = logging.getLogger(__name__)


def settings_of(factor, method="auto", options=None) -> UpsampleSettings:
    """Checked settings from the Python API's arguments (``method`` may be a method object)."""
    name = method if isinstance(method, str) else "auto"
    return checked_settings(UpsampleSettings.from_options(factor, name, **(options or {})))


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
    chunks = iter(chunks) if settings.dt is None else _at_step(chunks, settings.dt)
    first = _first_frames(chunks)
    ready, _ = resolve_method(method if not isinstance(method, str) else settings.method, first, factor, settings)
    yield from stream_method(_chain(first, chunks), factor, ready)


def route_given_step(dt: float | None, recorded: bool, options: dict) -> tuple[float | None, dict]:
    """Where a given coarse step ``dt`` (fs) goes: to the reader where the frames record no
    time (it is their only step), else into the upsampling ``options``, which replace the
    recorded times with it after the check ``--dt`` gets (:func:`_at_step`).

    Returns
    -------
    reader_dt : float or None
    options : dict
    """
    if dt is None or not recorded:
        return dt, options
    return None, {**options, "dt": dt}


def _at_step(chunks: Iterable[Trajectory], dt: float) -> Iterator[Trajectory]:
    """``chunks`` with their frames' times replaced by ``dt`` (fs) from the first frame's time
    on, as ``--dt`` replaces a file's; the trajectory's own step is checked against it first
    (:func:`_check_given_step`)."""
    start, done = None, 0
    for chunk in chunks:
        if start is None:
            start = float(chunk.times[0])
            given = replace(chunk, times=start + np.arange(chunk.n_frames) * dt)
            _check_given_step(dt, chunk[:16], given[:16], "dt=", "the trajectory's own step")
        else:
            given = replace(chunk, times=start + (done + np.arange(chunk.n_frames)) * dt)
        done += chunk.n_frames
        yield given


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
        ``checkpoint`` (card path), ``minutes``, ``complete``, ``warm_start``, ``prior``
        (the cheap Hamiltonian of the starting model's run, or None),
        ``held_out_gap_position_mae`` (Å), ``held_out_frames``.
    sample : Trajectory or None
        The coarse frames no training loss saw, for ``auto`` to measure every candidate on.

    Raises
    ------
    MethodError
        The input cannot be learned from (no velocities, too few frames), with nothing written.
    """
    from .neural import card as schema
    from .neural.adapt import AUTO_PRIOR, HELD_OUT_FRAMES, AdaptError, AdaptSettings, adapt
    from .neural.checkpoint import read_card

    started = time.perf_counter()
    adapt_settings = AdaptSettings(fine_dt=coarse_dt / settings.factor, max_minutes=settings.adapt_minutes,
                                   device=settings.device, prior=settings.adapt_prior or AUTO_PRIOR)
    try:
        card_path = adapt([source], settings.adapt, adapt_settings, progress=progress,
                          reader_options=reader_options, manifest=False)
    except AdaptError as err:
        raise MethodError(f"--adapt: {err}") from None
    card = read_card(card_path)
    training = card[schema.TRAINING]
    held = training.get(HELD_OUT_FRAMES)
    sample = None if held is None else _frames(source, held["start"], held["stop"], reader_options)
    record = {"checkpoint": str(card_path), "minutes": (time.perf_counter() - started) / 60,
              "complete": training[schema.COMPLETE], "warm_start": training["warm_start"],
              "prior": training.get(schema.SETTINGS, {}).get("prior"),
              "prior_forces": bool(training.get("forces_from_prior")),
              "velocities_fitted": bool(training.get("velocities_fitted", False)),
              "held_out_gap_position_mae": card[schema.VALIDATION][schema.POSITION_MAE], "held_out_frames": held}
    log.info("learned %s from the input in %.1f min (held-out gap error %.2e Å)", Path(card_path).stem,
             record["minutes"], record["held_out_gap_position_mae"])
    return record, sample


def _frames(source, start: int, stop: int, reader_options) -> Trajectory:
    """Coarse frames ``start`` to ``stop`` of ``source`` (a Trajectory, or a file streamed in
    chunks, so that only those frames are held in memory)."""
    if isinstance(source, Trajectory):
        return source[start:stop]
    from .io import open_reader

    kept, first = [], 0
    with open_reader(source, **(reader_options or {})) as reader:
        for chunk in reader.chunks():
            lo, hi = max(start - first, 0), min(stop - first, chunk.n_frames)
            if lo < hi:
                kept.append(chunk[lo:hi])
            first += chunk.n_frames
            if first >= stop:
                break
    return concatenate(kept)


def _first_frames(chunks) -> Trajectory:
    for chunk in chunks:
        if not isinstance(chunk, Trajectory):
            raise TypeError(f"upsample_stream() takes Trajectory chunks, not {type(chunk).__name__}")
        if chunk.n_frames:
            return chunk
    raise TrajectoryError("the input has no frames")


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
    if settings.dt is not None:
        coarse = next(_at_step([coarse], settings.dt))
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
    from .io import input_paths, open_reader, open_writer, output_paths, refuse_overwrite

    started = time.perf_counter()
    if settings is None:
        settings = settings_of(factor, method, options)
    elif factor is not None or options or method != "auto":
        raise TypeError("give either settings or factor/method/options, not both")
    else:
        settings = checked_settings(settings)
    # never replace a file the run reads, also one its reader finds beside the input
    refuse_overwrite(input_paths(input_path, settings.input_format, topology, velocities, forces, cell),
                     output_paths(output_path, settings.output_format))
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
    the override): see :func:`_check_given_step`."""
    from .io import FormatError, open_reader

    try:
        with open_reader(input_path, **reader_options) as own:
            head = next(own.chunks(16), None)
    except FormatError:  # the file records no time: --dt is the only step there is
        return
    _check_given_step(settings.dt, head, first[:16], "--dt", "the file's own step")


def _check_given_step(dt: float, own: Trajectory | None, given: Trajectory, name: str, whose: str) -> None:
    """The step ``dt`` (fs) given as ``name`` against the one the data record (``own``, their
    first frames; ``given``, the same frames at ``dt``): refused when the stored velocities
    bear out their own step and not the given one; otherwise the given step wins, with a
    warning when it differs."""
    from .checks import RATIO_TOO_LARGE, RATIO_TOO_SMALL, step_velocity_ratio

    if own is None or own.n_frames < 2:
        return
    try:
        own_dt = own.dt
    except TrajectoryError:  # uneven times of their own: the given step is the only one there is
        return
    if abs(own_dt - dt) <= 1e-3 * own_dt:
        return
    ratio = step_velocity_ratio(given)
    own_ratio = step_velocity_ratio(own)
    plausible = (lambda r: r is not None and RATIO_TOO_SMALL <= r <= RATIO_TOO_LARGE)
    if not plausible(ratio) and plausible(own_ratio):
        raise SettingsError(f"{name} {dt:g} fs contradicts {whose} of {own_dt:g} fs, which its "
                            f"stored velocities bear out; leave {name} out")
    log.warning("%s %g fs overrides %s of %g fs", name, dt, whose, own_dt)


def provenance_parameters(provenance: Provenance, factor: int, source) -> dict:
    """The provenance record an output keeps (H5MD ``parameters/``, extended XYZ's first
    comment line): factor, source and every provenance field that has a value."""
    recorded = {k: v for k, v in provenance.as_dict().items() if v is not None and v is not False}
    if "self_validation" in recorded:  # what each candidate cost is the run's, not the file's: the same
        validation = recorded["self_validation"]  # input and options give the same bytes
        recorded["self_validation"] = {**validation, "scores": [{k: v for k, v in score.items() if k != "seconds"}
                                                                for score in validation["scores"]]}
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

    return get_format(path, fmt, writing=True).keeps_provenance  # by name: an old output's content is no guide


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
