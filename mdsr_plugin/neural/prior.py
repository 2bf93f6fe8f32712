"""A prior for learning from few coarse frames: the same molecule on a cheap Hamiltonian.

A short DFT archive of a molecule with no checkpoint holds too few frames to learn a
potential from: glycine on PBE/6-31G, 1.25 ps at 20 fs (45 training frames), learned
from scratch, has forces 37 % off on held-out frames, and reconstructs its gaps only
2.7x better than cubic Hermite.  A tight-binding Hamiltonian (GFN1-xTB, tblite)
costs milliseconds per step: a trajectory of the same molecule on it, started from
the user's first coarse frame at the user's temperature and recorded at the user's
coarse step, gives hundreds of frames to learn a first model from.  The learning
from the user's own frames then starts from that model, as it would from a registry
checkpoint of the molecule, and fits it to the user's Hamiltonian (measured in
``docs/benchmarks.md``).

The prior trajectory is written beside the checkpoint (``STEM.prior.h5md``, with the
arguments that made it) and reused when they match; the model learned from it is an
ordinary checkpoint (``STEM.prior.json``), which the final card names as its warm start.

**A periodic box** gets its prior differently (:func:`prior_forces`): the cheap
Hamiltonian's forces at the user's own coarse frames, single points rather than a run.
A box's model is learned from scratch anyway (it is local, and no registry checkpoint
holds the user's box), the frames are exactly the configurations the gaps cross, and
no temperature is needed (positions-only frames have none to give).  The box is then
learned as one with stored forces: the forces fix a first potential, the velocities
are fitted through it, and the gap stage, which sees the user's positions only, moves
the potential towards the user's Hamiltonian.  A long file gets them at every k-th
frame only (``prior_frames`` of :class:`~mdsr_plugin.neural.adapt_box.BoxAdaptSettings`),
and they take at most ``prior_share`` of the time budget: those done are kept, spread over
the file, and the next call computes the rest.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..hamiltonians import PRIOR_HAMILTONIANS
from ..trajectory import Trajectory

__all__ = ["AUTO_PRIOR", "AUTOMATIC_PRIOR", "NO_PRIOR", "PRIOR_HAMILTONIANS", "kinetic_temperature", "prior_forces",
           "prior_trajectory", "spread_order", "tblite_available"]

log = logging.getLogger(__name__)

#: ``prior`` (of :class:`~mdsr_plugin.neural.adapt.AdaptSettings`) that chooses:
#: :data:`AUTOMATIC_PRIOR` for frames without forces and a molecule with no checkpoint to
#: start from, or a box without velocities or forces; else none.
AUTO_PRIOR = "auto"
#: ``prior`` (as None) that never runs one: ``--adapt-prior none``.
NO_PRIOR = "none"
#: The cheap Hamiltonian of an automatic prior.  GFN2-xTB rather than GFN1-xTB: the
#: more accurate of the two on molecules, and not the Hamiltonian of the GFN1-xTB
#: benchmark data, so that the default is measured on a Hamiltonian it does not share.
AUTOMATIC_PRIOR = "gfn2-xtb"


def tblite_available() -> bool:
    """Whether tblite, which runs every prior Hamiltonian, is installed."""
    try:
        import tblite.ase  # noqa: F401
    except ImportError:
        return False
    return True

def kinetic_temperature(traj: Trajectory) -> float:
    """The mean kinetic temperature of ``traj``'s frames, K (a molecule: 3N − 6 degrees of freedom).

    Parameters
    ----------
    traj : Trajectory
        With velocities, shape (F, N, 3), Å/fs.
    """
    from .. import units

    if traj.velocities is None:
        raise ValueError("the temperature of frames without velocities is unknown")
    kinetic = 0.5 * np.einsum("n,fni,fni->f", traj.masses, traj.velocities, traj.velocities)  # u Å²/fs²
    kinetic = kinetic / units.ACCEL_PER_FORCE_OVER_MASS  # eV
    dof = max(3 * traj.n_atoms - 6, 1)
    return float(np.mean(2.0 * kinetic / (dof * units.BOLTZMANN_EV_PER_K)))


def prior_trajectory(coarse: Trajectory, output, *, hamiltonian: str = "gfn1-xtb", n_frames: int = 500,
                     equilibration_fs: float = 500.0, seed: int = 0, progress: bool = False) -> Trajectory:
    """The molecule of ``coarse`` on ``hamiltonian``, recorded at ``coarse``'s step.

    Starts from the first coarse frame, is thermalised for ``equilibration_fs`` by a
    Langevin bath (0.01/fs) at the coarse frames' kinetic temperature, then runs NVE
    (velocity Verlet at the largest step ≤ 0.5 fs that divides the coarse step).

    Parameters
    ----------
    coarse : Trajectory
        The user's coarse frames of one molecule: positions (F, N, 3) Å, velocities Å/fs.
    output : path-like
        H5MD file the trajectory is written to (atomically); an existing one made with
        the same arguments is read instead of run again.
    hamiltonian : {"gfn1-xtb", "gfn2-xtb"}
    n_frames : int
        Frames recorded, ``coarse.dt`` apart.
    equilibration_fs : float
    seed : int
        Seeds the Langevin noise.
    progress : bool
        A progress bar over the steps (stderr).

    Returns
    -------
    Trajectory
        ``n_frames`` frames: positions (Å), velocities (Å/fs), forces (eV/Å).
    """
    from ase import Atoms

    from .. import units
    from ..hamiltonians import describe_hamiltonian
    from ..io import read_trajectory, write_trajectory
    from ..reference import MDRun, finished_parameters

    _check_hamiltonian(hamiltonian)
    if coarse.is_periodic:
        raise ValueError("a prior is for molecules; a periodic box learns from its own frames")
    if coarse.velocities is None:
        raise ValueError("a prior starts from the coarse velocities, which the input does not have")
    if n_frames < 2:
        raise ValueError(f"a prior needs at least 2 frames, got {n_frames}")
    output = Path(output)
    substeps = int(np.ceil(coarse.dt / 0.5 - 1e-9))
    timestep = coarse.dt / substeps
    temperature = kinetic_temperature(coarse)
    parameters = {
        "generator": "mdsr_plugin.neural.prior.prior_trajectory",
        "potential": describe_hamiltonian(hamiltonian),
        "start": [np.round(coarse.positions[0], 6).tolist(), np.round(coarse.velocities[0], 8).tolist()],
        "numbers": [int(z) for z in coarse.numbers],
        "temperature_K": round(temperature, 3),
        "coarse_dt_fs": float(coarse.dt),
        "timestep_fs": timestep,
        "frames": int(n_frames),
        "equilibration_fs": float(equilibration_fs),
        "seed": int(seed),
    }
    if finished_parameters(output) == parameters:
        log.info("%s: the prior trajectory made with these arguments exists", output.name)
        return read_trajectory(output)

    calculator = _calculator(hamiltonian)
    atoms = Atoms(numbers=coarse.numbers, positions=coarse.positions[0], masses=coarse.masses)
    atoms.set_velocities(coarse.velocities[0] / units.ASE_TIME_PER_FS)
    run = MDRun(atoms, calculator, {"temperature_K": temperature, "timestep_fs": timestep, "thermostat": "nve"},
                seed)
    equilibration = int(round(equilibration_fs / timestep))
    total = equilibration + (n_frames - 1) * substeps
    from tqdm.auto import tqdm

    with tqdm(total=total, unit="step", desc=f"prior on {hamiltonian}", disable=not progress or None,
              leave=False) as bar:
        run.equilibrate(equilibration, on_step=bar.update)
        frames = []
        for frame in range(n_frames):
            if frame:
                for _ in range(substeps):
                    run.dyn.run(1)
                    bar.update()
            frames.append(run.record())
    x, v, f = (np.array([frame[key] for frame in frames]) for key in ("positions", "velocities", "forces"))
    prior = Trajectory(numbers=coarse.numbers, masses=coarse.masses, positions=x, velocities=v, forces=f,
                       times=np.arange(n_frames) * coarse.dt,
                       names=coarse.names)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_trajectory(output, prior, parameters=parameters)
    log.info("prior: %d frames on %s at %.0f K written to %s", n_frames, hamiltonian, temperature, output.name)
    return read_trajectory(output)  # as a later call reads it: the same data, the same fingerprint


def prior_forces(coarse: Trajectory, output, *, hamiltonian: str = "gfn2-xtb", progress: bool = False,
                 deadline: float | None = None, min_frames: int = 0) -> np.ndarray:
    """``hamiltonian``'s forces at the frames of ``coarse`` (single points; a box's prior).

    Frames are computed in an order whose every prefix is spread over the file
    (:func:`spread_order`), each on a fresh calculator (so a force does not depend on
    which frame came before it: an interrupted and resumed run gives what an uninterrupted
    one does; at 20 fs apart, reusing the last frame's density saved nothing on a water
    box).  Progress is kept in ``OUTPUT.partial.npz`` (about every minute, and where
    ``deadline`` stops the work), so a later call, or one after a killed job, goes on from it.

    Parameters
    ----------
    coarse : Trajectory
        The user's coarse frames, positions (F, N, 3) Å, with their cell where periodic.
    output : path-like
        H5MD file the frames and forces are written to (atomically) once every frame has
        its forces; an existing one made from the same frames on the same Hamiltonian is
        read instead of computed again.
    hamiltonian : {"gfn1-xtb", "gfn2-xtb"}
    progress : bool
        A progress bar over the frames (stderr).
    deadline : float, optional
        ``time.perf_counter()`` after which no further single point is started, once this
        call has computed ``min_frames`` (so that every call makes progress).
    min_frames : int
        The frames this call computes however late it is (or all that are left).

    Returns
    -------
    ndarray, shape (F, N, 3), eV/Å
        The forces; NaN rows at frames the deadline left without them.

    Raises
    ------
    ValueError
        An unknown Hamiltonian, tblite not installed, or a single point that failed (one line).
    """
    import hashlib
    import json
    import time
    from dataclasses import replace

    from ..hamiltonians import describe_hamiltonian
    from ..io import read_trajectory, write_trajectory
    from ..io.atomic import AtomicFiles
    from ..reference import finished_parameters

    _check_hamiltonian(hamiltonian)
    output = Path(output)
    cells = None if coarse.cell is None else np.broadcast_to(coarse.cell, (coarse.n_frames, 3, 3))
    frames = hashlib.sha256(np.ascontiguousarray(coarse.positions, dtype=np.float64).tobytes())
    if cells is not None:
        frames.update(np.ascontiguousarray(cells, dtype=np.float64).tobytes())
    parameters = {
        "generator": "mdsr_plugin.neural.prior.prior_forces",
        "potential": describe_hamiltonian(hamiltonian),
        "numbers": [int(z) for z in coarse.numbers],
        "pbc": [bool(p) for p in coarse.pbc],
        "frames": int(coarse.n_frames),
        "frames_sha256": frames.hexdigest(),
    }
    if finished_parameters(output) == parameters:
        log.info("%s: the prior forces of these frames exist", output.name)
        return read_trajectory(output).forces
    partial = output.with_name(output.name + ".partial.npz")
    forces = np.full(coarse.positions.shape, np.nan)
    if partial.is_file():
        with np.load(partial, allow_pickle=False) as saved:
            if json.loads(str(saved["parameters"])) == parameters:
                forces = saved["forces"]
                log.info("%s: %d frames' forces of an earlier call", partial.name,
                         np.isfinite(forces).all(axis=(1, 2)).sum())

    def keep():
        with AtomicFiles(partial) as (temporary,):
            with open(temporary, "wb") as handle:  # a handle: np.savez would append ".npz" to the name
                np.savez(handle, parameters=np.array(json.dumps(parameters)), forces=forces)

    _calculator(hamiltonian)  # tblite missing: one line before any work
    from ase import Atoms
    from ase.calculators.calculator import CalculatorError
    from tqdm.auto import tqdm

    todo = [k for k in spread_order(coarse.n_frames) if not np.isfinite(forces[k]).all()]
    done, kept_at = coarse.n_frames - len(todo), time.perf_counter()
    for now, k in enumerate(tqdm(todo, unit="frame", desc=f"prior forces on {hamiltonian}",
                                 disable=not progress or None, leave=False)):
        if deadline is not None and now >= min_frames and time.perf_counter() > deadline:
            break
        atoms = Atoms(numbers=coarse.numbers, positions=coarse.positions[k], masses=coarse.masses,
                      cell=None if cells is None else cells[k], pbc=coarse.pbc)
        atoms.calc = _calculator(hamiltonian)
        try:
            forces[k] = atoms.get_forces()
        except (CalculatorError, RuntimeError) as err:  # tblite: SCF not converged, a bad geometry
            message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(f"the {hamiltonian} prior failed at frame {k}: {message}") from None
        done += 1
        if time.perf_counter() - kept_at > KEEP_PRIOR_EVERY_S and done < coarse.n_frames:
            keep()
            kept_at = time.perf_counter()
    if done < coarse.n_frames:
        keep()
        log.info("prior: %s forces at %d of %d frames within the time budget (kept in %s)", hamiltonian, done,
                 coarse.n_frames, partial.name)
        return forces
    output.parent.mkdir(parents=True, exist_ok=True)
    write_trajectory(output, replace(coarse, velocities=None, forces=forces), parameters=parameters)
    partial.unlink(missing_ok=True)
    log.info("prior: %s forces at %d frames written to %s", hamiltonian, coarse.n_frames, output.name)
    return read_trajectory(output).forces  # as a later call reads them: the same data


#: Seconds between saves of a prior's single points done so far (``OUTPUT.partial.npz``).
KEEP_PRIOR_EVERY_S = 60.0


def spread_order(n: int) -> np.ndarray:
    """``0 … n − 1`` in bit-reversed order (0, n/2, n/4, 3n/4, …): every prefix is spread
    over the whole range, so a prior cut short by its budget still covers the whole file
    (its last tenth is what validates the forces stage).

    Returns
    -------
    ndarray, shape (n,), int
    """
    bits = max(int(n) - 1, 1).bit_length()
    codes = np.arange(1 << bits)
    reversed_codes = np.zeros_like(codes)
    for bit in range(bits):
        reversed_codes |= ((codes >> bit) & 1) << (bits - 1 - bit)
    return reversed_codes[reversed_codes < n]


def _check_hamiltonian(hamiltonian: str) -> None:
    if hamiltonian not in PRIOR_HAMILTONIANS:
        raise ValueError(f"a prior runs on one of {', '.join(PRIOR_HAMILTONIANS)}, not {hamiltonian!r}")


def _calculator(hamiltonian: str):
    """The prior Hamiltonian's ASE calculator; ValueError naming the extra where tblite is missing."""
    from ..hamiltonians import make_calculator

    try:
        return make_calculator(hamiltonian)
    except ImportError:
        raise ValueError(f"a {hamiltonian} prior needs tblite: pip install 'mdsr_plugin[reference]'") from None
