"""Formats read and written through MDAnalysis: DCD (+ NAMD velocity DCD), TRR, XTC,
AMBER NetCDF, LAMMPS dump.

Units at this boundary: MDAnalysis gives Å, ps, Å/ps and kJ/(mol·Å); we convert
to Å, fs, Å/fs and eV/Å here.  A NAMD velocity DCD stores velocities as
"positions" in Å per AKMA time unit.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterator

import numpy as np

from .. import units
from ..elements import numbers_from_symbols, symbols_of
from ..trajectory import Trajectory
from .base import FormatError, TrajectoryReader, TrajectoryWriter

__all__ = [
    "MDAnalysisReader",
    "MDAnalysisWriter",
    "DCDWriter",
    "topology_identities",
    "universe_identities",
    "cell_to_dimensions",
    "dimensions_to_cell",
]


def dimensions_to_cell(dimensions) -> np.ndarray:
    """MDAnalysis box ``[a, b, c, alpha, beta, gamma]`` (Å, degrees) → cell rows, shape (..., 3, 3), Å."""
    from ase.geometry import cellpar_to_cell

    dimensions = np.asarray(dimensions, dtype=np.float64)
    if dimensions.ndim == 1:
        return cellpar_to_cell(dimensions)
    return np.array([cellpar_to_cell(d) for d in dimensions])


def cell_to_dimensions(cell) -> np.ndarray:
    """Cell rows, shape (..., 3, 3), Å → MDAnalysis box ``[a, b, c, alpha, beta, gamma]`` (Å, degrees).

    ASE's ``cell_to_cellpar``, vectorised over frames with the same formula (a frame
    at a time cost ~15 µs, as much as upsampling it).
    """
    cell = np.asarray(cell, dtype=np.float64)
    frames = cell.reshape(-1, 3, 3)
    lengths = np.sqrt(np.einsum("fij,fij->fi", frames, frames))
    angles = []
    for j, k in ((2, 1), (0, 2), (1, 0)):  # alpha = ∠(c, b), beta = ∠(a, c), gamma = ∠(b, a)
        ll = lengths[:, j] * lengths[:, k]
        degenerate = ll <= 1e-16
        cosine = np.einsum("fi,fi->f", frames[:, j], frames[:, k]) / np.where(degenerate, 1.0, ll)
        angles.append(np.where(degenerate, 90.0, 180.0 / np.pi * np.arccos(cosine)))
    return np.column_stack([lengths, *angles]).reshape(*cell.shape[:-2], 6)


def universe_identities(universe):
    """Atomic numbers, masses (u or None) and names of a Universe's atoms."""
    atoms = universe.atoms
    # Elements when the topology has them, else guessed from names (CHARMM and
    # GROMACS types are often force-field numbers), else from types.
    numbers = np.zeros(len(atoms), dtype=np.int64)
    for attribute in ("elements", "names", "types"):
        if hasattr(atoms, attribute):
            guess = numbers_from_symbols([v if v else "X" for v in getattr(atoms, attribute)])
            if np.count_nonzero(guess) > np.count_nonzero(numbers):
                numbers = guess
            if numbers.all():
                break
    masses = np.asarray(atoms.masses, dtype=np.float64) if hasattr(atoms, "masses") else None
    if masses is not None and not np.all(masses > 0):
        masses = None
    names = list(atoms.names) if hasattr(atoms, "names") else None
    return numbers, masses, names


def topology_identities(topology, n_atoms: int):
    """Atomic numbers, masses and names read from a topology file with MDAnalysis."""
    import MDAnalysis as mda

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        universe = mda.Universe(str(topology))
    if len(universe.atoms) != n_atoms:
        raise FormatError(
            f"topology {Path(topology).name} has {len(universe.atoms)} atoms, the trajectory {n_atoms}"
        )
    return universe_identities(universe)


def _drop_half_built_reader(err: BaseException) -> None:
    """Free the reader a failed ``mda.Universe(...)`` left in ``err``'s traceback, quietly.

    MDAnalysis' ``ReaderBase.__del__`` closes a file its ``__init__`` never opened when
    the header was garbage, and Python prints that AttributeError as "Exception ignored
    in ... __del__" after our one-line error.  Collect it here with that report muted.
    """
    import gc
    import sys

    previous = sys.unraisablehook
    sys.unraisablehook = lambda report: None
    try:
        err.__traceback__ = None
        del err
        gc.collect()
    finally:
        sys.unraisablehook = previous


class MDAnalysisReader(TrajectoryReader):
    """Stream a trajectory through an MDAnalysis ``Universe``.

    Parameters
    ----------
    path : path-like
    mda_format : str
        MDAnalysis format name (``"DCD"``, ``"TRR"``, ``"NCDF"``, ``"LAMMPSDUMP"``...).
    topology : path-like, optional
        Needed by formats without atom information (DCD, TRR, XTC, NetCDF).
    velocities : path-like, optional
        A NAMD velocity DCD with the same frames.
    dt : float, optional
        Coarse step in fs, overriding the file's.
    has_time : bool
        Whether the format records frame times (LAMMPS dumps record steps, not times).
    """

    def __init__(self, path, *, mda_format, topology=None, velocities=None, dt=None,
                 has_time=True, needs_topology=True):
        super().__init__(path, dt=dt)
        import MDAnalysis as mda

        if needs_topology and topology is None:
            raise FormatError(f"{self.path.name}: {mda_format} files need a topology; pass --top FILE")
        self.has_time = has_time
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                args = [str(topology)] if topology is not None else []
                kwargs = {"format": mda_format}
                if topology is None:
                    kwargs["topology_format"] = mda_format
                self.universe = mda.Universe(*args, str(self.path), **kwargs)
        except FormatError:
            raise
        except Exception as err:  # MDAnalysis raises IOError, ValueError, EOFError, struct errors...
            message = f"{self.path.name}: cannot be read as {mda_format} ({' '.join(str(err).split())})"
            _drop_half_built_reader(err)
            raise FormatError(message) from None
        self._attach(self.universe)
        if velocities is not None:
            from MDAnalysis.coordinates.DCD import DCDReader

            try:
                self._velocity_reader = DCDReader(str(velocities))
            except Exception as err:
                message = f"{Path(velocities).name}: not a readable velocity DCD ({' '.join(str(err).split())})"
                _drop_half_built_reader(err)
                raise FormatError(message) from None
            if self._velocity_reader.n_frames != self.n_frames:
                raise FormatError(
                    f"{Path(velocities).name} has {self._velocity_reader.n_frames} frames, "
                    f"{self.path.name} has {self.n_frames}"
                )
            if self._velocity_reader.n_atoms != len(self._numbers):
                raise FormatError(f"{Path(velocities).name}: atom count differs from {self.path.name}")

    @classmethod
    def from_universe(cls, universe, *, dt: float | None = None, has_time: bool = True) -> "MDAnalysisReader":
        """Stream the trajectory of an existing Universe (any format, in memory too).

        ``dt`` (fs) overrides the trajectory's time step; ``has_time=False`` requires it.
        """
        reader = cls.__new__(cls)
        TrajectoryReader.__init__(reader, universe.trajectory.filename or "Universe", dt=dt)
        reader.has_time = has_time
        reader.universe = universe
        reader._attach(universe, owns=False)
        return reader

    def _attach(self, universe, owns=True):
        self._owns_universe = owns
        self.n_frames = len(universe.trajectory)
        self._numbers, self._masses, self._names = universe_identities(universe)
        self._velocity_reader = None

    def _read_frames(self, start: int, stop: int):
        """Positions (Å), times (fs), velocities (Å/fs), forces (eV/Å) and boxes of frames start..stop."""
        n, n_atoms = stop - start, len(self._numbers)
        positions, times = np.empty((n, n_atoms, 3)), np.empty(n)
        velocities = forces = boxes = None
        i = 0
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "no dt information": times are handled here
                for i, ts in enumerate(self.universe.trajectory[start:stop]):
                    positions[i] = ts.positions
                    times[i] = ts.time * units.FS_PER_PS
                    if ts.has_velocities:
                        velocities = np.empty((n, n_atoms, 3)) if velocities is None else velocities
                        velocities[i] = ts.velocities / units.FS_PER_PS
                    if ts.has_forces:
                        forces = np.empty((n, n_atoms, 3)) if forces is None else forces
                        forces[i] = ts.forces / units.KJMOL_PER_EV
                    if ts.dimensions is not None and np.all(ts.dimensions[:3] > 0):
                        boxes = np.empty((n, 6)) if boxes is None else boxes
                        boxes[i] = ts.dimensions
        except (OSError, ValueError, EOFError) as err:
            raise FormatError(f"{self.path.name}: frame {start + i} is unreadable ({err})") from None
        return positions, times, velocities, forces, boxes

    def _chunks(self, chunk_size) -> Iterator[Trajectory]:
        for start in range(0, self.n_frames, chunk_size):
            stop = min(start + chunk_size, self.n_frames)
            positions, times, velocities, forces, boxes = self._read_frames(start, stop)
            if self._velocity_reader is not None:
                velocities = np.array([ts.positions.copy() for ts in self._velocity_reader[start:stop]])
                velocities = velocities * units.NAMD_VELOCITY_TO_ANGSTROM_PER_FS
            yield Trajectory(
                numbers=self._numbers,
                masses=self._masses,
                names=self._names,
                positions=positions,
                times=self._times(start, stop - start, times if self.has_time else None),
                velocities=velocities,
                forces=forces,
                cell=None if boxes is None else dimensions_to_cell(boxes),
                pbc=np.full(3, boxes is not None),
            )

    def close(self):
        universe = getattr(self, "universe", None)
        if universe is not None and self._owns_universe:  # never close a caller's Universe
            universe.trajectory.close()
        if self._velocity_reader is not None:
            self._velocity_reader.close()


def _empty_universe(traj: Trajectory):
    """A Universe with ``traj``'s atoms and a one-frame trajectory to fill per written frame."""
    import MDAnalysis as mda

    universe = mda.Universe.empty(
        traj.n_atoms, trajectory=True, velocities=traj.has_velocities, forces=traj.has_forces
    )
    symbols = symbols_of(traj.numbers)
    universe.add_TopologyAttr("names", traj.names or symbols)
    universe.add_TopologyAttr("types", symbols)
    universe.add_TopologyAttr("elements", symbols)
    universe.add_TopologyAttr("masses", traj.masses)
    return universe


def _rotation_to_mda_frame(cell) -> np.ndarray | None:
    """Matrix taking row vectors from ``cell``'s orientation to MDAnalysis' canonical one
    (a along x, b in the xy plane), or None when they already agree.

    MDAnalysis stores only box lengths and angles, so vectors in a rotated cell are
    carried over through fractional coordinates; the map is a rotation.
    """
    from ase.geometry import cell_to_cellpar, cellpar_to_cell

    canonical = cellpar_to_cell(cell_to_cellpar(cell))
    if np.allclose(canonical, cell, atol=1e-8):
        return None
    return np.linalg.solve(cell, canonical)


def _in_mda_frame(vectors, rotation):
    return vectors if rotation is None else vectors @ rotation


class MDAnalysisWriter(TrajectoryWriter):
    """Write through an MDAnalysis writer (TRR, NetCDF, XTC): positions, velocities (Å/ps),
    forces (kJ/(mol·Å)), time (ps) and box per frame.

    Parameters
    ----------
    path : path-like
    mda_format : str
    writer_options : dict
        Extra keyword arguments of the MDAnalysis writer.
    """

    def __init__(self, path, *, mda_format, **writer_options):
        self.mda_format = mda_format
        self.writer_options = writer_options
        super().__init__(path)

    def _writer_kwargs(self, first: Trajectory) -> dict:
        return dict(self.writer_options)

    def _open(self, first):
        import MDAnalysis as mda

        self._universe = _empty_universe(first)
        self._writer = mda.Writer(
            str(self.temporary_paths[0]), n_atoms=first.n_atoms, format=self.mda_format,
            **self._writer_kwargs(first),
        )

    def _fill(self, ts, traj, i, positions):
        ts.positions = positions
        ts.time = traj.times[i] / units.FS_PER_PS
        ts.frame = self.frames_written + i
        ts.data["step"] = int(traj.steps[i]) if traj.steps is not None else self.frames_written + i
        if traj.cell is not None:
            ts.dimensions = cell_to_dimensions(traj.cell[i])
        else:
            ts.dimensions = None

    def _write(self, traj):
        with warnings.catch_warnings():
            # "No dimensions set": a gas-phase trajectory has no box, which is fine.
            warnings.simplefilter("ignore", UserWarning)
            self._write_frames(traj)

    def _write_frames(self, traj):
        ts = self._universe.trajectory.ts
        for i in range(traj.n_frames):
            rotation = None if traj.cell is None else _rotation_to_mda_frame(traj.cell[i])
            self._fill(ts, traj, i, _in_mda_frame(traj.positions[i], rotation))
            if traj.velocities is not None:
                ts.velocities = _in_mda_frame(traj.velocities[i], rotation) * units.FS_PER_PS
            if traj.forces is not None:
                ts.forces = _in_mda_frame(traj.forces[i], rotation) * units.KJMOL_PER_EV
            self._writer.write(self._universe.atoms)

    def _close(self):
        self._writer.close()


class NetCDFWriter(MDAnalysisWriter):
    """AMBER NetCDF (Å/ps velocities, kcal/(mol·Å) forces after MDAnalysis' conversion).

    MDAnalysis' NetCDF writer must be told up front which per-frame variables the
    file has; a declared variable left unset fails on the first frame, so they follow
    the first chunk.
    """

    def __init__(self, path):
        super().__init__(path, mda_format="NCDF")

    def _writer_kwargs(self, first):
        return {"velocities": first.has_velocities, "forces": first.has_forces}


class DCDWriter(TrajectoryWriter):
    """DCD positions, with the time step in the header (AKMA units), and velocities in a
    NAMD-convention velocity DCD beside it (``fine.dcd`` → ``fine.vel.dcd``, Å/AKMA).

    MDAnalysis writes each file's header (its layout, flags and time step); the frames
    are then appended a whole chunk at a time as one array of Fortran records, and
    the frame count in the header is set on closing.  MDAnalysis' own writer goes
    through Python once per frame and file, which made DCD the slowest output by
    far.  The bytes are the same as MDAnalysis' writer produces
    (``tests/test_io_roundtrip.py``).
    """

    @staticmethod
    def velocity_path(path) -> Path:
        from . import get_format

        (velocity,) = get_format(path, "dcd").companion_outputs(path)
        return velocity

    def _paths(self):
        return [self.path, self.velocity_path(self.path)]

    def _open(self, first):
        import MDAnalysis as mda

        if first.n_frames < 2:
            raise FormatError("DCD output needs at least two frames to record the time step")
        dt = first.dt
        # istart (in steps of dt) carries the start time; DCD cannot store other offsets.
        header = {"dt": dt / units.FS_PER_PS, "istart": int(round(first.times[0] / dt)), "nsavc": 1}
        self._handles = []
        for temporary in self.temporary_paths[: 1 + first.has_velocities]:
            mda.Writer(str(temporary), n_atoms=first.n_atoms, format="DCD", **header).close()
            handle = open(temporary, "r+b")
            handle.seek(0, 2)
            self._handles.append(handle)
        # One frame = four Fortran records, each framed by its byte count: the unit cell
        # (6 float64, CHARMM's extra block, always written by MDAnalysis), then the
        # x, y and z coordinates (N float32 each).
        n = first.n_atoms
        coordinate = [(f"{axis}{part}", "=f4", (n,)) if part == "" else (f"{axis}{part}", "=i4")
                      for axis in "xyz" for part in ("_head", "", "_tail")]
        self._record = np.dtype([("box_head", "=i4"), ("box", "=f8", (6,)), ("box_tail", "=i4"), *coordinate])
        self._markers = {"box_head": 48, "box_tail": 48, **{f"{a}_{p}": 4 * n for a in "xyz" for p in ("head", "tail")}}

    def _write(self, traj):
        records = np.empty(traj.n_frames, self._record)
        for name, value in self._markers.items():
            records[name] = value
        records["box"] = _dcd_unit_cells(traj.cell, traj.n_frames)
        rotations = _rotations_to_mda_frame(traj.cell)
        vectors = [traj.positions]
        if len(self._handles) > 1:
            vectors.append(traj.velocities / units.NAMD_VELOCITY_TO_ANGSTROM_PER_FS)
        for handle, values in zip(self._handles, vectors):
            if rotations is not None:
                values = np.einsum("fni,fij->fnj", values, rotations)
            for k, axis in enumerate("xyz"):
                records[axis] = values[:, :, k]
            handle.write(records.tobytes())

    def _close(self):
        for handle in self._handles:
            handle.seek(8)  # NSET, the number of frames, in the first header record
            handle.write(np.int32(self.frames_written).tobytes())
            handle.close()
        if len(self._handles) == 1:
            # No velocities: publish only the coordinate file.
            self._files.final.pop()
            self._files.temporary.pop()


def _dcd_unit_cells(cell, n_frames) -> np.ndarray:
    """DCD unit-cell records (F, 6) as MDAnalysis' DCD writer makes them: the box in
    float32, ordered [A, cos γ, B, cos β, cos α, C] (the NAMD/VMD convention), zeros
    (angle cosines 1) without a cell."""
    if cell is None:
        dimensions = np.zeros((n_frames, 6), dtype=np.float32)
    else:
        dimensions = cell_to_dimensions(cell).reshape(n_frames, 6).astype(np.float32)
    box = dimensions[:, [0, 5, 1, 4, 3, 2]]
    box[:, [1, 3, 4]] = np.sin(np.deg2rad(90.0 - box[:, [1, 3, 4]]))
    return box


def _rotations_to_mda_frame(cell) -> np.ndarray | None:
    """Per-frame :func:`_rotation_to_mda_frame`, shape (F, 3, 3), or None if no frame needs one."""
    if cell is None:
        return None
    # Cells already in MDAnalysis' orientation (lower triangular, positive diagonal: what
    # most MD codes write) need no rotation; only the others are examined frame by frame.
    upper = cell[:, [0, 0, 1], [1, 2, 2]]
    canonical = (upper == 0).all(axis=1) & (np.diagonal(cell, axis1=1, axis2=2) > 0).all(axis=1)
    if canonical.all():
        return None
    rotations = [None if ok else _rotation_to_mda_frame(c) for ok, c in zip(canonical, cell)]
    if all(r is None for r in rotations):
        return None
    return np.array([np.eye(3) if r is None else r for r in rotations])
