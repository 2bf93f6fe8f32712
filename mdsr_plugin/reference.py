"""Reference trajectories at fine time resolution: GFN2-xTB (tblite) through ASE molecular dynamics.

These are the ground truth that classical interpolators and neural models are
measured against, and the training data of the neural models.  Generation needs
the optional extra ``pip install mdsr_plugin[reference]`` (tblite, rdkit).

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
import logging
import sys
import time
from pathlib import Path

import numpy as np

from .trajectory import Trajectory

__all__ = ["MD17_SMILES", "build_molecule", "generate_reference", "main"]

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

THERMOSTATS = ("langevin", "nose-hoover")


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
    temperature: float = 300.0,
    thermostat: str = "langevin",
    steps: int = 20000,
    timestep: float = 0.5,
    seed: int = 0,
    equilibration: int = 2000,
    friction: float = 0.01,
    tdamp: float = 50.0,
    chunk: int = 5000,
) -> Path:
    """Run GFN2-xTB molecular dynamics and write every step to an H5MD file.

    Parameters
    ----------
    molecule : str
        Extended-MD17 name (see :data:`MD17_SMILES`) or a SMILES string.
    output : path-like
        H5MD file to write: positions (Å), velocities (Å/fs), forces (eV/Å), time (fs),
        and the potential energy (eV) in ``observables/potential_energy``.
    temperature : float
        Thermostat temperature in K; also the initial Maxwell–Boltzmann temperature.
    thermostat : {"langevin", "nose-hoover"}
        Stochastic Langevin (``friction`` in 1/fs) or deterministic Nosé–Hoover
        chain (``tdamp`` in fs).
    steps : int
        Production steps written to ``output``.
    timestep : float
        Integration step in fs.
    seed : int
        Seeds the conformer embedding, the initial velocities and the Langevin noise.
    equilibration : int
        Steps run and discarded before production.

    Returns
    -------
    Path of the written file.
    """
    from ase import units as ase_units
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin
    from ase.md.nose_hoover_chain import NoseHooverChainNVT
    from ase.md.velocitydistribution import Stationary, ZeroRotation, thermalize_momenta
    from tblite.ase import TBLite

    from . import units
    from .io.h5md import H5MDWriter

    if thermostat not in THERMOSTATS:
        raise ValueError(f"thermostat must be one of {THERMOSTATS}, got {thermostat!r}")
    rng = np.random.default_rng(seed)
    atoms = build_molecule(molecule, seed=seed)
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    thermalize_momenta(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms)
    ZeroRotation(atoms)
    dt = timestep * ase_units.fs
    if thermostat == "langevin":
        # Centre-of-mass fixed by a constraint: Langevin's own fixcm biases small molecules.
        atoms.set_constraint(FixCom())
        dyn = Langevin(
            atoms, dt, temperature_K=temperature, friction=friction / ase_units.fs, fixcm=False, rng=rng
        )
    else:
        dyn = NoseHooverChainNVT(atoms, dt, temperature_K=temperature, tdamp=tdamp * ase_units.fs)
    dyn.run(equilibration)

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
        tdamp_fs=tdamp if thermostat == "nose-hoover" else None,
        potential="GFN2-xTB (tblite)",
    )
    numbers = atoms.numbers.copy()
    masses = atoms.get_masses()
    buffers = {"positions": [], "velocities": [], "forces": [], "energy": []}

    def record():
        buffers["positions"].append(atoms.get_positions())
        buffers["velocities"].append(atoms.get_velocities() * units.ASE_TIME_PER_FS)
        buffers["forces"].append(atoms.get_forces())
        buffers["energy"].append(atoms.get_potential_energy())

    start = time.perf_counter()
    written = 0
    with H5MDWriter(output, parameters=parameters) as writer:
        record()
        for step in range(1, steps + 1):
            dyn.run(1)
            record()
            if len(buffers["positions"]) >= chunk or step == steps:
                n = len(buffers["positions"])
                writer.write(
                    Trajectory(
                        numbers=numbers,
                        masses=masses,
                        positions=np.array(buffers["positions"]),
                        velocities=np.array(buffers["velocities"]),
                        forces=np.array(buffers["forces"]),
                        times=(written + np.arange(n)) * timestep,
                        frame_data={"potential_energy": np.array(buffers["energy"])},  # eV
                    )
                )
                written += n
                for values in buffers.values():
                    values.clear()
                log.info("%s: %d/%d steps, %.1f ms/step", output, step, steps,
                         1e3 * (time.perf_counter() - start) / step)
    return Path(output)


def main(argv=None) -> int:
    """``mdsr-generate``: write a GFN2-xTB reference trajectory."""
    parser = argparse.ArgumentParser(
        prog="mdsr-generate",
        description="Generate a fine-resolution GFN2-xTB reference trajectory (needs tblite, rdkit).",
    )
    parser.add_argument("molecule", help=f"one of {', '.join(MD17_SMILES)} or a SMILES string")
    parser.add_argument("-o", "--output", required=True, help="output H5MD file")
    parser.add_argument("--temperature", type=float, default=300.0, help="K (default 300)")
    parser.add_argument("--thermostat", choices=THERMOSTATS, default="langevin")
    parser.add_argument("--steps", type=int, default=20000, help="production steps")
    parser.add_argument("--timestep", type=float, default=0.5, help="fs (default 0.5)")
    parser.add_argument("--equilibration", type=int, default=2000, help="steps discarded first")
    parser.add_argument("--friction", type=float, default=0.01, help="Langevin friction in 1/fs (default 0.01)")
    parser.add_argument("--tdamp", type=float, default=50.0, help="Nosé–Hoover time constant in fs (default 50)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        generate_reference(
            args.molecule, args.output, temperature=args.temperature, thermostat=args.thermostat,
            steps=args.steps, timestep=args.timestep, seed=args.seed, equilibration=args.equilibration,
            friction=args.friction, tdamp=args.tdamp,
        )
    except (ValueError, ImportError) as err:
        print(f"mdsr-generate: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
