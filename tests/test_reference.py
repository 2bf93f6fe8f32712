"""Reference-data generation: the Hamiltonian string, and resuming an interrupted run."""

from __future__ import annotations

import numpy as np
import pytest

from mdsr_plugin.hamiltonians import describe_hamiltonian, make_calculator

pytest.importorskip("tblite")


@pytest.mark.parametrize("spec, name", [("gfn2-xtb", "GFN2-xTB (tblite)"), ("GFN1-xTB", "GFN1-xTB (tblite)"),
                                        ("pyscf:pbe/6-31g", "PBE/6-31G (PySCF, density-fitted Coulomb)")])
def test_hamiltonian_names(spec, name):
    assert describe_hamiltonian(spec) == name


@pytest.mark.parametrize("spec", ["dftb", "pyscf:pbe", "pyscf:/6-31g"])
def test_unknown_hamiltonian_is_one_clear_error(spec):
    with pytest.raises(ValueError, match="unknown Hamiltonian"):
        make_calculator(spec)


@pytest.mark.parametrize("thermostat", ["nve", "langevin", "nose-hoover", "csvr"])
def test_an_interrupted_run_resumes_where_it_stopped(tmp_path, monkeypatch, thermostat):
    """Killed after 13 of 20 steps with a save every 5, the run continues from step 10 and
    gives the uninterrupted trajectory (the thermostat's state and random stream restored)."""
    from mdsr_plugin import reference
    from mdsr_plugin.io import read_trajectory

    options = dict(hamiltonian="gfn1-xtb", thermostat=thermostat, temperature=400, steps=20, equilibration=5,
                   seed=4, checkpoint_every=5)
    whole = read_trajectory(reference.generate_reference("ethanol", tmp_path / "whole.h5md", **options))

    calls = {"n": 0}
    original = reference.MDRun.record

    def dies_at_step_13(self):
        calls["n"] += 1
        if calls["n"] == 14:  # frame 0 plus 13 steps
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(reference.MDRun, "record", dies_at_step_13)
    target = tmp_path / "resumed.h5md"
    with pytest.raises(KeyboardInterrupt):
        reference.generate_reference("ethanol", target, **options)
    assert not target.exists() and (tmp_path / "resumed.h5md.resume.h5").exists()
    monkeypatch.setattr(reference.MDRun, "record", original)
    import h5py

    with h5py.File(tmp_path / "resumed.h5md.resume.h5", "a") as f:  # what a save a full disk cut leaves:
        for key in ("positions", "velocities", "forces", "potential_energy"):  # rows of zeros past the last
            f[key].resize(f[key].shape[0] + 3, axis=0)  # completed save, never counted nor published
    # what the unfinished run saved so far can be read while it is not running
    partial = read_trajectory(reference.generate_reference("ethanol", target, **options,
                                                           snapshot=tmp_path / "so_far.h5md"))
    assert partial.n_frames == 11 and not target.exists()
    np.testing.assert_allclose(partial.positions, whole.positions[:11], rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="no unfinished run"):
        reference.generate_reference("ethanol", tmp_path / "other.h5md", **options, snapshot=tmp_path / "x.h5md")
    resumed = read_trajectory(reference.generate_reference("ethanol", target, **options))
    assert not (tmp_path / "resumed.h5md.resume.h5").exists()
    assert resumed.n_frames == whole.n_frames == 21
    # Not bit for bit: the resumed SCF starts from a fresh guess, so forces differ at the
    # SCF tolerance (~1e-7 Å after 10 steps); a lost thermostat state or random stream
    # would differ by 1e-3 Å.
    np.testing.assert_allclose(resumed.positions, whole.positions, rtol=0, atol=2e-6)
    np.testing.assert_allclose(resumed.velocities, whole.velocities, rtol=0, atol=2e-7)
    np.testing.assert_allclose(resumed.times, whole.times)


def test_a_resume_file_of_other_parameters_is_not_continued(tmp_path):
    from mdsr_plugin.io import read_trajectory
    from mdsr_plugin.reference import generate_reference

    target = tmp_path / "run.h5md"
    generate_reference("ethanol", target, hamiltonian="gfn1-xtb", steps=4, equilibration=0, checkpoint_every=2)
    first = read_trajectory(target)
    import h5py

    with h5py.File(tmp_path / "run.h5md.resume.h5", "w") as f:
        f.attrs["parameters"] = "{}"
        f.create_dataset("positions", data=np.zeros((3, 9, 3)))
    target.unlink()
    with pytest.warns(UserWarning, match="other parameters"):
        generate_reference("ethanol", target, hamiltonian="gfn1-xtb", steps=4, equilibration=0, checkpoint_every=2)
    np.testing.assert_allclose(read_trajectory(target).positions, first.positions, atol=1e-10)


def test_a_finished_run_called_again_with_its_arguments_is_not_run_twice(tmp_path, monkeypatch):
    from mdsr_plugin import reference

    target = tmp_path / "run.h5md"
    options = dict(hamiltonian="gfn1-xtb", steps=3, equilibration=0, checkpoint_every=2)
    reference.generate_reference("ethanol", target, **options)
    written = target.stat().st_mtime_ns

    def must_not_run(*args):
        raise AssertionError("a finished run was started again")

    with monkeypatch.context() as patch:
        patch.setattr(reference, "MDRun", must_not_run)
        assert reference.generate_reference("ethanol", target, **options) == target
        with pytest.raises(AssertionError, match="started again"):  # other arguments: a new run
            reference.generate_reference("ethanol", target, **{**options, "steps": 4})
    assert target.stat().st_mtime_ns == written


def test_a_periodic_water_box_is_recorded_wrapped_with_its_cell(tmp_path):
    """``water-box:N``: N waters at liquid density in a cubic cell on GFN1-xTB (tblite
    handles the periodic cell), written wrapped as periodic AIMD codes write them."""
    from mdsr_plugin.io import read_trajectory
    from mdsr_plugin.periodic import is_wrapped
    from mdsr_plugin.reference import WATER_DENSITY, generate_reference, water_box

    box = water_box(8, seed=1)
    assert box.get_chemical_formula() == "H16O8" and box.pbc.all()
    grams = box.get_masses().sum() / 6.02214076e23
    assert grams / (box.get_volume() * 1e-24) == pytest.approx(WATER_DENSITY, rel=1e-3)
    target = tmp_path / "box.h5md"
    generate_reference("water-box:8", target, hamiltonian="gfn1-xtb", thermostat="nve", temperature=300,
                       steps=6, equilibration=2, checkpoint_every=4, seed=1)  # two saves: the cell appended too
    traj = read_trajectory(target)
    assert traj.n_frames == 7 and traj.n_atoms == 24 and traj.is_periodic
    np.testing.assert_allclose(traj.cell, np.broadcast_to(box.cell.array, (7, 3, 3)))
    assert is_wrapped(traj.positions, traj.cell, traj.pbc).all()
    assert np.isfinite(traj.forces).all() and traj.velocities is not None


@pytest.mark.parametrize("name, hamiltonian, message", [
    ("water-box:8", "pyscf:pbe/6-31g", "cannot run a periodic box"),
    ("water-box:many", "gfn1-xtb", "needs a number of molecules"),
])
def test_a_box_that_cannot_be_made_is_one_clear_error_and_writes_nothing(tmp_path, name, hamiltonian, message):
    from mdsr_plugin.reference import main

    assert main([name, "--hamiltonian", hamiltonian, "--steps", "2", "-o", str(tmp_path / "x.h5md")]) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("thermostat", ["langevin", "nose-hoover", "csvr", "nve"])
def test_the_recorded_forces_are_the_potentials(tmp_path, thermostat):
    """With a Langevin bath the centre of mass is held by FixCom, and ``get_forces()``
    returns constrained forces (0.2 eV/Å off for ethanol): the recorded ones must be the
    Hamiltonian's own, which quintic Hermite, force matching and the force check use."""
    from ase import Atoms
    from tblite.ase import TBLite

    from mdsr_plugin.io import read_trajectory
    from mdsr_plugin.reference import generate_reference

    traj = read_trajectory(generate_reference("ethanol", tmp_path / "r.h5md", hamiltonian="gfn1-xtb",
                                              thermostat=thermostat, steps=4, equilibration=2, seed=2))
    atoms = Atoms(numbers=traj.numbers)
    atoms.calc = TBLite(method="GFN1-xTB", verbosity=0)
    for frame in (0, 4):
        atoms.positions = traj.positions[frame]
        # 2e-4 eV/Å: a fresh SCF against the run's warm-started one; the bug was 0.2
        np.testing.assert_allclose(traj.forces[frame], atoms.get_forces(), rtol=0, atol=1e-3)


def test_csvr_holds_the_temperature_and_keeps_the_centre_of_mass_at_rest(tmp_path):
    """Bussi's velocity rescaling (CP2K's CSVR, GROMACS' v-rescale) started at 400 K with a
    target of 250 K and a 10 fs time constant: the kinetic temperature moves to the target
    within a few time constants, and scaling every momentum by one factor leaves the
    centre of mass at rest."""
    from ase.md.velocitydistribution import Stationary, ZeroRotation, thermalize_momenta
    from ase.units import kB
    from tblite.ase import TBLite

    from mdsr_plugin import units
    from mdsr_plugin.reference import MDRun, build_system

    atoms = build_system("ethanol", seed=3)
    thermalize_momenta(atoms, temperature_K=400, rng=np.random.default_rng(3))
    Stationary(atoms)
    ZeroRotation(atoms)
    run = MDRun(atoms, TBLite(method="GFN1-xTB", verbosity=0),
                dict(temperature_K=250, timestep_fs=0.5, thermostat="csvr", tdamp_fs=10.0), seed=3)
    masses = run.masses[:, None]
    temperatures, momenta = [], []
    for _ in range(200):
        run.dyn.run(1)
        velocities = run.record()["velocities"] / units.ASE_TIME_PER_FS  # Å/fs -> ASE
        temperatures.append((masses * velocities**2).sum() / (3 * len(masses) * kB))
        momenta.append((masses * velocities).sum(axis=0))
    late = np.mean(temperatures[100:])  # after 5 time constants
    assert abs(late - 250) < 0.25 * 250, late
    assert np.abs(momenta).max() < 1e-8 * np.abs(masses * velocities).sum()
