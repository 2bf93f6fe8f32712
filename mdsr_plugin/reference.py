"""Reference trajectories at fine time resolution: ASE molecular dynamics on GFN2-/GFN1-xTB or DFT.

These are the ground truth that classical interpolators and neural models are
measured against, and the training data of the neural models.  Generation needs
the optional extra ``pip install mdsr_plugin[reference]`` (tblite, rdkit; PySCF
for DFT).  A run saves its state every ``checkpoint_every`` steps and continues
from there when called again with the same arguments.

Every trajectory is reproducible from its arguments: the molecule (an extended-MD17
name or a SMILES string), the temperature, the thermostat and the seed.  The
arguments are stored in the output's H5MD ``parameters`` group.

Example
-------
Command line, 20 ps of ethanol at 300 K with a Nosé–Hoover chain::

    mdsr-generate ethanol --temperature 300 --thermostat nose-hoover \\
        --steps 40000 --timestep 0.5 --seed 1 -o ethanol_300K_nh_s1.h5md
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from .console import closed_pipe_ends_quietly, one_line_warnings
from .trajectory import Trajectory

__all__ = ["MD17_SMILES", "build_molecule", "build_system", "water_box", "generate_reference", "MDRun",
           "finished_parameters", "main"]

log = logging.getLogger(__name__)

#: The extended MD17 molecules as SMILES (malonaldehyde in its enol form, as in MD17).
MD17_SMILES = {
    "aspirin": "CC(=O)Oc1ccccc1C(=O)O",
    "azobenzene": "c1ccc(cc1)/N=N/c1ccccc1",
    "benzene": "c1ccccc1",
    "ethanol": "CCO",
    "keto-mda": "O=CCC=O",
    "malonaldehyde": "O=CC=CO",
    "naphthalene": "c1ccc2ccccc2c1",
    "paracetamol": "CC(=O)Nc1ccc(O)cc1",
    "salicylic-acid": "OC(=O)c1ccccc1O",
    "toluene": "Cc1ccccc1",
    "uracil": "O=c1cc[nH]c(=O)[nH]1",
}

THERMOSTATS = ("langevin", "nose-hoover", "csvr", "nve")


def build_molecule(name_or_smiles: str, seed: int = 0):
    """An :class:`ase.Atoms` with hydrogens and a 3D geometry embedded by RDKit (ETKDG)."""
    from ase import Atoms
    from rdkit import Chem
    from rdkit.Chem import AllChem

    smiles = MD17_SMILES.get(name_or_smiles.lower(), name_or_smiles)
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise ValueError(f"not a known molecule or valid SMILES: {name_or_smiles!r}")
    mol = Chem.AddHs(mol)
    params = AllChem.ETKDGv3()
    params.randomSeed = seed
    if AllChem.EmbedMolecule(mol, params) != 0:
        raise ValueError(f"RDKit could not embed {name_or_smiles!r} in 3D")
    AllChem.MMFFOptimizeMolecule(mol)
    positions = mol.GetConformer().GetPositions()
    return Atoms(numbers=[a.GetAtomicNum() for a in mol.GetAtoms()], positions=positions)


def generate_reference(
    molecule: str,
    output,
    *,
    hamiltonian: str = "gfn2-xtb",
    temperature: float = 300.0,
    thermostat: str = "langevin",
    steps: int = 20000,
    timestep: float = 0.5,
    seed: int = 0,
    equilibration: int = 2000,
    friction: float = 0.01,
    tdamp: float = 50.0,
    checkpoint_every: int = 1000,
    snapshot=None,
) -> Path:
    """Run molecular dynamics and write every step to an H5MD file; resumes after a kill.

    Parameters
    ----------
    molecule : str
        Extended-MD17 name (see :data:`MD17_SMILES`), a SMILES string, or ``water-box:N``
        (a periodic box, recorded wrapped with its cell; tblite Hamiltonians only).
    output : path-like
        H5MD file to write: positions (Å), velocities (Å/fs), forces (eV/Å), time (fs),
        and the potential energy (eV) in ``observables/potential_energy``.  It appears
        only when the run is complete; called again with the same arguments, a
        complete run returns it without running.
    hamiltonian : str
        ``"gfn2-xtb"``, ``"gfn1-xtb"`` or ``"pyscf:FUNCTIONAL/BASIS"``
        (see :mod:`mdsr_plugin.hamiltonians`).
    temperature : float
        Thermostat temperature in K; also the initial Maxwell–Boltzmann temperature.
    thermostat : {"langevin", "nose-hoover", "csvr", "nve"}
        Stochastic Langevin (``friction`` in 1/fs), deterministic Nosé–Hoover
        chain (``tdamp`` in fs), Bussi's stochastic velocity rescaling (CSVR, the
        CP2K and GROMACS ``v-rescale`` thermostat; time constant ``tdamp`` in fs), or
        none (velocity Verlet after a Langevin equilibration at ``temperature``).
    steps : int
        Production steps written to ``output``.
    timestep : float
        Integration step in fs.
    seed : int
        Seeds the conformer embedding, the initial velocities and the Langevin noise.
    equilibration : int
        Steps run and discarded before production.
    checkpoint_every : int
        Production steps between saves of the run's state to ``<output>.resume.h5``;
        calling again with the same arguments continues from the last save.
    snapshot : path-like, optional
        Run nothing: write the frames an unfinished run with these arguments has saved
        so far to this H5MD file (to measure on a long DFT run while it continues).

    Returns
    -------
    Path of the written file.
    """
    from .hamiltonians import describe_hamiltonian, make_calculator
    from .io.atomic import not_a_file

    if thermostat not in THERMOSTATS:
        raise ValueError(f"thermostat must be one of {THERMOSTATS}, got {thermostat!r}")
    _check_numbers(temperature=temperature, timestep=timestep, friction=friction, tdamp=tdamp,
                   steps=steps, checkpoint_every=checkpoint_every, equilibration=equilibration, seed=seed)
    if molecule.lower().startswith("water-box:") and hamiltonian.startswith("pyscf:"):
        raise ValueError("PySCF's molecular Kohn-Sham cannot run a periodic box; use gfn1-xtb or gfn2-xtb")
    output = Path(output)
    for path in (output, *([] if snapshot is None else [Path(snapshot)])):
        kind = not_a_file(path)
        if kind is not None:  # -o /dev/null: publishing would replace the device by a file
            raise ValueError(f"{path}: names {kind}, not a file")
        if not path.resolve().parent.is_dir():
            raise ValueError(f"{path.parent}: output folder does not exist")
    parameters = dict(
        generator="mdsr_plugin.reference.generate_reference",
        molecule=molecule,
        temperature_K=temperature,
        thermostat=thermostat,
        steps=steps,
        timestep_fs=timestep,
        seed=seed,
        equilibration=equilibration,
        friction_per_fs=friction if thermostat == "langevin" else None,
        tdamp_fs=tdamp if thermostat in ("nose-hoover", "csvr") else None,
        potential=describe_hamiltonian(hamiltonian),
    )
    state_path = output.with_name(output.name + ".resume.h5")
    if snapshot is None and not state_path.exists() and finished_parameters(output) == parameters:
        # the same command again, after it finished: hours of DFT are not run twice
        log.info("%s: already complete with these arguments", output)
        return output
    run = MDRun(molecule, make_calculator(hamiltonian), parameters, seed)
    if snapshot is not None:
        if not state_path.exists():
            raise ValueError(f"{state_path}: no unfinished run with these arguments to take a snapshot of")
        saved = _ResumeFile(state_path, parameters)
        if not saved.same_parameters():
            raise ValueError(f"{state_path}: saved for other arguments")
        saved.publish(Path(snapshot), run.numbers, run.masses, timestep)
        return Path(snapshot)
    try:
        _run_saving(run, state_path, parameters, output, steps, equilibration, checkpoint_every, timestep)
    except BaseException:
        _ResumeFile.remove_if_empty(state_path)  # nothing to resume from: leave nothing behind
        raise
    state_path.unlink()
    return output


def _check_numbers(**values) -> None:
    """Refuse, in one line, a number :func:`generate_reference` cannot run with (before any
    file is touched): counts are integers (``steps``, ``checkpoint_every`` >= 1;
    ``equilibration``, ``seed`` >= 0), physical quantities finite and > 0."""
    counts = {"steps": 1, "checkpoint_every": 1, "equilibration": 0, "seed": 0}
    for name, value in values.items():
        if name in counts:
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < counts[name]:
                raise ValueError(f"{name} must be an integer >= {counts[name]}, got {value!r}")
        elif not (isinstance(value, (int, float, np.number)) and np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _run_saving(run, state_path, parameters, output, steps, equilibration, checkpoint_every, timestep):
    """Run (or continue) the production steps, saving to ``state_path``; publish ``output``."""
    with _ResumeFile(state_path, parameters) as state:
        if state.n_frames:
            run.restore(state)
            log.info("%s: resuming at step %d of %d", output, state.n_frames - 1, steps)
        else:
            run.equilibrate(equilibration)
            state.save([run.record()], run.dynamics_state())
        start, done_before = time.perf_counter(), state.n_frames - 1
        buffer = []
        for step in range(state.n_frames, steps + 1):
            run.dyn.run(1)
            buffer.append(run.record())
            if len(buffer) >= checkpoint_every or step == steps:
                state.save(buffer, run.dynamics_state())
                buffer.clear()
                log.info("%s: %d/%d steps, %.1f ms/step", output, step, steps,
                         1e3 * (time.perf_counter() - start) / (step - done_before))
        state.publish(output, run.numbers, run.masses, timestep)


#: Liquid water at 300 K, g/cm³ (the box of ``water-box:N`` is sized for it).
WATER_DENSITY = 0.997
_WATER = np.array([[0.0, 0.0, 0.0], [0.9572, 0.0, 0.0], [-0.2400, 0.9266, 0.0]])  # O, H, H; Å, 104.52°
#: Closest O-O distance when water molecules are placed (Å): no overlaps, yet dense.
_MIN_OO = 2.5


def water_box(n_molecules: int, seed: int = 0, density: float = WATER_DENSITY):
    """A cubic periodic box of ``n_molecules`` randomly placed and oriented waters.

    Oxygens are placed at random (seeded) at least 2.5 Å apart under the minimum image;
    the equilibration of the run then relaxes the liquid.

    Returns
    -------
    ase.Atoms
        ``3 * n_molecules`` atoms (O, H, H per molecule), cell (L, L, L) Å, periodic.
    """
    from ase import Atoms

    if n_molecules < 1:
        raise ValueError(f"a water box needs at least one molecule, got {n_molecules}")
    grams_per_molecule = 18.015 / 6.02214076e23
    length = (n_molecules * grams_per_molecule / density * 1e24) ** (1 / 3)  # Å
    rng = np.random.default_rng(seed)
    oxygens = np.empty((0, 3))
    for _ in range(200000):
        if len(oxygens) == n_molecules:
            break
        trial = rng.uniform(0.0, length, 3)
        d = oxygens - trial
        d -= length * np.round(d / length)
        if not len(d) or np.min(np.linalg.norm(d, axis=1)) >= _MIN_OO:
            oxygens = np.vstack([oxygens, trial])
    else:
        raise ValueError(f"could not place {n_molecules} waters in a {length:.2f} Å box")
    q, r = np.linalg.qr(rng.normal(size=(n_molecules, 3, 3)))
    rotations = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None]
    positions = oxygens[:, None] + np.einsum("ai,mji->maj", _WATER, rotations)
    atoms = Atoms("OH2" * n_molecules, positions=positions.reshape(-1, 3), cell=[length] * 3, pbc=True)
    atoms.wrap()
    return atoms


def build_system(name: str, seed: int = 0):
    """The system a reference run simulates: ``water-box:N`` (see :func:`water_box`), an
    extended-MD17 name or a SMILES string (:func:`build_molecule`)."""
    if name.lower().startswith("water-box:"):
        count = name.split(":", 1)[1]
        if not count.isdigit():
            raise ValueError(f"water-box:N needs a number of molecules, got {name!r}")
        return water_box(int(count), seed=seed)
    return build_molecule(name, seed=seed)


class MDRun:
    """One system on one calculator with its thermostat: the dynamics and what a frame records.

    Parameters
    ----------
    system : str or ase.Atoms
        A name for :func:`build_system` (velocities drawn at the temperature), or atoms
        whose positions and velocities the run starts from as they are.
    calculator : ase calculator
    parameters : dict
        ``temperature_K``, ``timestep_fs``, ``thermostat`` (``"langevin"``,
        ``"nose-hoover"``, ``"csvr"`` or ``"nve"``: a Langevin bath at 0.01/fs for
        :meth:`equilibrate`, then velocity Verlet), and ``friction_per_fs`` or
        ``tdamp_fs`` for the first three.
    seed : int
        Seeds the drawn velocities and the Langevin noise.
    """

    def __init__(self, system, calculator, parameters, seed):
        from ase import units as ase_units
        from ase.constraints import FixCom
        from ase.md.bussi import Bussi
        from ase.md.langevin import Langevin
        from ase.md.nose_hoover_chain import NoseHooverChainNVT
        from ase.md.verlet import VelocityVerlet
        from ase.md.velocitydistribution import Stationary, ZeroRotation, thermalize_momenta

        self.parameters = parameters
        self.rng = np.random.default_rng(seed)
        temperature = parameters["temperature_K"]
        if isinstance(system, str):
            atoms = build_system(system, seed=seed)
            thermalize_momenta(atoms, temperature_K=temperature, rng=self.rng)
            Stationary(atoms)
            if not atoms.pbc.any():  # a box has no rotation to remove
                ZeroRotation(atoms)
        else:
            atoms = system
        self.periodic = bool(atoms.pbc.any())
        atoms.calc = calculator
        self.atoms = atoms
        self.numbers, self.masses = atoms.numbers.copy(), atoms.get_masses()
        dt = parameters["timestep_fs"] * ase_units.fs
        thermostat = parameters["thermostat"]

        def langevin(friction):
            # Centre of mass fixed by a constraint: Langevin's own fixcm biases small molecules.
            atoms.set_constraint(FixCom())
            return Langevin(atoms, dt, temperature_K=temperature, friction=friction / ase_units.fs,
                            fixcm=False, rng=self.rng)

        if thermostat == "langevin":
            self.dyn = langevin(parameters["friction_per_fs"])
            self._equilibrator = self.dyn
        elif thermostat == "nose-hoover":
            self.dyn = NoseHooverChainNVT(atoms, dt, temperature_K=temperature,
                                          tdamp=parameters["tdamp_fs"] * ase_units.fs)
            self._equilibrator = self.dyn
        elif thermostat == "csvr":
            # rescales all momenta by one factor per step: the centre of mass stays at rest
            self.dyn = Bussi(atoms, dt, temperature_K=temperature, taut=parameters["tdamp_fs"] * ase_units.fs,
                             rng=self.rng)
            self._equilibrator = self.dyn
        else:  # nve: thermalise with a Langevin bath, then run free
            self._equilibrator = langevin(0.01)
            self.dyn = VelocityVerlet(atoms, dt)

    def equilibrate(self, steps, on_step=None):
        """``steps`` steps of the thermostat (NVE: of its Langevin bath), calling
        ``on_step()`` after each when given (a progress bar)."""
        if steps and on_step is None:
            self._equilibrator.run(steps)
        elif steps:
            for _ in range(steps):
                self._equilibrator.run(1)
                on_step()
        if self._equilibrator is not self.dyn:
            self.atoms.set_constraint()
        self._sync_dynamics()

    def _sync_dynamics(self):
        # The Nosé–Hoover chain integrates its own copy of positions and momenta.
        if hasattr(self.dyn, "_q"):
            self.dyn._q = self.atoms.get_positions()
            self.dyn._p = self.atoms.get_momenta()

    def record(self) -> dict:
        from . import units

        frame = {
            # a box is recorded wrapped, as periodic AIMD codes write it
            "positions": self.atoms.get_positions(wrap=self.periodic),
            "velocities": self.atoms.get_velocities() * units.ASE_TIME_PER_FS,
            # the potential's forces: with FixCom (Langevin) get_forces() returns constrained ones,
            # measured 0.2 eV/Å per component off for ethanol
            "forces": self.atoms.get_forces(apply_constraint=False),
            "potential_energy": np.array(self.atoms.get_potential_energy()),
        }
        if self.periodic:
            frame["cell"] = self.atoms.cell.array.copy()
        return frame

    def dynamics_state(self) -> dict:
        """What besides positions and velocities the next step depends on (JSON values)."""
        state = {"rng": self.rng.bit_generator.state}
        thermostat = getattr(self.dyn, "_thermostat", None)
        if thermostat is not None:
            state["eta"] = thermostat._eta.tolist()
            state["p_eta"] = thermostat._p_eta.tolist()
        return state

    def restore(self, saved: "_ResumeFile"):
        from . import units

        positions, velocities, dynamics = saved.last()
        if self._equilibrator is not self.dyn:
            self.atoms.set_constraint()  # NVE: the equilibration's constraint is done with
        self.atoms.set_positions(positions)
        self.atoms.set_velocities(velocities / units.ASE_TIME_PER_FS)
        self.rng.bit_generator.state = dynamics["rng"]
        thermostat = getattr(self.dyn, "_thermostat", None)
        if thermostat is not None:
            thermostat._eta = np.array(dynamics["eta"])
            thermostat._p_eta = np.array(dynamics["p_eta"])
        self._sync_dynamics()


class _ResumeFile:
    """Frames recorded so far and the dynamics' state, in an HDF5 file beside the output.

    The file is opened only while a save is written, so its progress can be read
    (``h5py.File(path, "r")``) while the run goes on.  Parameters that differ from
    the saved ones start the run afresh, so a changed command never continues
    another run's trajectory.
    """

    _KEYS = ("positions", "velocities", "forces", "potential_energy")
    _OPTIONAL = ("cell",)  # periodic runs

    def __init__(self, path: Path, parameters: dict):
        self.path, self.parameters = path, json.dumps(parameters, sort_keys=True)

    def _open(self, mode="a"):
        import h5py

        return h5py.File(self.path, mode)

    @staticmethod
    def remove_if_empty(path: Path) -> None:
        """Delete ``path`` if it holds no recorded frame (a run that failed or was
        interrupted before its first save has nothing to resume from)."""
        import h5py

        try:
            with h5py.File(path, "r") as f:
                empty = _ResumeFile._saved(f)[0] == 0
        except (OSError, ValueError):
            return  # absent, or not ours to judge
        if empty:
            path.unlink(missing_ok=True)

    def same_parameters(self) -> bool:
        with self._open("r") as f:
            return f.attrs.get("parameters") == self.parameters

    def __enter__(self):
        if self.path.exists():
            same = self.same_parameters()
            if not same:
                warnings.warn(f"{self.path}: saved for other parameters; starting afresh", stacklevel=3)
                self.path.unlink()
        with self._open() as f:
            f.attrs["parameters"] = self.parameters
        return self

    def __exit__(self, *exc):
        return False

    @staticmethod
    def _saved(f) -> tuple[int, dict | None]:
        """The frames a save completed and the dynamics' state with them.

        One attribute (``saved``) holds both and is written last: a save that failed
        half-way (a full disk) leaves rows beyond it, never counted, and the state of
        the frames before.  Files of earlier versions count every row."""
        if "saved" in f.attrs:
            saved = json.loads(f.attrs["saved"])
            return saved["frames"], saved["dynamics"]
        rows = min((f[key].shape[0] for key in _ResumeFile._KEYS if key in f), default=0)
        return rows, json.loads(f.attrs["dynamics"]) if "dynamics" in f.attrs else None

    @property
    def n_frames(self) -> int:
        with self._open("r") as f:
            return self._saved(f)[0]

    def save(self, frames: list[dict], dynamics: dict) -> None:
        """Record ``frames`` after those saved, then the dynamics' state, as one step."""
        with self._open() as f:
            done, _ = self._saved(f)
            for key in (*self._KEYS, *(k for k in self._OPTIONAL if k in frames[0])):
                values = np.array([frame[key] for frame in frames])
                if key not in f:
                    f.create_dataset(key, shape=(0, *values.shape[1:]), maxshape=(None, *values.shape[1:]),
                                     dtype=np.float64, chunks=(256, *values.shape[1:]))
                data = f[key]
                data.resize(done + len(values), axis=0)  # rows of a failed save are written over
                data[done:] = values
            f.flush()
            f.attrs["saved"] = json.dumps({"frames": done + len(frames), "dynamics": dynamics})

    def last(self):
        with self._open("r") as f:
            done, dynamics = self._saved(f)
            return f["positions"][done - 1], f["velocities"][done - 1], dynamics

    def publish(self, output: Path, numbers, masses, timestep, chunk: int = 5000):
        """Write the recorded frames to ``output`` as H5MD (atomically), chunk by chunk."""
        from .io.h5md import H5MDWriter

        with H5MDWriter(output, parameters=json.loads(self.parameters)) as writer, self._open("r") as f:
            # a snapshot taken while the run saves sees only the frames of completed saves
            saved = self._saved(f)[0]
            for start in range(0, saved, chunk):
                stop = min(start + chunk, saved)
                part = {key: f[key][start:stop] for key in (*self._KEYS, *self._OPTIONAL) if key in f}
                n = len(part["positions"])
                writer.write(Trajectory(
                    numbers=numbers, masses=masses, positions=part["positions"],
                    velocities=part["velocities"], forces=part["forces"],
                    times=(start + np.arange(n)) * timestep,
                    cell=part.get("cell"), pbc=np.full(3, "cell" in part),
                    frame_data={"potential_energy": part["potential_energy"]},  # eV
                ))


def finished_parameters(output: Path) -> dict | None:
    """The arguments (``parameters``) a finished run wrote ``output`` with; None for no such file."""
    if not output.is_file():
        return None
    import h5py

    try:
        with h5py.File(output, "r") as f:
            return json.loads(f["parameters"].attrs["mdsr_plugin"])
    except (OSError, KeyError, ValueError):
        return None  # not one of ours: the run writes it anew


def _at_least(kind, minimum, *, above: bool = False):
    """An argparse type: a finite ``kind`` (int or float) >= ``minimum`` (> with ``above``).

    (Local to this module, like :class:`_OneLineParser`: ``mdsr_plugin.cli`` has the same
    helpers, but the reference generator sits below the command-line layer, which
    imports it through the adapted method's prior.)
    """
    what = f"{'an integer' if kind is int else 'a finite number'} {'>' if above else '>='} {minimum}"

    def parse(text):
        value = kind(text)  # a ValueError: argparse says "invalid <name> value"
        if not (np.isfinite(value) and (value > minimum if above else value >= minimum)):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    parse.__name__ = what.removeprefix("a ").removeprefix("an ")  # named in argparse's "invalid ... value"
    return parse


class _OneLineParser(argparse.ArgumentParser):
    """Errors as one line on stderr (no usage block), exit code 2."""

    def error(self, message):
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


@closed_pipe_ends_quietly
def main(argv=None) -> int:
    """``mdsr-generate``: write a fine-resolution reference trajectory.

    Every number is checked as the arguments are parsed (exit 2, one line, nothing
    written); a failure of the run itself is one line with exit 1.
    """
    from ase.calculators.calculator import CalculationFailed

    positive_float = _at_least(float, 0, above=True)
    positive_int, non_negative_int = _at_least(int, 1), _at_least(int, 0)
    parser = _OneLineParser(
        prog="mdsr-generate",
        description="Generate a fine-resolution reference trajectory (GFN2-/GFN1-xTB through tblite, "
        "or Kohn-Sham DFT through PySCF); an interrupted run resumes when called again.",
    )
    parser.add_argument("molecule", help=f"one of {', '.join(MD17_SMILES)}, a SMILES string, or water-box:N "
                        "(a periodic box of N water molecules at 0.997 g/cm³, written wrapped)")
    parser.add_argument("-o", "--output", required=True, help="output H5MD file")
    parser.add_argument("--hamiltonian", default="gfn2-xtb",
                        help="gfn2-xtb (default), gfn1-xtb, or pyscf:FUNCTIONAL/BASIS such as pyscf:pbe/6-31g")
    parser.add_argument("--temperature", type=positive_float, default=300.0, help="K (default 300)")
    parser.add_argument("--thermostat", choices=THERMOSTATS, default="langevin", help="default langevin")
    parser.add_argument("--steps", type=positive_int, default=20000, help="production steps (default 20000)")
    parser.add_argument("--timestep", type=positive_float, default=0.5, help="fs (default 0.5)")
    parser.add_argument("--equilibration", type=non_negative_int, default=2000, help="steps discarded first (default 2000)")
    parser.add_argument("--friction", type=positive_float, default=0.01,
                        help="Langevin friction in 1/fs (default 0.01)")
    parser.add_argument("--tdamp", type=positive_float, default=50.0,
                        help="Nosé–Hoover or CSVR time constant in fs (default 50)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="default 0")
    parser.add_argument("--checkpoint-every", type=positive_int, default=1000,
                        help="steps between saves of the run's state to OUTPUT.resume.h5 (default 1000)")
    parser.add_argument("--snapshot", metavar="H5MD",
                        help="run nothing: write the frames an unfinished run with these arguments has saved so far")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    one_line_warnings("mdsr-generate")
    try:
        generate_reference(
            args.molecule, args.output, hamiltonian=args.hamiltonian, temperature=args.temperature, thermostat=args.thermostat,
            steps=args.steps, timestep=args.timestep, seed=args.seed, equilibration=args.equilibration,
            friction=args.friction, tdamp=args.tdamp, checkpoint_every=args.checkpoint_every,
            snapshot=args.snapshot,
        )
    except (ValueError, ImportError, OSError, CalculationFailed) as err:
        print(f"mdsr-generate: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mdsr-generate: interrupted; run the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
