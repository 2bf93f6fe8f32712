"""Upsampling lists of ASE ``Atoms``.

``upsample_atoms(images, factor, dt=None)`` takes a list (or any iterable, e.g.
``ase.io.iread(path, ":")``) of frames and returns the fine frames as ``Atoms`` with
positions, momenta in ASE units (so ``atoms.get_velocities()`` is in Å per ASE time
unit, ≈ 10.18 fs), ``info["time"]`` in fs, cell, pbc and masses kept.  The coarse
time step comes from ``info["time"]`` (fs) when every frame has it, else from ``dt``
(which, given with times, replaces them as ``--dt`` does a file's).
"""

from __future__ import annotations

import itertools

__all__ = ["upsample_atoms", "atoms_chunks"]


def atoms_chunks(images, *, dt: float | None = None, chunk_size: int = 2000):
    """Consecutive :class:`~mdsr_plugin.Trajectory` chunks of an iterable of ``Atoms``."""
    from ..io.ase_backend import atoms_to_trajectory

    images = iter(images)
    reference, start = None, 0
    while True:
        batch = list(itertools.islice(images, chunk_size))
        if not batch:
            return
        reference = reference or batch[0]
        traj = atoms_to_trajectory(batch, reference, start, dt=dt, source="images")
        traj.validate(first_frame=start)
        start += len(batch)
        yield traj


def upsample_atoms(images, factor: int, dt: float | None = None, method: str = "auto", **options) -> list:
    """Fine frames of ``images`` as a list of ``Atoms``.

    Parameters
    ----------
    images : iterable of ase.Atoms
        The coarse frames, one molecule or periodic system throughout.
    factor : int
        Fine frames per coarse step.
    dt : float, optional
        Coarse time step in **fs**: needed when the frames carry no ``info["time"]``; where
        they do, ``dt`` replaces their times as ``--dt`` replaces a file's (refused where the
        stored velocities bear out the frames' own step).
    method : str
        ``"auto"``, ``"neural"``, ``"hermite"``, ``"quintic"``, ``"spline"``, ``"linear"``.
    **options
        Method options (``model=``, ``device=``).

    Returns
    -------
    list of ase.Atoms
        ``(n - 1) * factor + 1`` frames; momenta set (ASE units); ``info["time"]`` in fs.
    """
    from ..io.ase_backend import trajectory_to_atoms
    from ..pipeline import route_given_step, upsample_stream

    images = iter(images)
    first = next(images, None)
    reader_dt, options = route_given_step(dt, first is not None and "time" in first.info, options)
    chunks = atoms_chunks(itertools.chain([] if first is None else [first], images), dt=reader_dt)
    fine: list = []
    for piece in upsample_stream(chunks, factor, method, **options):
        fine.extend(trajectory_to_atoms(piece))
    return fine

