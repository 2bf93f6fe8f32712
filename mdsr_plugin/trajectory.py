"""The one trajectory type every layer of mdsr_plugin exchanges.

Readers produce :class:`Trajectory` objects, upsampling methods consume and
return them, writers write them.  All arrays are in the internal units declared
in :mod:`mdsr_plugin.units` (Å, fs, Å/fs, eV/Å, u).

Example
-------
>>> import numpy as np
>>> traj = Trajectory(numbers=np.array([8, 1, 1]),
...                   positions=np.zeros((4, 3, 3)),
...                   times=np.arange(4) * 10.0)
>>> traj.n_frames, traj.n_atoms, traj.dt
(4, 3, 10.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .elements import standard_masses

__all__ = ["Trajectory", "TrajectoryError", "concatenate", "check_uniform_times"]


#: The heaviest element known (oganesson).
MAX_ATOMIC_NUMBER = 118

#: Coordinates beyond this (Å) are no coordinates of an MD run but garbage or overflow;
#: refused on reading, since interpolating them overflows to inf.
MAX_ABS_POSITION = 1e8


class TrajectoryError(ValueError):
    """Raised for trajectories that cannot be upsampled (bad frames, bad times)."""


def _per_frame(array, n_frames, shape, name, dtype=np.float64):
    """Return ``array`` as ``(n_frames, *shape)``, broadcasting a single value."""
    if array is None:
        return None
    array = np.asarray(array, dtype=dtype)
    if array.shape == tuple(shape):
        # A fixed value (for example a constant cell) is stored once and viewed
        # per frame, so a fixed cell costs no memory per frame.
        return np.broadcast_to(array, (n_frames, *shape))
    if array.shape != (n_frames, *shape):
        raise TrajectoryError(
            f"{name} has shape {array.shape}, expected {(n_frames, *shape)} or {tuple(shape)}"
        )
    return array


@dataclass(eq=False)
class Trajectory:
    """A molecular-dynamics trajectory with positions and, optionally, velocities and forces.

    Parameters
    ----------
    numbers : ndarray, shape (n_atoms,), int
        Atomic numbers; 0 where the element is unknown.
    positions : ndarray, shape (n_frames, n_atoms, 3), Å
    times : ndarray, shape (n_frames,), fs
        Simulation time of every frame.
    masses : ndarray, shape (n_atoms,), u, optional
        Defaults to the standard atomic masses of ``numbers``.
    velocities : ndarray, shape (n_frames, n_atoms, 3), Å/fs, optional
    forces : ndarray, shape (n_frames, n_atoms, 3), eV/Å, optional
    cell : ndarray, shape (n_frames, 3, 3) or (3, 3), Å, optional
        Cell vectors as rows; a ``(3, 3)`` cell is fixed for all frames.
    pbc : ndarray, shape (3,), bool
        Periodicity along each cell vector.
    steps : ndarray, shape (n_frames,), int, optional
        MD step number of each frame.
    names : list of str, optional
        Atom names from the input topology, kept for writers that store them.
    frame_data : dict of str to ndarray, shape (n_frames, ...)
        Extra per-frame values, e.g. the neural model's forward/backward disagreement.
    """

    numbers: np.ndarray
    positions: np.ndarray
    times: np.ndarray
    masses: np.ndarray | None = None
    velocities: np.ndarray | None = None
    forces: np.ndarray | None = None
    cell: np.ndarray | None = None
    pbc: np.ndarray = field(default_factory=lambda: np.zeros(3, dtype=bool))
    steps: np.ndarray | None = None
    names: list[str] | None = None
    frame_data: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self):
        self.numbers = np.asarray(self.numbers, dtype=np.int64)
        self.positions = np.asarray(self.positions, dtype=np.float64)
        if self.positions.ndim != 3 or self.positions.shape[2] != 3:
            raise TrajectoryError(
                f"positions must have shape (n_frames, n_atoms, 3), got {self.positions.shape}"
            )
        n_frames, n_atoms = self.positions.shape[:2]
        if self.numbers.shape != (n_atoms,):
            raise TrajectoryError(
                f"numbers has shape {self.numbers.shape}, expected ({n_atoms},)"
            )
        bad = (self.numbers < 0) | (self.numbers > MAX_ATOMIC_NUMBER)
        if bad.any():
            i = int(np.argmax(bad))
            raise TrajectoryError(f"atom {i}: atomic number {self.numbers[i]} is no element "
                                  f"(1-{MAX_ATOMIC_NUMBER}, or 0 for unknown)")
        self.masses = (
            standard_masses(self.numbers)
            if self.masses is None
            else np.asarray(self.masses, dtype=np.float64)
        )
        if self.masses.shape != (n_atoms,):
            raise TrajectoryError(f"masses has shape {self.masses.shape}, expected ({n_atoms},)")
        bad = ~(np.isfinite(self.masses) & (self.masses > 0))
        if bad.any():
            i = int(np.argmax(bad))
            raise TrajectoryError(f"atom {i}: mass {self.masses[i]:g} u; every atom needs a finite mass > 0 "
                                  "(a massless virtual site cannot be integrated)")
        self.times = np.asarray(self.times, dtype=np.float64).reshape(-1)
        if self.times.shape != (n_frames,):
            raise TrajectoryError(f"times has {self.times.size} values for {n_frames} frames")
        self.velocities = _per_frame(self.velocities, n_frames, (n_atoms, 3), "velocities")
        self.forces = _per_frame(self.forces, n_frames, (n_atoms, 3), "forces")
        self.cell = _per_frame(self.cell, n_frames, (3, 3), "cell")
        self.pbc = np.broadcast_to(np.asarray(self.pbc, dtype=bool), (3,)).copy()
        if self.steps is not None:
            self.steps = np.asarray(self.steps, dtype=np.int64).reshape(n_frames)
        for key, value in self.frame_data.items():
            if len(value) != n_frames:
                raise TrajectoryError(f"frame_data[{key!r}] has {len(value)} rows for {n_frames} frames")

    # ------------------------------------------------------------------ shape
    @property
    def n_frames(self) -> int:
        return self.positions.shape[0]

    @property
    def n_atoms(self) -> int:
        return self.positions.shape[1]

    @property
    def has_velocities(self) -> bool:
        return self.velocities is not None

    @property
    def has_forces(self) -> bool:
        return self.forces is not None

    @property
    def is_periodic(self) -> bool:
        return self.cell is not None and bool(self.pbc.any())

    @property
    def dt(self) -> float:
        """The uniform time step in fs; raises :class:`TrajectoryError` if the steps differ."""
        if self.n_frames < 2:
            raise TrajectoryError("a time step needs at least two frames")
        check_uniform_times(self.times)
        return float((self.times[-1] - self.times[0]) / (self.n_frames - 1))

    # ------------------------------------------------------------- selection
    def __getitem__(self, index) -> "Trajectory":
        """Frames ``index`` (a slice or an index array) as a new trajectory sharing the arrays."""
        if isinstance(index, (int, np.integer)):
            index = slice(index, index + 1 if index != -1 else None)

        def pick(a):
            return None if a is None else a[index]

        return replace(
            self,
            positions=self.positions[index],
            times=self.times[index],
            velocities=pick(self.velocities),
            forces=pick(self.forces),
            cell=pick(self.cell),
            steps=pick(self.steps),
            frame_data={k: v[index] for k, v in self.frame_data.items()},
        )

    def without(self, *quantities: str) -> "Trajectory":
        """A copy with ``"velocities"`` and/or ``"forces"`` dropped."""
        return replace(self, **{q: None for q in quantities})

    def validate(self, first_frame: int = 0) -> None:
        """Raise :class:`TrajectoryError` naming the first frame with NaN or inf values.

        ``first_frame`` is the index of this trajectory's frame 0 in the file, so that
        errors raised on a chunk name the frame as the user counts it.
        """
        for name in ("positions", "velocities", "forces", "cell"):
            values = getattr(self, name)
            if values is None:
                continue
            bad = ~np.isfinite(values).reshape(len(values), -1).all(axis=1)
            if bad.any():
                frame = first_frame + int(np.argmax(bad))
                raise TrajectoryError(f"frame {frame}: {name} contain NaN or infinite values")
        too_far = (np.abs(self.positions) > MAX_ABS_POSITION).reshape(self.n_frames, -1).any(axis=1)
        if too_far.any():
            frame = first_frame + int(np.argmax(too_far))
            largest = float(np.abs(self.positions[int(np.argmax(too_far))]).max())
            raise TrajectoryError(f"frame {frame}: a position of {largest:.3g} Å is no coordinate "
                                  f"(beyond {MAX_ABS_POSITION:g} Å)")
        if self.cell is not None and self.is_periodic:
            volume = np.abs(np.linalg.det(self.cell))
            flat = ~(volume > 1e-6)
            if flat.any():
                frame = first_frame + int(np.argmax(flat))
                raise TrajectoryError(f"frame {frame}: the periodic cell has volume {volume[int(np.argmax(flat))]:.3g} Å³ "
                                      "(singular); give a real cell or drop periodicity")
        if not np.isfinite(self.times).all():
            frame = first_frame + int(np.argmax(~np.isfinite(self.times)))
            raise TrajectoryError(f"frame {frame}: time is NaN or infinite")

    def same_system(self, other: "Trajectory") -> bool:
        """Whether ``other`` has the same atoms (numbers, masses) as this trajectory."""
        return (
            self.n_atoms == other.n_atoms
            and np.array_equal(self.numbers, other.numbers)
            and np.allclose(self.masses, other.masses)
        )


def check_uniform_times(
    times: np.ndarray, first_frame: int = 0, rtol: float = 1e-4, reference: float | None = None
) -> None:
    """Raise :class:`TrajectoryError` naming the first frame where the time step changes.

    Parameters
    ----------
    times : ndarray, shape (n_frames,), fs
    first_frame : int
        Index of ``times[0]`` in the file, used in the message.
    rtol : float
        Relative tolerance on each step; files store times rounded (DCD in float32).
    reference : float, optional
        The step every step must equal (fs); by default the first one.
    """
    if len(times) < 2:
        return
    steps = np.diff(times)
    reference = steps[0] if reference is None else reference
    if reference <= 0:
        raise TrajectoryError(
            f"frame {first_frame + 1}: time does not increase ({times[0]:g} fs -> {times[1]:g} fs); "
            "if the file's times are wrong, pass --dt"
        )
    bad = np.abs(steps - reference) > rtol * abs(reference) + 1e-9
    if bad.any():
        i = int(np.argmax(bad))
        raise TrajectoryError(
            f"frame {first_frame + i + 1}: non-uniform time step "
            f"({steps[i]:g} fs after {reference:g} fs); upsampling needs evenly spaced frames"
        )


def concatenate(parts: list[Trajectory]) -> Trajectory:
    """Join trajectories of the same system frame-wise.

    Optional arrays (velocities, forces, cell, steps, frame data) are kept only
    when every part has them.
    """
    if not parts:
        raise TrajectoryError("nothing to concatenate")
    first = parts[0]
    for part in parts[1:]:
        if not first.same_system(part):
            raise TrajectoryError("cannot join trajectories of different systems")

    def join(name):
        arrays = [getattr(p, name) for p in parts]
        return None if any(a is None for a in arrays) else np.concatenate(arrays)

    keys = set(first.frame_data).intersection(*(p.frame_data for p in parts[1:]))
    return replace(
        first,
        positions=join("positions"),
        times=join("times"),
        velocities=join("velocities"),
        forces=join("forces"),
        cell=join("cell"),
        steps=join("steps"),
        frame_data={k: np.concatenate([p.frame_data[k] for p in parts]) for k in keys},
    )
