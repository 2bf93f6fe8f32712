"""Upsampling inside MDAnalysis: a fine ``Universe`` in memory, or a lazy reader format.

Two ways, both on the same pipeline as the command line:

``upsample_universe(universe, factor)``
    Returns a new Universe with the same topology whose trajectory is the fine one,
    held in a ``MemoryReader``: positions (Å), velocities (Å/ps, MDAnalysis' unit),
    the box of every frame, ``dt`` = coarse dt / factor, and the coarse start time
    kept (``transfer_to_memory`` would drop it).  The input Universe is not changed.

``mda.Universe(topology, coarse_file, format="MDSR", factor=20)``
    The reader :class:`MDSRReader` presents the fine trajectory of a coarse file
    and computes only the blocks of gaps that are visited (random access is
    supported); ``u.transfer_to_memory()`` materialises all of it.  The format name
    is ``MDSR`` — never a core name, which would silently replace a built-in reader.
    **``import mdsr_plugin`` is what registers it** (MDAnalysis has no plugin
    discovery; a reader exists once its class is defined).
"""

from __future__ import annotations

import warnings

import numpy as np
from MDAnalysis.coordinates.base import ReaderBase

from .. import units as internal_units
from ..trajectory import TrajectoryError
from ..io.mdanalysis import cell_to_dimensions

__all__ = ["upsample_universe", "universe_chunks", "MDSRReader"]


def records_time(trajectory) -> bool:
    """Whether an MDAnalysis trajectory records its time step: MDAnalysis says 1 ps for one
    that does not (XYZ, PDB...), with a warning; that step would be taken for a real one."""
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        trajectory.dt
    return not any("no dt information" in str(w.message) for w in said)


def universe_chunks(universe, *, dt: float | None = None, chunk_size: int = 2000,
                    lammps_units: str | None = None, type_map=None):
    """The trajectory of ``universe`` as a stream of :class:`~mdsr_plugin.Trajectory` chunks.

    Parameters
    ----------
    dt : float, optional
        Coarse time step in fs, overriding the trajectory's.
    chunk_size : int
        Frames per chunk.
    lammps_units : str, optional
        The units style (``"real"``, ``"metal"``, ``"si"``, ``"cgs"``) of a Universe on a
        LAMMPS dump or DCD (``--lammps-units``); refused for files LAMMPS did not write.
    type_map : dict or str, optional
        Element of each atom type (``"1:O,2:H"``, ``--type-map``), for numeric LAMMPS types.
    """
    from ..io.mdanalysis import MDAnalysisReader

    reader = MDAnalysisReader.from_universe(universe, dt=dt, has_time=records_time(universe.trajectory),
                                            lammps_units=lammps_units, type_map=type_map)
    return reader.chunks(chunk_size)


def upsample_universe(universe, factor: int, method: str = "auto", *, dt: float | None = None,
                      lammps_units: str | None = None, type_map=None, **options):
    """A new Universe holding the upsampled trajectory of ``universe`` in memory.

    Parameters
    ----------
    universe : MDAnalysis.Universe
        Any trajectory MDAnalysis reads; left as it was (its current frame too).
    factor : int
        Fine frames per coarse step.
    method : str
        ``"auto"``, ``"neural"``, ``"hermite"``, ``"quintic"``, ``"spline"``, ``"linear"``.
    dt : float, optional
        Coarse time step in **fs**: needed when the trajectory records none (an XYZ, for which
        MDAnalysis says 1 ps); where it records one, ``dt`` replaces it as ``--dt`` replaces a
        file's (refused where the stored velocities bear out the trajectory's own step).
    lammps_units : str, optional
        Units style of a Universe on a LAMMPS dump or DCD (``"real"``, ``"metal"``...), as
        ``--lammps-units``: its velocities and forces are converted from it.  Without it,
        the ``units`` in a log.lammps beside the file is used, or velocities are refused.
    type_map : dict or str, optional
        Element of each LAMMPS atom type (``"1:O,2:H"``), as ``--type-map``.
    **options
        Method options (``model=``, ``device=``).

    Returns
    -------
    MDAnalysis.Universe
        Same topology; ``(n_frames - 1) * factor + 1`` frames; velocities in Å/ps;
        ``trajectory.dt`` in ps; the first frame's time equals the input's.
    """
    import MDAnalysis as mda
    from MDAnalysis.coordinates.memory import MemoryReader

    from ..pipeline import route_given_step, upsample_stream

    if not isinstance(universe, mda.Universe):
        hint = (": write the selection's trajectory first (ag.write('part.pdb'); ag.write('part.xtc', "
                "frames='all')) and upsample that" if isinstance(universe, mda.AtomGroup) else "")
        raise TypeError(f"upsample_universe takes an MDAnalysis Universe, not {type(universe).__name__}{hint}")
    current = universe.trajectory.ts.frame
    reader_dt, options = route_given_step(dt, records_time(universe.trajectory), options)
    n_fine = (len(universe.trajectory) - 1) * int(factor) + 1
    positions = velocities = dimensions = times = None
    try:
        chunks = universe_chunks(universe, dt=reader_dt, lammps_units=lammps_units, type_map=type_map)
        done = 0
        for piece in upsample_stream(chunks, factor, method, **options):
            if positions is None:  # float32 from the start: the result, not 4× it, in memory
                positions = np.empty((n_fine, piece.n_atoms, 3), dtype=np.float32)
                velocities = np.empty_like(positions)
                times = np.empty(n_fine)
                dimensions = None if piece.cell is None else np.empty((n_fine, 6), dtype=np.float32)
            stop = done + piece.n_frames
            positions[done:stop] = piece.positions
            velocities[done:stop] = piece.velocities * internal_units.FS_PER_PS
            times[done:stop] = piece.times
            if dimensions is not None:
                dimensions[done:stop] = cell_to_dimensions(piece.cell)
            done = stop
    finally:
        universe.trajectory[current]  # leave the caller's Universe where it was
    if done != n_fine:  # the trajectory held other frames than its length said
        raise TrajectoryError(f"{done} fine frames made where {len(universe.trajectory)} coarse frames give {n_fine}")
    fine = mda.Merge(universe.atoms)
    kwargs = {} if dimensions is None else {"dimensions": dimensions}
    fine_dt_ps = (times[1] - times[0]) / internal_units.FS_PER_PS
    fine.load_new(positions, format=MemoryReader, order="fac", velocities=velocities,
                  dt=fine_dt_ps, time_offset=times[0] / internal_units.FS_PER_PS, **kwargs)
    return fine


class MDSRReader(ReaderBase):
    """Fine trajectory of a coarse file, computed block by block on demand.

    Keyword arguments of ``mda.Universe(topology, coarse_file, format="MDSR", ...)``:

    factor : int (required)
    method : str, default ``"auto"``
    dt : float, coarse step in fs, when the file has none
    coarse_format : str, mdsr_plugin format name if the extension does not tell
    top : str, topology file again, for coarse formats without atoms (DCD, TRR, NetCDF)
    lammps_units : str, units style of a file LAMMPS wrote (``--lammps-units``)
    type_map : str or dict, element of each LAMMPS atom type (``--type-map``)
    model, device : neural-method options

    The coarse trajectory is held in memory (it is ``factor`` times smaller than
    the fine one); one block of fine frames is cached.
    """

    format = "MDSR"
    units = {"time": "ps", "length": "Angstrom", "velocity": "Angstrom/ps"}

    def __init__(self, filename, factor=None, method="auto", dt=None, coarse_format=None, top=None, model=None,
                 device="cpu", lammps_units=None, type_map=None, **kwargs):
        super().__init__(filename, **kwargs)
        if factor is None:
            raise ValueError("format='MDSR' needs factor=N (fine frames per coarse step)")
        from ..io import read_trajectory
        from ..driver import prepare_coarse
        from ..pipeline import settings_of
        from ..resolve import resolve_method

        self._coarse = read_trajectory(filename, format=coarse_format, dt=dt, topology=top,
                                       lammps_units=lammps_units, type_map=type_map)
        settings = settings_of(factor, method, {"model": model, "device": device})
        self._factor = settings.factor
        self._method, self.provenance = resolve_method(method if not isinstance(method, str) else settings.method,
                                                       self._coarse, self._factor, settings)
        self._buffer = prepare_coarse(self._coarse)
        self._cache = (None, None)
        self._ts_kwargs.setdefault("dt", self._coarse.dt / self._factor / internal_units.FS_PER_PS)
        self._ts_kwargs.setdefault("time_offset", self._coarse.times[0] / internal_units.FS_PER_PS)
        self.n_atoms = self._coarse.n_atoms
        self.ts = self._Timestep(self.n_atoms, velocities=True, **self._ts_kwargs)
        self._read_frame(0)

    @property
    def n_frames(self):
        return (self._coarse.n_frames - 1) * self._factor + 1

    def _block(self, frame):
        """The cached block of fine frames holding ``frame``, and its first frame index."""
        from ..driver import block_bounds, emit_block, gaps_per_block

        n_coarse = self._coarse.n_frames
        block_gaps = gaps_per_block(self._method, self.n_atoms, self._factor)
        start, end = block_bounds(min(frame // self._factor, n_coarse - 2), block_gaps, n_coarse)
        if self._cache[0] != start:
            self._cache = (start, emit_block(self._buffer, self._method, self._factor, start, end, n_total=n_coarse))
        return self._cache[1], start * self._factor

    def _read_frame(self, frame):
        if not 0 <= frame < self.n_frames:
            raise IOError(f"frame {frame} is outside 0..{self.n_frames - 1}")
        fine, first = self._block(frame)
        i = frame - first
        self.ts.frame = frame
        self.ts.positions = fine.positions[i]
        self.ts.velocities = fine.velocities[i] * internal_units.FS_PER_PS
        self.ts.dimensions = None if fine.cell is None else cell_to_dimensions(fine.cell[i])
        return self.ts

    def _read_next_timestep(self, ts=None):
        if self.ts.frame + 1 >= self.n_frames:
            raise IOError("end of trajectory")
        return self._read_frame(self.ts.frame + 1)

    def _reopen(self):
        self.ts.frame = -1

    def close(self):
        self._cache = (None, None)

