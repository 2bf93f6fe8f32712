"""GROMACS, CHARMM, AMBER and LAMMPS files read through io/mdanalysis.py and io/lammps.py,
checked against each file's own numbers converted by hand (issue #27).

Every expected value below is the raw number in the file times a factor written out
here, not taken from mdsr_plugin.units:

    1 eV = 96.4853321 kJ/mol            1 kcal/mol = 4.184 kJ/mol = 0.0433641 eV
    1 nm = 10 Å, 1 ps = 1000 fs         AMBER velocity = stored × 20.455 Å/ps
    1 AKMA time = 48.88821 fs           1 m/s = 1e-5 Å/fs
    1 N = 1 J/m = 1/(1.602176634e-19 × 1e10) eV/Å
    1 u = 1.66053906660e-27 kg

Real files come from MDAnalysisTests (LGPL, installed with the test extras); the LAMMPS
dumps with known real/metal/si values are written by hand here, since no real dump with
velocities, forces and a log that states its units is freely available.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import MDAnalysis as mda
import numpy as np
import pytest
from MDAnalysisTests import datafiles as data

from mdsr_plugin.io import FormatError, open_reader, read_trajectory
from mdsr_plugin.io.lammps import parse_type_map
from mdsr_plugin.io.mdanalysis import MDAnalysisReader, universe_identities

EV_IN_KJMOL = 96.4853321
KCALMOL_IN_EV = 4.184 / EV_IN_KJMOL  # 0.0433641
AKMA_IN_FS = 48.88821
AMBER_VELOCITY_SCALE = 20.455
EV_IN_J = 1.602176634e-19
U_IN_KG = 1.66053906660e-27


def one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message, message
    return message


def universe(*files, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mda.Universe(*map(str, files), **kwargs)


def counts(numbers) -> dict[int, int]:
    values, n = np.unique(numbers, return_counts=True)
    return dict(zip(values.tolist(), n.tolist()))


# ------------------------------------------------------------------ GROMACS TPR with TIP4P
@pytest.mark.parametrize("trajectory, topology, first_site, n_sites", [
    (data.TRR_xvf, data.TPR_xvf, 921, 4612),  # cobrotoxin in TIP4P: OW HW1 HW2 MW
    (data.TRR_xvf, data.TPR_xvf_2024_4, 921, 4612),  # the same run, TPR of GROMACS 2024.4
    (data.TRR, data.TPR, 3344, 11084),  # adenylate kinase, OPLS-AA + TIP4P
    (data.XTC, data.GRO, 3344, 11084),  # the same as GRO: no masses in the file, MW by name
    (data.H5MD_xvf, data.TPR_xvf, 921, 4612),  # H5MD reader, identities from the TPR
], ids=["cobrotoxin-trr", "cobrotoxin-tpr2024", "adk-trr", "adk-gro-xtc", "cobrotoxin-h5md"])
def test_tip4p_virtual_sites_are_refused_never_read_as_oxygen(trajectory, topology, first_site, n_sites):
    with pytest.raises(FormatError) as excinfo:
        read_trajectory(trajectory, topology=topology)
    message = one_line_error(excinfo)
    assert f"atom {first_site} (MW) is a massless virtual site" in message
    assert f"{n_sites} in all" in message and Path(topology).name in message
    assert universe(topology).atoms[first_site].name == "MW"


def test_tip4p_refused_through_the_mdanalysis_integration_too():
    with pytest.raises(FormatError, match="massless virtual site"):
        MDAnalysisReader.from_universe(universe(data.TPR_xvf, data.TRR_xvf))


def test_tpr_elements_masses_and_units_without_the_virtual_sites(tmp_path):
    """The cobrotoxin run with its MW sites removed, as the refusal advises, frame by frame
    from the TRR's raw numbers (nm, nm/ps, kJ/(mol·nm), ps)."""
    from MDAnalysis.lib.formats.libmdaxdr import TRRFile

    full = universe(data.TPR_xvf)
    keep = np.flatnonzero(full.atoms.names != "MW")
    subset = tmp_path / "no_vsites.trr"
    raw = []
    with TRRFile(str(data.TRR_xvf)) as source, TRRFile(str(subset), "w") as sink:
        for frame in source:
            raw.append(frame)
            sink.write(frame.x[keep], frame.v[keep], frame.f[keep], frame.box, frame.step, frame.time,
                       frame.lmbda, len(keep))
    atoms = mda.Merge(full.atoms[keep])
    atoms.load_new(str(subset), format="TRR")
    traj = MDAnalysisReader.from_universe(atoms).read()

    # Elements from the TPR's atomic numbers, not from the OPLS types (opls_113 read as O before).
    assert counts(traj.numbers) == {1: 9662, 6: 277, 7: 97, 8: 4710, 11: 8, 16: 8, 17: 11}
    symbols = {"H": 1, "C": 6, "N": 7, "O": 8, "Na": 11, "S": 16, "Cl": 17}
    np.testing.assert_array_equal(traj.numbers, [symbols[e] for e in full.atoms.elements[keep]])
    np.testing.assert_allclose(traj.masses, full.atoms.masses[keep])  # the TPR's own masses
    assert traj.masses[0] == pytest.approx(14.0067, abs=1e-4)  # N of the first residue

    x = np.array([f.x[keep] for f in raw], dtype=np.float64)  # nm
    v = np.array([f.v[keep] for f in raw], dtype=np.float64)  # nm/ps
    f = np.array([f.f[keep] for f in raw], dtype=np.float64)  # kJ/(mol·nm)
    np.testing.assert_allclose(traj.positions, x * 10.0, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(traj.velocities, v * 10.0 / 1000.0, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(traj.forces, f / 10.0 / EV_IN_KJMOL, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(traj.times, [r.time * 1000.0 for r in raw])  # 0, 50, 100 ps
    assert traj.dt == pytest.approx(50_000.0)
    # Quintic Hermite's acceleration of the first oxygen of water, F/m, with m = 15.9994 u.
    ow = int(np.flatnonzero(full.atoms.names[keep] == "OW")[0])
    assert traj.masses[ow] == pytest.approx(15.9994, abs=1e-4) and traj.numbers[ow] == 8


@pytest.mark.parametrize("trajectory, topology, frames", [
    (data.DCD, data.PSF, 98), (data.XTC, data.TPR, 10), (data.TRR, data.TPR, 10)], ids=["dcd", "xtc", "trr"])
@pytest.mark.parametrize("cut", [1, 50, 1000])
def test_a_binary_trajectory_cut_inside_its_last_frame_is_refused(tmp_path, trajectory, topology, frames, cut):
    """MDAnalysis read a cut DCD or XTC without its last frame and said nothing (97 of 98
    frames), and a cut TRR failed on 'a periodic cell of volume 0'."""
    from mdsr_plugin.io.binary_ends import check_complete

    whole = Path(trajectory)
    check_complete(whole, whole.suffix[1:])  # the whole file passes (its TPR's TIP4P sites are refused later)
    assert len(universe(topology, whole).trajectory) == frames
    part = tmp_path / ("cut" + whole.suffix)
    part.write_bytes(whole.read_bytes()[:-cut])
    with pytest.raises(FormatError, match=f"ends inside frame {frames - 1} \\(cut short.*after frame {frames - 2}$"):
        read_trajectory(part, topology=topology)


@pytest.mark.parametrize("first_has_velocities", [True, False], ids=["every-2nd-from-0", "every-2nd-from-1"])
@pytest.mark.parametrize("chunk_size", [1, 2, 1000])
def test_a_trr_whose_velocities_are_saved_less_often_than_its_positions_is_refused(tmp_path, first_has_velocities,
                                                                                     chunk_size):
    """GROMACS writes velocities every nstvout steps and positions every nstxout: frames
    without velocities were filled from uninitialised memory (1e-303 Å/fs), or with zeros,
    depending on the chunk size.  Every frame must store what the first one read stores."""
    from MDAnalysis.lib.formats.libmdaxdr import TRRFile

    full = universe(data.TPR_xvf)
    keep = np.flatnonzero(full.atoms.names != "MW")
    subset = tmp_path / "every_2nd_velocity.trr"
    with TRRFile(str(data.TRR_xvf)) as source, TRRFile(str(subset), "w") as sink:
        for k, frame in enumerate(source):
            with_velocities = (k % 2 == 0) == first_has_velocities
            sink.write(frame.x[keep], frame.v[keep] if with_velocities else None, None, frame.box, frame.step,
                       frame.time, frame.lmbda, len(keep))
    atoms = mda.Merge(full.atoms[keep])
    atoms.load_new(str(subset), format="TRR")
    assert [ts.has_velocities for ts in atoms.trajectory] == [first_has_velocities, not first_has_velocities,
                                                               first_has_velocities]
    reader = MDAnalysisReader.from_universe(atoms)
    with pytest.raises(FormatError) as refused:
        list(reader.chunks(chunk_size))
    message = str(refused.value)
    assert "\n" not in message and "stores velocities and frame" in message and "gmx trjconv" in message


@pytest.mark.parametrize("trajectory, topology, expected", [
    # PSF masses only (no elements): 1.008 H, 12.011 C, 14.007 N, 15.999 O, 32.06 S.
    (data.DCD, data.PSF, {1: 1685, 6: 1040, 7: 289, 8: 320, 16: 7}),
    # Old prmtop without ATOMIC_NUMBER: AMBER's rounded masses 1.008, 12.01, 14.01, 16.00, 22.99.
    (data.NCDF, data.PRMncdf, None),
    # parm7 with ATOMIC_NUMBER: ACE + TIP3P.
    (data.TRJ_NCBOX, data.PRM_NCBOX, {1: 931, 6: 2, 8: 465}),
], ids=["charmm-psf-dcd", "amber-prmtop-ncdf", "amber-parm7-ncdf"])
def test_elements_of_other_topologies(trajectory, topology, expected):
    traj = read_trajectory(trajectory, topology=topology)
    top = universe(topology)
    by_mass = {1.008: 1, 12.011: 6, 12.01: 6, 14.007: 7, 14.01: 7, 15.999: 8, 16.0: 8, 32.06: 16, 22.99: 11}
    np.testing.assert_array_equal(traj.numbers, [by_mass[round(m, 3)] for m in top.atoms.masses])
    if expected is not None:
        assert counts(traj.numbers) == expected
    np.testing.assert_allclose(traj.masses, top.atoms.masses)


def test_charmm_dcd_time_step_from_its_header():
    from MDAnalysis.lib.formats.libdcd import DCDFile

    with DCDFile(str(data.DCD)) as dcd:
        header = dcd.header  # istart 1000, nsavc 1000, delta 0.0204548 AKMA
    traj = read_trajectory(data.DCD, topology=data.PSF)
    steps = header["istart"] + header["nsavc"] * np.arange(traj.n_frames)
    np.testing.assert_allclose(traj.times, steps * header["delta"] * AKMA_IN_FS, rtol=1e-6)


# ------------------------------------------------------------------ AMBER NetCDF
@pytest.mark.parametrize("trajectory, topology, has_velocities", [
    (data.TRJ_NCBOX, data.PRM_NCBOX, True),  # pmemd 16: velocities (scale_factor 20.455) and forces
    (data.PFncdf_Trj, data.PFncdf_Top, False),  # positions and forces
], ids=["ace-tip3p-pmemd", "posfor"])
def test_amber_netcdf_velocities_and_forces_against_the_raw_variables(trajectory, topology, has_velocities):
    netCDF4 = pytest.importorskip("netCDF4")
    traj = read_trajectory(trajectory, topology=topology)
    with netCDF4.Dataset(str(trajectory)) as nc:
        nc.set_auto_maskandscale(False)  # the numbers as stored
        coordinates = nc["coordinates"][:].astype(np.float64)  # Å
        forces = nc["forces"][:].astype(np.float64)  # kcal/(mol·Å)
        time_ps = nc["time"][:].astype(np.float64)
        assert nc["forces"].units == "kilocalorie/mole/angstrom"
        if has_velocities:
            assert nc["velocities"].units == "angstrom/picosecond"
            assert nc["velocities"].scale_factor == pytest.approx(AMBER_VELOCITY_SCALE)
            velocities = nc["velocities"][:].astype(np.float64)
    np.testing.assert_allclose(traj.positions, coordinates, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(traj.forces, forces * KCALMOL_IN_EV, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(traj.times, time_ps * 1000.0)
    assert traj.has_velocities == has_velocities
    if has_velocities:
        np.testing.assert_allclose(traj.velocities, velocities * AMBER_VELOCITY_SCALE / 1000.0, rtol=1e-6, atol=1e-9)
        assert traj.dt == pytest.approx(1000.0)  # 1 ps between frames


# ------------------------------------------------------------------ LAMMPS: MDAnalysisTests dumps
def raw_dump(path) -> list[dict]:
    """Each frame of a dump as {"step", "box", column: values sorted by id}, read by hand."""
    import bz2

    opener = bz2.open if str(path).endswith(".bz2") else open
    with opener(path, "rt") as handle:
        lines = handle.read().split("\n")
    frames, i = [], 0
    while i < len(lines) and lines[i].startswith("ITEM: TIMESTEP"):
        step, n = int(lines[i + 1]), int(lines[i + 3])
        box = np.array([[float(v) for v in lines[i + 5 + k].split()] for k in range(3)])
        names = lines[i + 8].split()[2:]
        rows = np.array([lines[i + 9 + k].split() for k in range(n)])
        rows = rows[np.argsort(rows[:, names.index("id")].astype(int))]
        frame = {"step": step, "box": box, "flags": lines[i + 4].split()[3:]}
        frame.update({name: rows[:, k] for k, name in enumerate(names)})
        frames.append(frame)
        i += 9 + n
    return frames


def columns(frames, *names) -> np.ndarray:
    return np.array([np.column_stack([f[n].astype(np.float64) for n in names]) for f in frames])


@pytest.fixture
def image_vf(tmp_path) -> Path:
    """MDAnalysisTests' dump with v and f (7 atoms, steps 0, 1000, 2000) and its data file,
    alone in a folder (their own folder holds an unrelated run's input)."""
    for source in (data.LAMMPSDUMP_image_vf, data.LAMMPS_image_vf):
        shutil.copy(source, tmp_path)
    return tmp_path / Path(data.LAMMPSDUMP_image_vf).name


def test_lammps_dump_units_are_never_guessed_for_velocities_and_forces(image_vf):
    with pytest.raises(FormatError) as excinfo:
        read_trajectory(image_vf, dt=1.0)
    assert one_line_error(excinfo) == (
        "image_vf.lammpstrj: LAMMPS dumps do not say their units; pass --lammps-units real|metal|si|cgs "
        "(lammps_units=, the run's `units` command) or put its log.lammps beside the dump")


@pytest.mark.parametrize("style, velocity_factor, force_factor", [
    ("real", 1.0, KCALMOL_IN_EV),  # Å/fs, kcal/(mol·Å)
    ("metal", 1.0 / 1000.0, 1.0),  # Å/ps, eV/Å
])
def test_lammps_dump_read_in_the_style_given(image_vf, style, velocity_factor, force_factor):
    raw = raw_dump(image_vf)
    traj = read_trajectory(image_vf, lammps_units=style, type_map="1:O,2:H", dt=2.0)
    # Wrapped x y z made continuous with the image flags ix iy iz: x + ix·10 Å (the box is 0..10 Å).
    images = columns(raw, "ix", "iy", "iz")
    assert np.abs(images).max() > 0
    np.testing.assert_allclose(traj.positions, columns(raw, "x", "y", "z") + images * 10.0)
    np.testing.assert_allclose(traj.velocities, columns(raw, "vx", "vy", "vz") * velocity_factor)
    np.testing.assert_allclose(traj.forces, columns(raw, "fx", "fy", "fz") * force_factor)
    np.testing.assert_array_equal(traj.steps, [0, 1000, 2000])
    np.testing.assert_allclose(traj.times, [0.0, 2.0, 4.0])  # --dt: no log beside it
    assert traj.names == ["1", "1", "2", "2", "2", "2", "2"]  # the types, kept as names
    np.testing.assert_array_equal(traj.numbers, [8, 8, 1, 1, 1, 1, 1])
    np.testing.assert_allclose(traj.cell[0], np.diag([10.0, 10.0, 10.0]))
    assert traj.pbc.all()


def test_lammps_forces_need_masses_and_the_data_file_gives_them(image_vf):
    with pytest.raises(FormatError) as excinfo:
        read_trajectory(image_vf, lammps_units="real", dt=1.0)
    assert "atom types 1, 2 have no element and no mass, and forces cannot be used without masses" \
        in one_line_error(excinfo)
    assert "--type-map" in str(excinfo.value)
    # Its data file's Masses section says 1 and 1 (Lennard-Jones): masses known, elements not.
    traj = read_trajectory(image_vf, lammps_units="real", dt=1.0, topology=image_vf.with_name("image_vf.data"))
    np.testing.assert_array_equal(traj.masses, np.ones(7))
    assert (traj.numbers == 0).all()  # a mass of 1 is no hydrogen (1.008)


def test_lammps_unwrapped_and_scaled_columns(tmp_path):
    raw = raw_dump(data.LAMMPSDUMP_allcoords)  # x, xs, xu and xsu of the same SPC/E box
    traj = read_trajectory(data.LAMMPSDUMP_allcoords, dt=1.0)
    np.testing.assert_allclose(traj.positions, columns(raw, "xu", "yu", "zu"))  # continuous, as written
    assert not np.allclose(traj.positions, columns(raw, "x", "y", "z"))
    np.testing.assert_array_equal(traj.steps, [100 * k for k in range(11)])

    # Scaled coordinates in a triclinic box: r = lo + s·H, with lo and H from the bounding box.
    (frame,) = raw_dump(data.LAMMPSDUMP_triclinic)
    (xlo_b, xhi_b, xy), (ylo_b, yhi_b, xz), (zlo, zhi, yz) = frame["box"]
    xlo, xhi = xlo_b - min(0, xy, xz, xy + xz), xhi_b - max(0, xy, xz, xy + xz)
    ylo, yhi = ylo_b - min(0, yz), yhi_b - max(0, yz)
    h = np.array([[xhi - xlo, 0, 0], [xy, yhi - ylo, 0], [xz, yz, zhi - zlo]])
    expected = np.array([xlo, ylo, zlo]) + columns([frame], "xs", "ys", "zs")[0] @ h
    traj = read_trajectory(data.LAMMPSDUMP_triclinic, dt=1.0)
    np.testing.assert_allclose(traj.positions[0], expected, atol=1e-9)
    np.testing.assert_allclose(traj.cell[0], h)


def test_lammps_element_and_mass_columns():
    traj = read_trajectory(data.LAMMPSDUMP_allinfo, dt=1.0)  # `element` and `mass` columns
    raw = raw_dump(data.LAMMPSDUMP_allinfo)[0]
    np.testing.assert_array_equal(traj.numbers, [{"C": 6, "H": 1, "O": 8, "N": 7}[e] for e in raw["element"]])
    np.testing.assert_allclose(traj.masses, raw["mass"].astype(float))
    with pytest.warns(UserWarning, match="atom type 6 has no element and no mass"):
        traj = read_trajectory(data.LAMMPSDUMP_nomass_elemx, dt=1.0)  # one atom's element is X
    np.testing.assert_array_equal(traj.numbers, [6, 0, 1, 1, 6])


def test_lammps_dcd_with_its_data_file_and_input():
    """LAMMPS' own DCD is no CHARMM DCD: its header delta (2.0) is in the run's time unit,
    `units real` and `timestep 2.0` in ifabp_apo_100mM.in, whose `dump ... ${prefix}.dcd`
    names the file once `variable prefix index ifabp_apo_100mM` is substituted."""
    from MDAnalysis.lib.formats.libdcd import DCDFile

    with DCDFile(str(data.LAMMPSdcd2)) as dcd:
        header = dcd.header
    assert "LAMMPS" in header["remarks"] and (header["nsavc"], header["delta"]) == (250, 2.0)
    traj = read_trajectory(data.LAMMPSdcd2, topology=data.LAMMPSdata2)
    np.testing.assert_array_equal(traj.steps, [0, 250, 500, 750, 1000])
    np.testing.assert_allclose(traj.times, traj.steps * 2.0)  # 2 fs per step (real)
    # Elements from the data file's Masses: 1.008 H, 12.011 C, 14.007 N, 15.999/15.9994 O,
    # 32.06 S, 22.98977 Na, 35.45 Cl.
    top = universe(data.LAMMPSdata2, format="DATA")
    by_mass = {1.008: 1, 12.011: 6, 14.007: 7, 15.999: 8, 15.9994: 8, 32.06: 16, 22.98977: 11, 35.45: 17}
    np.testing.assert_array_equal(traj.numbers, [by_mass[m] for m in top.atoms.masses])
    assert counts(traj.numbers)[11] == 6 and counts(traj.numbers)[17] == 6
    # The first frame is the data file's structure, up to atoms wrapped to the other face.
    shift = traj.positions[0] - top.atoms.positions
    lengths = np.diag(traj.cell[0])
    np.testing.assert_allclose(shift - np.round(shift / lengths) * lengths, 0.0, atol=5e-3)


# ------------------------------------------------------------------ LAMMPS: dumps written by hand
# Three frames of one water molecule, ids out of order as LAMMPS writes them in parallel.
STEPS = [1000, 1100, 1200]
IDS = [2, 1, 3]
TYPES = [2, 1, 2]
POSITIONS = np.array([  # per frame, rows in file order (ids 2, 1, 3)
    [[0.757, 0.586, 0.000], [0.000, 0.000, 0.000], [-0.757, 0.586, 0.000]],
    [[0.760, 0.590, 0.010], [0.001, -0.002, 0.000], [-0.750, 0.580, -0.010]],
    [[0.765, 0.594, 0.020], [0.002, -0.004, 0.000], [-0.742, 0.575, -0.020]],
])
VELOCITIES = np.array([
    [[1.5, -2.0, 0.5], [-0.1, 0.2, 0.0], [-1.0, 2.0, -0.5]],
    [[1.2, -1.8, 0.4], [-0.09, 0.18, 0.01], [-0.9, 1.7, -0.4]],
    [[1.0, -1.5, 0.3], [-0.08, 0.15, 0.02], [-0.8, 1.4, -0.3]],
])
FORCES = np.array([
    [[0.3, 0.1, -0.2], [-0.5, 0.25, 0.1], [0.2, -0.35, 0.1]],
    [[0.28, 0.12, -0.18], [-0.48, 0.22, 0.09], [0.2, -0.34, 0.09]],
    [[0.25, 0.14, -0.16], [-0.45, 0.2, 0.08], [0.2, -0.34, 0.08]],
])
SORTED = np.argsort(IDS)  # file rows → id order (1, 2, 3)


def write_dump(path, *, units=None, times=None, scale=(1.0, 1.0, 1.0), box=5.0, mass=None, columns="v f"):
    """The frames above as a `dump custom` file; ``scale`` multiplies positions, velocities
    and forces (to write si numbers), ``units``/``times`` add ITEM: UNITS / ITEM: TIME."""
    names = ["id", "type", "x", "y", "z"] + (["mass"] if mass is not None else [])
    names += ["vx", "vy", "vz"] if "v" in columns else []
    names += ["fx", "fy", "fz"] if "f" in columns else []
    lines = [] if units is None else ["ITEM: UNITS", units]
    for k, step in enumerate(STEPS):
        if times is not None:
            lines += ["ITEM: TIME", repr(times[k])]
        lines += ["ITEM: TIMESTEP", str(step), "ITEM: NUMBER OF ATOMS", "3", "ITEM: BOX BOUNDS pp pp pp"]
        lines += [f"{-box!r} {box!r}"] * 3
        lines.append("ITEM: ATOMS " + " ".join(names))
        for row in range(3):
            values = [IDS[row], TYPES[row], *(POSITIONS[k, row] * scale[0])]
            values += [mass[TYPES[row]]] if mass is not None else []
            values += list(VELOCITIES[k, row] * scale[1]) if "v" in columns else []
            values += list(FORCES[k, row] * scale[2]) if "f" in columns else []
            lines.append(" ".join(repr(float(v)) if isinstance(v, float) else str(v) for v in values))
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def write_log(folder, units, timestep, dump="water.lammpstrj", name="log.lammps"):
    """A log as LAMMPS writes it: the echoed input, then the run's setup lines."""
    text = f"""LAMMPS (2 Aug 2023 - Update 3)
units           {units}
atom_style      full
read_data       water.data
Reading data file ...
timestep        {timestep}
dump            1 all custom 100 {dump} id type x y z vx vy vz fx fy fz
run             200
Setting up Verlet run ...
  Unit style    : {units}
  Current step  : 1000
  Time step     : {timestep}
Per MPI rank memory allocation (min/avg/max) = 6.7 | 6.7 | 6.7 Mbytes
   Step          Temp          E_pair  
      1000   300.1         -12.3
Loop time of 0.0123 on 1 procs for 200 steps with 3 atoms
"""
    (Path(folder) / name).write_text(text)


@pytest.mark.parametrize("style, timestep, velocity_factor, force_factor, fs_per_step", [
    ("metal", "0.0005", 1.0 / 1000.0, 1.0, 0.5),  # Å/ps → Å/fs; eV/Å; 0.0005 ps
    ("real", "0.5", 1.0, KCALMOL_IN_EV, 0.5),  # Å/fs; kcal/(mol·Å) → eV/Å; 0.5 fs
])
def test_lammps_units_and_timestep_from_the_log_beside_the_dump(tmp_path, style, timestep, velocity_factor,
                                                                force_factor, fs_per_step):
    dump = write_dump(tmp_path / "water.lammpstrj")
    write_log(tmp_path, style, timestep)
    traj = read_trajectory(dump, type_map={1: "O", 2: "H"})
    np.testing.assert_allclose(traj.positions, POSITIONS[:, SORTED])
    np.testing.assert_allclose(traj.velocities, VELOCITIES[:, SORTED] * velocity_factor)
    np.testing.assert_allclose(traj.forces, FORCES[:, SORTED] * force_factor)
    np.testing.assert_array_equal(traj.steps, STEPS)
    np.testing.assert_allclose(traj.times, np.array(STEPS) * fs_per_step)  # 500, 550, 600 fs
    assert traj.dt == pytest.approx(50.0)
    np.testing.assert_array_equal(traj.numbers, [8, 1, 1])  # ids 1, 2, 3 are types 1, 2, 2
    np.testing.assert_allclose(traj.masses, [15.999, 1.008, 1.008])
    # --dt still overrides the run's time step.
    np.testing.assert_allclose(read_trajectory(dump, type_map="1:O,2:H", dt=10.0).times, [0.0, 10.0, 20.0])


def test_lammps_input_script_with_variables_names_the_dump(tmp_path):
    dump = write_dump(tmp_path / "water.lammpstrj")
    (tmp_path / "in.water").write_text(
        "variable name index water\nunits real\ntimestep 2.0  # fs\n"
        "dump d1 all custom 100 ${name}.lammpstrj id type x y z vx vy vz fx fy fz\nrun 200\n")
    traj = read_trajectory(dump, type_map="1:O,2:H")
    np.testing.assert_allclose(traj.velocities, VELOCITIES[:, SORTED])  # real: Å/fs as written
    np.testing.assert_allclose(traj.times, np.array(STEPS) * 2.0)


def test_lammps_files_of_another_run_are_not_used(tmp_path):
    dump = write_dump(tmp_path / "water.lammpstrj")
    (tmp_path / "in.other").write_text("units metal\ntimestep 0.001\ndump 1 all atom 10 other.lammpstrj\n")
    with pytest.raises(FormatError, match="LAMMPS dumps do not say their units"):
        read_trajectory(dump, type_map="1:O,2:H", dt=1.0)


def test_lammps_dump_that_says_its_units_and_times(tmp_path):
    """`dump_modify units yes time yes`: ITEM: UNITS once, ITEM: TIME (in the style's time unit) per frame."""
    dump = write_dump(tmp_path / "water.lammpstrj", units="metal", times=[0.5, 0.55, 0.6])
    traj = read_trajectory(dump, type_map="1:O,2:H")
    np.testing.assert_allclose(traj.times, [500.0, 550.0, 600.0])  # ps → fs
    np.testing.assert_allclose(traj.velocities, VELOCITIES[:, SORTED] / 1000.0)
    with pytest.raises(FormatError) as excinfo:
        read_trajectory(dump, type_map="1:O,2:H", lammps_units="real")
    assert one_line_error(excinfo) == "water.lammpstrj: the dump says units metal (ITEM: UNITS), lammps_units says real"


def test_lammps_si_dump_with_mass_column(tmp_path):
    """si: m, m/s, N and kg; the positions below are the Å ones × 1e-10.  (ASE's CODATA 2014
    e and u differ from the 2018 values written here in the 8th digit.)"""
    newton_in_ev_per_angstrom = 1.0 / (EV_IN_J * 1e10)
    mass_kg = {1: 15.999 * U_IN_KG, 2: 1.008 * U_IN_KG}
    dump = write_dump(tmp_path / "water.lammpstrj", scale=(1e-10, 1e5, 1e-9), box=5e-10, mass=mass_kg)
    traj = read_trajectory(dump, lammps_units="si", dt=1.0)
    np.testing.assert_allclose(traj.positions, POSITIONS[:, SORTED] * 1e-10 * 1e10, rtol=1e-12)
    np.testing.assert_allclose(traj.velocities, VELOCITIES[:, SORTED] * 1e5 * 1e-5, rtol=1e-12)  # m/s → Å/fs
    np.testing.assert_allclose(traj.forces, FORCES[:, SORTED] * 1e-9 * newton_in_ev_per_angstrom, rtol=1e-7)
    np.testing.assert_allclose(traj.cell[0], np.diag([10.0] * 3), rtol=1e-12)
    np.testing.assert_allclose(traj.masses, [15.999, 1.008, 1.008], rtol=1e-7)
    np.testing.assert_array_equal(traj.numbers, [8, 1, 1])  # elements from the masses
    # Without units, a 1e-9 "Å" box is recognised as si/cgs and refused.
    positions_only = write_dump(tmp_path / "p.lammpstrj", scale=(1e-10, 1, 1), box=5e-10, columns="")
    with pytest.raises(FormatError, match="si \\(m\\) or cgs \\(cm\\) lengths, not Å; pass --lammps-units"):
        read_trajectory(positions_only, dt=1.0)


def test_lammps_positions_only_are_read_as_angstrom_without_units(tmp_path):
    dump = write_dump(tmp_path / "water.lammpstrj", columns="")
    with pytest.warns(UserWarning, match="atom types 1, 2 have no element and no mass"):
        traj = read_trajectory(dump, dt=5.0)
    np.testing.assert_allclose(traj.positions, POSITIONS[:, SORTED])
    np.testing.assert_array_equal(traj.numbers, [0, 0, 0])
    with pytest.raises(FormatError) as excinfo:
        read_trajectory(dump)
    assert "records no time step; pass --dt" in one_line_error(excinfo)


def test_lammps_universe_from_a_dump_goes_through_the_same_units(tmp_path):
    """upsample_universe's path: MDAnalysis' DumpReader (positions shifted to the box origin,
    float32), units and timestep from the same log."""
    dump = write_dump(tmp_path / "water.lammpstrj")
    write_log(tmp_path, "metal", "0.0005")
    u = universe(dump, format="LAMMPSDUMP", topology_format="LAMMPSDUMP")
    traj = MDAnalysisReader.from_universe(u, type_map="1:O,2:H").read()
    np.testing.assert_allclose(traj.velocities, VELOCITIES[:, SORTED] / 1000.0, rtol=1e-6)
    np.testing.assert_allclose(traj.forces, FORCES[:, SORTED], rtol=1e-6)
    np.testing.assert_allclose(traj.positions, POSITIONS[:, SORTED] + 5.0, atol=1e-5)  # minus xlo = -5
    np.testing.assert_allclose(traj.times, np.array(STEPS) * 0.5)
    np.testing.assert_array_equal(traj.numbers, [8, 1, 1])
    with pytest.raises(FormatError, match="LAMMPS dumps do not say their units"):
        MDAnalysisReader.from_universe(universe(data.LAMMPSDUMP_image_vf, format="LAMMPSDUMP",
                                                topology_format="LAMMPSDUMP"), dt=1.0)


@pytest.mark.parametrize("setup, options, message", [
    (lambda d: write_log(d, "lj", "0.005"), {}, "LAMMPS units lj (log.lammps) are reduced units with no Å or fs"),
    (lambda d: None, {"lammps_units": "nano"}, "LAMMPS units nano (lammps_units) are not converted by mdsr_plugin"),
    (lambda d: (write_log(d, "real", "1.0"), write_log(d, "metal", "0.001", name="log.eq")), {},
     "the run's files disagree (log.lammps says units real; log.eq says units metal)"),
    (lambda d: (write_log(d, "real", "1.0"), (d / "in.w").write_text(
        "units real\ntimestep 2.0\ndump 1 all custom 1 water.lammpstrj id\n")), {},
     "the file records no time step; pass --dt"),
    (lambda d: None, {"lammps_units": "real", "type_map": "1:O", "dt": 1.0}, "atom type 2 not in the type map (1:O)"),
    (lambda d: None, {"lammps_units": "real", "type_map": "1-O"}, "'1-O' is not a type map; write TYPE:ELEMENT"),
    (lambda d: None, {"lammps_units": "real", "type_map": "1:Ox"}, "'Ox' (type 1) is no element symbol"),
    (lambda d: None, {"lammps_units": "real"}, "no log.lammps or input beside the dump gives the run's `timestep`"),
], ids=["lj", "nano", "files-disagree", "two-timesteps", "type-missing", "bad-map", "bad-symbol", "no-timestep"])
def test_lammps_failures_are_one_line(tmp_path, setup, options, message):
    dump = write_dump(tmp_path / "water.lammpstrj")
    setup(tmp_path)
    with pytest.raises(FormatError) as excinfo:
        read_trajectory(dump, **options)
    assert message in one_line_error(excinfo)


def test_lammps_damaged_dumps_are_one_line(tmp_path):
    lines = write_dump(tmp_path / "water.lammpstrj").read_text().split("\n")  # 3 frames of 12 lines
    options = {"lammps_units": "real", "type_map": "1:O,2:H", "dt": 1.0}
    cut = tmp_path / "cut.lammpstrj"
    cut.write_text("\n".join(lines[:35]) + "\n")  # the last frame loses an atom line
    with pytest.raises(FormatError) as excinfo:
        read_trajectory(cut, **options)
    assert "cut.lammpstrj: frame 2: 3 atom lines of the 11 columns" in one_line_error(excinfo)
    second = lines[12:24]
    second[3] = "2"  # NUMBER OF ATOMS
    shrunk = tmp_path / "shrunk.lammpstrj"
    shrunk.write_text("\n".join(lines[:12] + second[:-1]) + "\n")
    with pytest.raises(FormatError) as excinfo:
        read_trajectory(shrunk, **options)
    assert "shrunk.lammpstrj: frame 1 has 2 atoms, frame 0 3" in one_line_error(excinfo)


def test_lammps_options_are_refused_for_other_formats():
    with pytest.raises(FormatError) as excinfo:  # refused by io's routing, or by the reader
        read_trajectory(data.TRJ_NCBOX, topology=data.PRM_NCBOX, lammps_units="real")
    assert "lammps" in one_line_error(excinfo).lower()
    with pytest.raises(FormatError) as excinfo:
        MDAnalysisReader(data.TRJ_NCBOX, mda_format="NCDF", topology=data.PRM_NCBOX, lammps_units="real")
    assert "lammps_units is for files LAMMPS wrote (dumps, DCDs); this NCDF file is not one" in one_line_error(excinfo)
    # A type map applies to any topology with types, and must name them all.
    with pytest.raises(FormatError, match="atom types .* not in the type map"):
        MDAnalysisReader(data.TRJ_NCBOX, mda_format="NCDF", topology=data.PRM_NCBOX, type_map="HW:H")


def test_type_map_parsing():
    assert parse_type_map("1:O, 2:h;3=Na") == {"1": 8, "2": 1, "3": 11}
    assert parse_type_map({1: "C", "OW": "O"}) == {"1": 6, "OW": 8}
    assert parse_type_map(None) is None
    with pytest.raises(FormatError, match="type 1 is given two elements"):
        parse_type_map("1:O,1:H")


def test_open_reader_passes_the_lammps_options(tmp_path):
    dump = write_dump(tmp_path / "water.lammpstrj")
    with open_reader(dump, lammps_units="metal", type_map="1:O,2:H", dt=1.0) as reader:
        assert reader.n_frames == 3
        (chunk,) = list(reader.chunks(10))
    assert reader.run.style == "metal" and chunk.has_forces


def test_universe_identities_type_map_on_a_lammps_data_file():
    numbers, masses, names = universe_identities(universe(data.LAMMPSdata_mini, format="DATA"),
                                                 type_map={"1": 1})
    assert numbers.tolist() == [1] and names is None
    np.testing.assert_allclose(masses, [0.0010078])  # the file's own (kg/mol-like) mass, kept


def test_lammps_compressed_dump_is_named_by_its_log_without_the_suffix(tmp_path):
    import gzip

    plain = write_dump(tmp_path / "plain.lammpstrj")
    dump = tmp_path / "water.lammpstrj.gz"
    dump.write_bytes(gzip.compress(plain.read_bytes()))
    plain.unlink()
    write_log(tmp_path, "real", "0.5")  # `dump ... water.lammpstrj`, gzipped after the run
    with open_reader(dump, type_map="1:O,2:H", format="lammpsdump") as reader:
        traj = reader.read()
        assert reader.n_frames == 3
    np.testing.assert_allclose(traj.forces, FORCES[:, SORTED] * KCALMOL_IN_EV)
    np.testing.assert_allclose(traj.times, np.array(STEPS) * 0.5)


def test_lammps_general_triclinic_box(tmp_path):
    """`dump_modify triclinic/general yes`: rows a, b, c and the origin; scaled columns are
    fractions of those rows: r = origin + s·[a; b; c]."""
    a, b, c, origin = [4.0, 0.0, 1.0], [1.0, 5.0, 0.0], [0.0, 1.0, 6.0], [-1.0, -2.0, -3.0]
    text = "\n".join([
        "ITEM: TIMESTEP", "0", "ITEM: NUMBER OF ATOMS", "2", "ITEM: BOX BOUNDS abc origin pp pp ff",
        *(" ".join(map(str, [*row, o])) for row, o in zip((a, b, c), origin)),
        "ITEM: ATOMS id type xs ys zs", "2 1 0.5 0.5 0.5", "1 1 0.1 0.2 0.3",
    ]) + "\n"
    (tmp_path / "tric.lammpstrj").write_text(text)
    with pytest.warns(UserWarning, match="atom type 1 has no element"):
        traj = read_trajectory(tmp_path / "tric.lammpstrj", dt=1.0)
    cell = np.array([a, b, c])
    np.testing.assert_allclose(traj.cell[0], cell)
    np.testing.assert_allclose(traj.positions[0], np.array(origin) + np.array([[0.1, 0.2, 0.3], [0.5] * 3]) @ cell)
    np.testing.assert_array_equal(traj.pbc, [True, True, False])
