"""H5MD files written by other programs: read with the right numbers, or refused in one line.

Real files: LAMMPS ``dump h5md`` (tests/data/real/lammps/h5md_moly, no unit attributes,
species = LAMMPS atom types), ZnH5MD's ``cu.h5md`` from MDAnalysisTests (momenta labelled
``eV/fs`` that are ASE momenta), MDAnalysis' H5MDWriter run here on a known trajectory,
and ZnH5MD itself when it is installed.  Expected values are the file's own numbers
converted by hand, with the factors written out below.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import ase
import ase.io
import h5py
import MDAnalysis as mda
import numpy as np
import pytest
from MDAnalysisTests import datafiles as data

from mdsr_plugin.checks import step_velocity_ratio
from mdsr_plugin.io import FormatError, open_reader, read_trajectory, write_trajectory
from mdsr_plugin.io.h5md import unit_factor

LAMMPS = Path(__file__).parent / "data" / "real" / "lammps" / "h5md_moly" / "lammps_moly_h5md.h5"

# Hand conversions (CODATA 2014 as in ASE): 1 kcal/mol = 4.184 kJ/mol = 0.0433641 eV;
# 1 kJ/mol = 0.01036427 eV; ASE's time unit = Å·√(u/eV) = 10.180506 fs.
KCALMOL_EV = 0.0433641
KJMOL_EV = 0.01036427
ASE_TIME_FS = 10.180506


def one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and message
    return message


@pytest.fixture
def moly_xyz(tmp_path):
    """The LAMMPS run's elements (its data file says type 1 = Mo), as an XYZ topology."""
    with h5py.File(LAMMPS) as f:
        positions = f["particles/all/position/value"][0]
    path = tmp_path / "moly.xyz"
    ase.io.write(path, ase.Atoms("Mo1024", positions=positions))
    return path


# ------------------------------------------------------------------------ LAMMPS dump h5md
def test_lammps_file_is_refused_in_one_line_naming_units_and_elements():
    with pytest.raises(FormatError) as excinfo:
        read_trajectory(LAMMPS)
    message = one_line_error(excinfo)
    assert "LAMMPS" in message and "records no units" in message and "units=" in message
    assert "LAMMPS atom types, not elements" in message and "--top" in message


def test_lammps_file_needs_elements_even_with_units():
    with pytest.raises(FormatError) as excinfo:
        read_trajectory(LAMMPS, units="metal")
    assert "LAMMPS atom types, not elements" in one_line_error(excinfo)


def test_lammps_file_needs_units_even_with_elements(moly_xyz):
    with pytest.raises(FormatError) as excinfo:
        read_trajectory(LAMMPS, topology=moly_xyz)
    message = one_line_error(excinfo)
    assert "records no units" in message and "atom types" not in message


def test_lammps_reduced_units_are_refused(moly_xyz):
    with pytest.raises(FormatError) as excinfo:
        read_trajectory(LAMMPS, topology=moly_xyz, units="lj")
    assert "lj is reduced" in one_line_error(excinfo)


def test_lammps_file_in_real_units(moly_xyz):
    with open_reader(LAMMPS, topology=moly_xyz, units="real") as reader:
        traj = reader.read()
        notes = " ".join(reader.notes)
    assert "LAMMPS real" in notes and "elements from moly.xyz" in notes
    assert (traj.n_frames, traj.n_atoms) == (11, 1024)
    assert (traj.numbers == 42).all() and traj.masses[0] == pytest.approx(95.94, abs=0.02)
    # README: first position (0, 0, 0), the next atom at (3, 3, 3) Å
    np.testing.assert_allclose(traj.positions[0, :2], [[0, 0, 0], [3, 3, 3]], atol=1e-12)
    # real: velocities are Å/fs as stored (0.017285, 0.012178, -0.003150)
    np.testing.assert_allclose(traj.velocities[0, 0], [0.01728500246, 0.01217787978, -0.00315009340], rtol=1e-8)
    # time = step × dt: steps 1..11, time 0.5..5.5 fs
    np.testing.assert_array_equal(traj.steps, np.arange(1, 12))
    np.testing.assert_allclose(traj.times, 0.5 * np.arange(1, 12))
    assert traj.dt == pytest.approx(0.5)
    np.testing.assert_allclose(traj.cell[0], 48.0 * np.eye(3))
    assert traj.pbc.all()
    with h5py.File(LAMMPS) as f:
        raw_forces = f["particles/all/force/value"][()]
    np.testing.assert_allclose(traj.forces, raw_forces * KCALMOL_EV, rtol=1e-5)


def test_lammps_file_in_metal_units(moly_xyz):
    traj = read_trajectory(LAMMPS, topology=moly_xyz, units="metal")
    # metal: Å/ps → Å/fs is ÷1000; the times 0.5..5.5 are ps
    np.testing.assert_allclose(traj.velocities[0, 0], [1.728500246e-5, 1.217787978e-5, -3.15009340e-6], rtol=1e-8)
    np.testing.assert_allclose(traj.times, 500.0 * np.arange(1, 12))
    with h5py.File(LAMMPS) as f:
        np.testing.assert_array_equal(traj.forces, f["particles/all/force/value"][()])  # eV/Å as stored


def test_lammps_file_with_dt_still_needs_units(moly_xyz):
    """--dt replaces the file's times, not the positions' and velocities' units."""
    with pytest.raises(FormatError, match="records no units"):
        read_trajectory(LAMMPS, topology=moly_xyz, dt=2.0)
    traj = read_trajectory(LAMMPS, topology=moly_xyz, units="metal", dt=2.0)
    np.testing.assert_allclose(traj.times, 2.0 * np.arange(11))


def test_cli_refuses_the_lammps_file_in_one_line(tmp_path, moly_xyz, capsys):
    from mdsr_plugin.cli import main

    code = main([str(LAMMPS), "--factor", "2", "-o", str(tmp_path / "fine.h5md"), "--top", str(moly_xyz),
                 "--method", "linear", "-q"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "records no units" in err and "Traceback" not in err
    assert not (tmp_path / "fine.h5md").exists()


# ------------------------------------------------------------------------------ ZnH5MD
def test_znh5md_cu_momenta_become_velocities():
    """cu.h5md (ZnH5MD 0.2): momenta labelled ``eV/fs`` are ASE momenta, u·Å per ASE time unit."""
    with open_reader(data.H5MD_energy) as reader:
        traj = reader.read()
        assert "per ASE time unit" in " ".join(reader.notes)
    assert (traj.n_frames, traj.n_atoms) == (20, 108)
    assert (traj.numbers == 29).all() and traj.masses[0] == pytest.approx(63.546)
    np.testing.assert_allclose(traj.positions[0, 0], [0.07884859235, -0.03009585, -0.02360368], rtol=1e-6)
    # p = (0.43268194, -0.54752726, 0.32771397) u·Å/ASE time; v = p / 63.546 u / 10.180506 fs
    np.testing.assert_allclose(traj.velocities[0, 0], [6.688230e-4, -8.463464e-4, 5.065676e-4], rtol=2e-6)
    np.testing.assert_allclose(traj.forces[0, 0], [-0.304377527, 1.78018706e-4, 0.319261796], rtol=1e-6)
    np.testing.assert_allclose(traj.times, np.arange(20.0))  # labelled fs
    np.testing.assert_allclose(traj.cell[0], 10.83 * np.eye(3))


def test_znh5md_cu_velocities_conserve_energy():
    """Only this reading of the momenta conserves E_kin + E_pot (the file's energy observable)."""
    traj = read_trajectory(data.H5MD_energy)
    with h5py.File(data.H5MD_energy) as f:
        potential = f["observables/atoms/energy/value"][()]  # eV
    # ½ m v² in u·Å²/fs² → eV: × (ASE_TIME_FS)² (1 eV = 1 u·Å²/ASE time²)
    kinetic = 0.5 * np.einsum("n,fni->f", traj.masses, traj.velocities**2) * ASE_TIME_FS**2
    total = kinetic + potential
    assert total.std() / total.mean() < 2e-3
    assert kinetic[0] == pytest.approx(0.9637, rel=1e-3)  # 69 K for 108 atoms: 1.5 N kB T
    # Its times are ZnH5MD's timestep argument (1 fs per frame here), not the run's: the
    # velocities carry the atoms ~64× less far than they move, which upsampling refuses.
    assert step_velocity_ratio(traj) > 5


def test_znh5md_malformed_file_reads_or_refuses_in_one_line():
    try:
        traj = read_trajectory(data.H5MD_malformed)
    except FormatError as err:
        assert "\n" not in str(err)
    else:
        assert traj.n_frames == 20 and (traj.numbers == 29).all()


def _atoms_frames(n_frames=4):
    """Cu with ASE momenta and forces: what ZnH5MD is given."""
    from ase.build import bulk
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(7)
    frames = []
    for _ in range(n_frames):
        atoms = bulk("Cu", cubic=True)
        atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
        atoms.set_velocities(rng.normal(0, 0.02, atoms.positions.shape))  # Å per ASE time unit
        atoms.calc = SinglePointCalculator(atoms, forces=rng.normal(0, 0.3, atoms.positions.shape), energy=0.0)
        frames.append(atoms)
    return frames


def _write_like_znh5md_048(path, frames, timestep, offset=None):
    """The layout znh5md 0.4.8 writes (``IO(path, timestep=...).extend(frames)``, checked by
    running it): creator ``znh5md``, the fixed-increment step/time form, velocity values
    ``atoms.get_velocities()`` labelled ``Angstrom/fs``, time-dependent float species."""
    with h5py.File(path, "w") as f:
        f.create_group("h5md").attrs["version"] = np.array([1, 1])
        f["h5md"].create_group("creator").attrs.update({"name": "znh5md", "version": "0.4.8"})
        group = f.create_group("particles/atoms")
        group.create_group("box").attrs.update({"dimension": 3, "boundary": ["periodic"] * 3})
        entries = {
            "position": ([a.positions for a in frames], "Angstrom"),
            "velocity": ([a.get_velocities() for a in frames], "Angstrom/fs"),
            "force": ([a.get_forces() for a in frames], "eV/Angstrom"),
            "species": ([a.numbers.astype(float) for a in frames], None),
            "box/edges": ([a.cell[:] for a in frames], "Angstrom"),
        }
        for name, (values, unit) in entries.items():
            element = group.create_group(name)
            element.create_dataset("value", data=np.array(values))
            if unit:
                element["value"].attrs["unit"] = unit
            element.create_dataset("step", data=1)
            element.create_dataset("time", data=float(timestep))
            element["time"].attrs["unit"] = "fs"
            if offset is not None:
                element["step"].attrs["offset"] = int(offset / timestep)
                element["time"].attrs["offset"] = offset


@pytest.mark.parametrize("offset", [None, 100.0])
def test_znh5md_048_layout_fixed_increment_times(tmp_path, offset):
    frames = _atoms_frames()
    path = tmp_path / "zn.h5"
    _write_like_znh5md_048(path, frames, timestep=2.0, offset=offset)
    traj = read_trajectory(path)
    start = offset or 0.0
    np.testing.assert_allclose(traj.times, start + 2.0 * np.arange(4))
    np.testing.assert_array_equal(traj.steps, start / 2.0 + np.arange(4))
    # Å per ASE time unit → Å/fs: ÷ 10.180506
    np.testing.assert_allclose(traj.velocities, np.array([a.get_velocities() for a in frames]) / ASE_TIME_FS,
                               rtol=1e-6)
    np.testing.assert_allclose(traj.forces, np.array([a.get_forces() for a in frames]))
    assert (traj.numbers == 29).all()


def test_znh5md_round_trip_when_installed(tmp_path):
    znh5md = pytest.importorskip("znh5md")
    frames = _atoms_frames()
    path = tmp_path / "zn.h5"
    znh5md.IO(path, timestep=2.0).extend(frames)
    traj = read_trajectory(path)
    np.testing.assert_allclose(traj.positions, np.array([a.positions for a in frames]), atol=1e-12)
    np.testing.assert_allclose(traj.velocities, np.array([a.get_velocities() for a in frames]) / ASE_TIME_FS,
                               rtol=1e-6)
    np.testing.assert_allclose(traj.times, 2.0 * np.arange(4))


# ------------------------------------------------------------------- MDAnalysis H5MDWriter
MDA_UNITS = {
    "mdanalysis-default": dict(lengthunit="Angstrom", timeunit="ps", velocityunit="Angstrom/ps",
                               forceunit="kJ/(mol*Angstrom)"),
    "gromacs": dict(lengthunit="nm", timeunit="ps", velocityunit="nm/ps", forceunit="kJ/(mol*nm)"),
    "fs-kcal": dict(lengthunit="Angstrom", timeunit="fs", velocityunit="Angstrom/fs",
                    forceunit="kcal/(mol*Angstrom)"),
}


def _mdanalysis_h5md(path, traj, **writer_units):
    """``traj`` (internal units) written by MDAnalysis' own H5MDWriter in ``writer_units``."""
    from MDAnalysis.coordinates.memory import MemoryReader

    from mdsr_plugin.io.mdanalysis import cell_to_dimensions

    universe = mda.Universe.empty(traj.n_atoms, trajectory=True)
    universe.load_new(traj.positions.copy(), format=MemoryReader, order="fac",
                      velocities=traj.velocities * 1000.0,  # Å/ps
                      forces=traj.forces / KJMOL_EV,  # kJ/(mol·Å)
                      dimensions=np.array([cell_to_dimensions(c) for c in traj.cell]),
                      dt=traj.dt / 1000.0, time_offset=traj.times[0] / 1000.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mda.Writer(str(path), n_atoms=traj.n_atoms, format="H5MD", **writer_units) as writer:
            for _ in universe.trajectory:
                writer.write(universe.atoms)


@pytest.mark.parametrize("name", MDA_UNITS)
def test_mdanalysis_h5md_writer_round_trip(tmp_path, small_traj, name):
    path = tmp_path / "mda.h5md"
    _mdanalysis_h5md(path, small_traj, **MDA_UNITS[name])
    with pytest.raises(FormatError) as excinfo:  # MDAnalysis writes no species
        read_trajectory(path)
    assert "no species" in one_line_error(excinfo)
    topology = tmp_path / "top.xyz"
    ase.io.write(topology, ase.Atoms(numbers=small_traj.numbers, positions=small_traj.positions[0]))
    back = read_trajectory(path, topology=topology)
    np.testing.assert_array_equal(back.numbers, small_traj.numbers)
    np.testing.assert_allclose(back.positions, small_traj.positions, atol=1e-5)  # float32
    np.testing.assert_allclose(back.velocities, small_traj.velocities, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(back.forces, small_traj.forces, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(back.times, small_traj.times, rtol=1e-6)
    np.testing.assert_allclose(back.cell, small_traj.cell, atol=1e-4)


# ----------------------------------------------------------------------- units and layouts
@pytest.mark.parametrize(
    "unit, quantity, mda_unit",
    [
        ("nm", "length", "nm"), ("Angstrom", "length", "Angstrom"), ("angstrom", "length", "Angstrom"),
        ("A", "length", "Angstrom"), ("\u00c5", "length", "Angstrom"), ("ps", "time", "ps"), ("fs", "time", "fs"),
        ("AKMA", "time", "AKMA"), ("nm ps-1", "velocity", "nm/ps"), ("Angstrom ps-1", "velocity", "Angstrom/ps"),
        ("\u00c5/ps", "velocity", "Angstrom/ps"), ("m s-1", "velocity", "m/s"),
        ("kJ mol-1 nm-1", "force", "kJ/(mol*nm)"), ("kcal mol-1 A-1", "force", "kcal/(mol*Angstrom)"),
        ("kJ/(mol*nm)", "force", "kJ/(mol*nm)"), ("N", "force", "N"),
    ],
)
def test_unit_factors_agree_with_mdanalysis(unit, quantity, mda_unit):
    """Into Å, fs, Å/fs, eV/Å; MDAnalysis converts into Å, ps, Å/ps, kJ/(mol·Å)."""
    from MDAnalysis import units as mda_units

    base = {"length": "Angstrom", "time": "ps", "velocity": "Angstrom/ps", "force": "kJ/(mol*Angstrom)"}[quantity]
    expected = mda_units.convert(1.0, mda_unit, base)
    expected *= {"length": 1.0, "time": 1000.0, "velocity": 1e-3, "force": KJMOL_EV}[quantity]
    assert unit_factor(unit, quantity) == pytest.approx(expected, rel=2e-6)


def test_unit_factors_by_hand():
    assert unit_factor("eV/Angstrom", "force") == 1.0
    assert unit_factor("kJ mol-1 nm-1", "force") == pytest.approx(0.1 * KJMOL_EV, rel=1e-6)
    assert unit_factor("bohr", "length") == pytest.approx(0.529177, rel=1e-6)
    assert unit_factor("g mol-1", "mass") == pytest.approx(1.0, rel=1e-6)
    assert unit_factor("amu Angstrom ps-1", "momentum") == pytest.approx(1e-3)
    for unit, quantity in [("nm", "velocity"), ("furlong", "length"), ("eV/fs", "momentum")]:
        with pytest.raises(FormatError):
            unit_factor(unit, quantity)


def _own_file(tmp_path, traj, name="own.h5md"):
    path = tmp_path / name
    write_trajectory(path, traj)
    return path


def test_unknown_writer_without_units_is_refused_naming_what_lacks_one(tmp_path, small_traj):
    path = _own_file(tmp_path, small_traj)
    with h5py.File(path, "r+") as f:
        f["h5md/creator"].attrs["name"] = "somecode"
        for name in ("position/value", "velocity/value", "position/time"):
            del f["particles/all"][name].attrs["unit"]
    with pytest.raises(FormatError) as excinfo:
        read_trajectory(path)
    message = one_line_error(excinfo)
    assert "position, time, velocity have no unit attribute" in message and "units=" in message
    assert "'somecode' are not known to be atomic numbers" in message
    topology = tmp_path / "top.xyz"
    ase.io.write(topology, ase.Atoms(numbers=small_traj.numbers, positions=small_traj.positions[0]))
    back = read_trajectory(path, units="internal", topology=topology)
    np.testing.assert_allclose(back.velocities, small_traj.velocities)
    np.testing.assert_array_equal(back.numbers, small_traj.numbers)


def test_wrong_unit_is_refused_in_one_line(tmp_path, small_traj):
    path = _own_file(tmp_path, small_traj)
    with h5py.File(path, "r+") as f:
        f["particles/all/velocity/value"].attrs["unit"] = "nm"
    with pytest.raises(FormatError) as excinfo:
        read_trajectory(path)
    assert "velocity/value: unit 'nm' is no velocity unit" in one_line_error(excinfo)


def test_fixed_species_and_box_and_other_units(tmp_path, small_traj):
    """A LAMMPS-style copy: fixed species dataset of types plus a fixed box, labelled nm and ps."""
    path = _own_file(tmp_path, small_traj)
    with h5py.File(path, "r+") as f:
        f["h5md/creator"].attrs["name"] = "lammps"
        group = f["particles/all"]
        del group["box/edges"]
        group["box"].create_dataset("edges", data=np.diag(small_traj.cell[0]) / 10.0).attrs["unit"] = "nm"
        group["position/value"][...] = group["position/value"][()] / 10.0
        group["position/value"].attrs["unit"] = "nm"
        group["position/time"][...] = group["position/time"][()] / 1000.0
        group["position/time"].attrs["unit"] = "ps"
        group["species"][...] = [1, 2, 2, 3]  # LAMMPS types
    topology = tmp_path / "top.xyz"
    ase.io.write(topology, ase.Atoms(numbers=small_traj.numbers, positions=small_traj.positions[0]))
    back = read_trajectory(path, topology=topology)
    np.testing.assert_allclose(back.positions, small_traj.positions, rtol=1e-12)
    np.testing.assert_allclose(back.times, small_traj.times, rtol=1e-12)
    np.testing.assert_allclose(back.cell[0], np.diag(np.diag(small_traj.cell[0])), rtol=1e-12)
    np.testing.assert_array_equal(back.numbers, small_traj.numbers)


def test_velocities_at_other_steps_are_refused(tmp_path, small_traj):
    path = _own_file(tmp_path, small_traj)
    with h5py.File(path, "r+") as f:
        velocity = f["particles/all/velocity"]
        for key in ("value", "step", "time"):
            kept = velocity[key][::2]
            attrs = dict(velocity[key].attrs)
            del velocity[key]
            velocity.create_dataset(key, data=kept).attrs.update(attrs)
    with pytest.raises(FormatError) as excinfo:
        read_trajectory(path)
    assert "velocity is stored for 3 frames, positions for 6" in one_line_error(excinfo)


def test_species_changing_between_frames_are_refused(tmp_path):
    path = tmp_path / "zn.h5"
    _write_like_znh5md_048(path, _atoms_frames(), timestep=1.0)
    with h5py.File(path, "r+") as f:
        f["particles/atoms/species/value"][-1, 0] = 28.0
    with pytest.raises(FormatError) as excinfo:
        read_trajectory(path)
    assert "species changes between frames" in one_line_error(excinfo)


def test_our_files_still_read_without_options(tmp_path, small_traj):
    back = read_trajectory(_own_file(tmp_path, small_traj))
    np.testing.assert_array_equal(back.numbers, small_traj.numbers)
    np.testing.assert_allclose(back.masses, small_traj.masses)
    np.testing.assert_allclose(back.velocities, small_traj.velocities)


def test_lammps_copy_with_fixed_increment_time(tmp_path, moly_xyz):
    """The real LAMMPS file, its per-frame step/time replaced by H5MD 1.1's increments with offsets."""
    path = tmp_path / "moly.h5"
    shutil.copy(LAMMPS, path)
    with h5py.File(path, "r+") as f:
        for name in ("position", "velocity", "force", "box/edges"):
            element = f["particles/all"][name]
            if "step" in element:  # position's are hard links to box/edges'
                del element["step"], element["time"]
            element.create_dataset("step", data=1).attrs["offset"] = 1
            element.create_dataset("time", data=0.5).attrs["offset"] = 0.5
    traj = read_trajectory(path, topology=moly_xyz, units="real")
    np.testing.assert_allclose(traj.times, 0.5 * np.arange(1, 12))
    np.testing.assert_array_equal(traj.steps, np.arange(1, 12))


def test_lammps_units_flag_reaches_the_h5md_reader_from_the_command_line(tmp_path, capsys):
    """--lammps-units names the unit system LAMMPS' dump h5md does not record."""
    from mdsr_plugin.cli import main

    lammps_h5 = Path(__file__).parent / "data" / "real" / "lammps" / "h5md_moly" / "lammps_moly_h5md.h5"
    ase.io.write(tmp_path / "mo.xyz", ase.Atoms("Mo1024", positions=np.zeros((1024, 3))))
    code = main([str(lammps_h5), "--lammps-units", "metal", "--top", str(tmp_path / "mo.xyz"), "--factor", "2",
                 "-o", str(tmp_path / "fine.h5md"), "--method", "hermite"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "LAMMPS metal" in err and "coarse step 500 fs" in err  # time = step × 0.5 ps
    code = main([str(lammps_h5), "--type-map", "1:Mo", "--factor", "2", "-o", str(tmp_path / "x.h5md")])
    assert code == 1 and "--type-map goes with a LAMMPS dump" in capsys.readouterr().err
