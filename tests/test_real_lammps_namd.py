"""Real LAMMPS text dumps in two unit styles (tests/data/real/lammps, origins in its README),
LAMMPS NetCDF dumps, and the MDAnalysis integration's LAMMPS options.

Every number read is checked against the file's own text converted by hand with the
CODATA constants below (not the package's unit table): metal velocities through the
temperatures LAMMPS printed in its log, real forces through kcal/mol → eV.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from mdsr_plugin.cli import main
from mdsr_plugin.io import FormatError, get_format, read_trajectory

REAL = Path(__file__).parent / "data" / "real" / "lammps"
METAL = REAL / "alm_npt_metal"
WATER = REAL / "water_real_forces"

# CODATA 2018 exact SI values, by hand.
AVOGADRO = 6.02214076e23
ELEMENTARY_CHARGE = 1.602176634e-19  # J per eV
BOLTZMANN_EV = 1.380649e-23 / ELEMENTARY_CHARGE
KCALMOL_EV = 4184.0 / AVOGADRO / ELEMENTARY_CHARGE  # thermochemical kcal
G_PER_MOL_A2_PER_PS2_EV = 1e-3 / AVOGADRO * 1e4 / ELEMENTARY_CHARGE  # (g/mol)·(Å/ps)² → eV


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def dump_frames(path: Path) -> list[tuple[int, np.ndarray, list[str], np.ndarray]]:
    """Each frame of a text dump as written: step, the three BOX BOUNDS rows, the column
    names and the atom table (strings → float), read here without the package."""
    lines = path.read_text().splitlines()
    frames, i = [], 0
    while i < len(lines):
        assert lines[i] == "ITEM: TIMESTEP"
        step, n = int(lines[i + 1]), int(lines[i + 3])
        bounds = np.array([row.split() for row in lines[i + 5:i + 8]], dtype=float)
        columns = lines[i + 8].split()[2:]
        table = np.array([row.split() for row in lines[i + 9:i + 9 + n]], dtype=float)
        frames.append((step, bounds, columns, table))
        i += 9 + n
    return frames


def log_thermo(path: Path) -> dict[str, np.ndarray]:
    """The thermo table LAMMPS printed after ``Step ...`` in its log, by column name."""
    lines = path.read_text().splitlines()
    start = next(k for k, line in enumerate(lines) if line.split()[:1] == ["Step"])
    names = lines[start].split()
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("Loop time"):
            break
        rows.append([float(v) for v in line.split()])
    return dict(zip(names, np.array(rows).T))


# ------------------------------------------------------------------ metal: Al, NPT, v and f
def test_metal_dump_units_come_from_the_log_beside_it():
    traj = read_trajectory(METAL / "dump.out", type_map="1:Al")
    frames = dump_frames(METAL / "dump.out")
    assert traj.n_frames == 11 and traj.n_atoms == 32
    assert get_format(METAL / "dump.out").name == "lammpsdump"  # dump.out: recognised by its ITEM: lines
    # Steps as written; times = step × `timestep 0.001` (ps) = 1 fs per step.
    np.testing.assert_array_equal(traj.steps, [f[0] for f in frames])
    np.testing.assert_allclose(traj.times, np.arange(0, 1001, 100) * 0.001 * 1000.0)
    step, bounds, columns, table = frames[3]
    assert columns == ["id", "type", "xsu", "ysu", "zsu", "fx", "fy", "fz", "vx", "vy", "vz"]
    length = bounds[:, 1] - bounds[:, 0]
    # xsu → Å by hand (orthogonal box), v Å/ps → Å/fs, f eV/Å as written.
    np.testing.assert_allclose(traj.positions[3], bounds[:, 0] + table[:, 2:5] * length, rtol=1e-12)
    np.testing.assert_allclose(traj.velocities[3], table[:, 8:11] / 1000.0, rtol=1e-12)
    np.testing.assert_allclose(traj.forces[3], table[:, 5:8], rtol=1e-12)
    np.testing.assert_allclose(np.diagonal(traj.cell[3]), length, rtol=1e-12)
    assert list(traj.numbers) == [13] * 32 and traj.is_periodic


def test_metal_temperature_from_the_velocities_matches_the_log():
    """T = Σ m v² / ((3N − 3) k_B), with LAMMPS' metal units by hand: the log prints it
    every 100 steps, the dump's frames are the same steps."""
    traj = read_trajectory(METAL / "dump.out", type_map="1:Al")
    v_a_per_ps = traj.velocities * 1000.0
    kinetic_ev = 0.5 * np.einsum("n,fni->f", traj.masses, v_a_per_ps**2) * G_PER_MOL_A2_PER_PS2_EV
    temperature = 2.0 * kinetic_ev / ((3 * traj.n_atoms - 3) * BOLTZMANN_EV)
    thermo = log_thermo(METAL / "log.lammps")
    np.testing.assert_array_equal(thermo["Step"], traj.steps)
    # 2.6e-6 off: LAMMPS' k_B (8.617343e-5) and the mass in its data file (26.9815) differ
    # from CODATA and the standard Al mass (26.9815385) in the sixth digit.
    np.testing.assert_allclose(temperature, thermo["Temp"], rtol=1e-5)
    assert temperature[0] == pytest.approx(1000.0, rel=1e-5)  # `velocity all create 1000.0`
    # NPT: the box breathes, and its volume is the log's to every printed digit.
    np.testing.assert_allclose(np.linalg.det(traj.cell), thermo["Volume"], rtol=1e-12)


def test_metal_units_given_by_hand_agree_and_a_contradiction_is_refused(tmp_path, capsys):
    shutil.copy(METAL / "dump.out", tmp_path / "dump.out")  # without its log
    with pytest.raises(FormatError, match="LAMMPS dumps do not say their units"):
        read_trajectory(tmp_path / "dump.out", type_map="1:Al", dt=100.0)
    by_hand = read_trajectory(tmp_path / "dump.out", type_map="1:Al", lammps_units="metal", dt=100.0)
    from_log = read_trajectory(METAL / "dump.out", type_map="1:Al")
    np.testing.assert_array_equal(by_hand.velocities, from_log.velocities)
    with pytest.warns(UserWarning, match="lammps_units=real, but log.lammps says units metal"):
        real = read_trajectory(METAL / "dump.out", type_map="1:Al", lammps_units="real", dt=100.0)
    np.testing.assert_allclose(real.velocities, from_log.velocities * 1000.0)  # Å/fs taken as written


def test_metal_dump_upsampled_keeps_coarse_frames_bit_exact(tmp_path, capsys):
    code = main([str(METAL / "dump.out"), "--type-map", "1:Al", "--factor", "4", "--method", "hermite",
                 "-o", str(tmp_path / "fine.h5md")])
    assert code == 0, capsys.readouterr().err
    assert "coarse step 100 fs from the file's times" in capsys.readouterr().err
    coarse = read_trajectory(METAL / "dump.out", type_map="1:Al")
    fine = read_trajectory(tmp_path / "fine.h5md")
    assert fine.n_frames == 41
    np.testing.assert_array_equal(fine.positions[::4], coarse.positions)
    np.testing.assert_array_equal(fine.velocities[::4], coarse.velocities)
    np.testing.assert_allclose(fine.times, np.arange(41) * 25.0)


def _envelope_excess(coarse, fine, factor) -> float:
    """How far (Å) any fine position lies outside the box spanned by its two coarse frames."""
    worst = 0.0
    for gap in range(coarse.n_frames - 1):
        low = np.minimum(coarse.positions[gap], coarse.positions[gap + 1])
        high = np.maximum(coarse.positions[gap], coarse.positions[gap + 1])
        block = fine.positions[gap * factor:(gap + 1) * factor + 1]
        worst = max(worst, float(np.max(np.maximum(low - block, block - high))))
    return worst


@pytest.mark.parametrize("folder, type_map", [(METAL, "1:Al"), (WATER, "1:H")])
def test_auto_method_stays_near_the_coarse_envelope_or_refuses_in_one_line(tmp_path, capsys, folder, type_map):
    code = main([str(folder / "dump.out"), "--type-map", type_map, "--factor", "4", "--method", "auto",
                 "-o", str(tmp_path / "fine.h5md")])
    err = capsys.readouterr().err
    if code != 0:
        one_line(err)
        return
    coarse = read_trajectory(folder / "dump.out", type_map=type_map)
    fine = read_trajectory(tmp_path / "fine.h5md")
    np.testing.assert_array_equal(fine.positions[::4], coarse.positions)
    assert _envelope_excess(coarse, fine, 4) < 2.0


# ------------------------------------------------------------------ real: TIP3P box, forces only
def test_real_dump_forces_in_kcal_per_mol_angstrom_and_triclinic_scaled_positions():
    traj = read_trajectory(WATER / "dump.out", type_map="1:H")
    frames = dump_frames(WATER / "dump.out")
    assert traj.n_frames == 6 and traj.n_atoms == 81 and not traj.has_velocities
    np.testing.assert_allclose(traj.times, np.arange(0, 1001, 200) * 1.0)  # `timestep 1` fs (real)
    step, bounds, columns, table = frames[2]
    # 8e-9 apart: the package's table is built on ase.units (CODATA 2014), these on CODATA 2018.
    np.testing.assert_allclose(traj.forces[2], table[:, 5:8] * KCALMOL_EV, rtol=2e-8)
    assert traj.forces[0, 0, 0] == pytest.approx(-25.2490766756577 * KCALMOL_EV, rel=2e-8)  # first fx, as written
    # Restricted triclinic by hand: the bounding box minus the tilt xy, then x = xlo + xs·lx + ys·xy.
    (xlo_b, xhi_b, xy), (ylo, yhi, _), (zlo, zhi, _) = bounds
    lx = (xhi_b - max(0.0, xy)) - (xlo_b - min(0.0, xy))
    ly, lz = yhi - ylo, zhi - zlo
    xs, ys, zs = table[:, 2], table[:, 3], table[:, 4]
    expected = np.column_stack([xlo_b - min(0.0, xy) + xs * lx + ys * xy, ylo + ys * ly, zlo + zs * lz])
    np.testing.assert_allclose(traj.positions[2], expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(traj.cell[2], [[lx, 0, 0], [xy, ly, 0], [0, 0, lz]], rtol=1e-12)
    assert lx == pytest.approx(9.31289, abs=1e-5)  # the log's "triclinic box = (0 0 0) to (9.31289 ...)"


def test_real_dump_without_a_type_map_is_refused_because_it_has_forces():
    with pytest.raises(FormatError, match="atom type 1 has no element and no mass, and forces cannot be used"):
        read_trajectory(WATER / "dump.out")


def test_a_data_file_named_like_a_dump_is_no_dump(tmp_path):
    """The sniffer needs ITEM: on the first line; a .out file of another code is not taken."""
    path = tmp_path / "dump.out"
    path.write_text("LAMMPS (5 Jun 2019)\nunits real\n")
    with pytest.raises(FormatError, match="cannot tell the format"):
        read_trajectory(path)


# ------------------------------------------------------------------ NetCDF (dump netcdf)
def write_lammps_netcdf(source: Path, out: Path, *, netcdf_format="NETCDF3_64BIT_DATA", units=None,
                        positions="unwrapped_coordinates", shuffle=False):
    """Write ``source``'s frames (the real metal dump) as LAMMPS' ``dump netcdf`` lays them
    out (src/NETCDF/dump_netcdf.cpp): float32 variables, ``time`` = step with the run's
    timestep as ``scale_factor``, unit attributes of the metal style."""
    netCDF4 = pytest.importorskip("netCDF4")
    units = units or {"time": "picosecond", "length": "angstrom", "velocity": "angstrom/picosecond",
                      "force": "eV/angstrom"}
    frames = dump_frames(source)
    n = len(frames[0][3])
    data = netCDF4.Dataset(out, "w", format=netcdf_format)
    for name, size in (("frame", None), ("atom", n), ("cell_spatial", 3), ("cell_angular", 3), ("label", 10),
                       ("spatial", 3)):
        data.createDimension(name, size)
    data.createVariable("spatial", "S1", ("spatial",))
    data.createVariable("cell_spatial", "S1", ("spatial",))
    data.createVariable("cell_angular", "S1", ("spatial", "label"))
    time = data.createVariable("time", "f4", ("frame",))
    origin = data.createVariable("cell_origin", "f4", ("frame", "cell_spatial"))
    lengths = data.createVariable("cell_lengths", "f4", ("frame", "cell_spatial"))
    angles = data.createVariable("cell_angles", "f4", ("frame", "cell_angular"))
    ids = data.createVariable("id", "i4", ("frame", "atom"))
    types = data.createVariable("type", "i4", ("frame", "atom"))
    xyz = data.createVariable(positions, "f4", ("frame", "atom", "spatial"))
    forces = data.createVariable("forces", "f4", ("frame", "atom", "spatial"))
    velocities = data.createVariable("velocities", "f4", ("frame", "atom", "spatial"))
    data.Conventions, data.ConventionVersion, data.program, data.programVersion = "AMBER", "1.0", "LAMMPS", "27 Jun 2024"
    time.units, origin.units, lengths.units, angles.units = units["time"], units["length"], units["length"], "degree"
    xyz.units, velocities.units, forces.units = units["length"], units["velocity"], units["force"]
    time.scale_factor = np.float32(0.001)
    data.set_auto_maskandscale(False)
    order = np.arange(n)[::-1] if shuffle else np.arange(n)
    for k, (step, bounds, _, table) in enumerate(frames):
        table = table[order]
        time[k], origin[k], lengths[k], angles[k] = step, bounds[:, 0], bounds[:, 1] - bounds[:, 0], 90.0
        ids[k], types[k] = table[:, 0], table[:, 1]
        scaled = table[:, 2:5]
        xyz[k] = scaled if positions == "scaled_coordinates" else bounds[:, 0] + scaled * (bounds[:, 1] - bounds[:, 0])
        forces[k], velocities[k] = table[:, 5:8], table[:, 8:11]
    data.close()
    return out


@pytest.mark.parametrize("positions, shuffle", [("unwrapped_coordinates", False), ("scaled_coordinates", True)])
def test_lammps_netcdf_reads_like_the_text_dump_of_the_same_run(tmp_path, positions, shuffle):
    path = write_lammps_netcdf(METAL / "dump.out", tmp_path / "run.nc", positions=positions, shuffle=shuffle)
    assert get_format(path).name == "lammps-netcdf"  # the program attribute, not the .nc extension
    nc = read_trajectory(path, type_map="1:Al")
    text = read_trajectory(METAL / "dump.out", type_map="1:Al")
    np.testing.assert_array_equal(nc.steps, text.steps)
    np.testing.assert_allclose(nc.times, text.times, rtol=1e-12)  # scale_factor 0.001 read as 0.001, not float32's
    np.testing.assert_allclose(nc.positions, text.positions, atol=2e-6)  # float32 in the file
    np.testing.assert_allclose(nc.velocities, text.velocities, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(nc.forces, text.forces, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(nc.cell, text.cell, rtol=1e-6)


def test_lammps_netcdf_units_attributes_are_checked_against_lammps_units(tmp_path):
    path = write_lammps_netcdf(METAL / "dump.out", tmp_path / "run.nc")
    with pytest.raises(FormatError, match=r"the dump says units metal \(its unit attributes\), lammps_units says real"):
        read_trajectory(path, type_map="1:Al", lammps_units="real")
    lj = write_lammps_netcdf(METAL / "dump.out", tmp_path / "lj.nc",
                             units={"time": "lj", "length": "lj", "velocity": "lj", "force": "lj"})
    with pytest.raises(FormatError, match="LAMMPS units lj .* are reduced units"):
        read_trajectory(lj, type_map="1:Al")


def test_lammps_netcdf_through_scipy_when_netcdf4_is_missing(tmp_path, monkeypatch):
    """scipy reads the classic and 64-bit-offset flavours; CDF-5 is refused with what to install."""
    offset = write_lammps_netcdf(METAL / "dump.out", tmp_path / "offset.nc", netcdf_format="NETCDF3_64BIT_OFFSET")
    cdf5 = write_lammps_netcdf(METAL / "dump.out", tmp_path / "cdf5.nc")
    monkeypatch.setitem(sys.modules, "netCDF4", None)
    traj = read_trajectory(offset, type_map="1:Al")
    np.testing.assert_allclose(traj.velocities, read_trajectory(METAL / "dump.out", type_map="1:Al").velocities,
                               rtol=1e-6, atol=1e-12)
    with pytest.raises(FormatError, match="need the netCDF4 package"):
        read_trajectory(cdf5, type_map="1:Al")


def test_lammps_netcdf_through_the_cli_and_amber_netcdf_still_needs_its_topology(tmp_path, capsys):
    import MDAnalysisTests.datafiles as data

    path = write_lammps_netcdf(METAL / "dump.out", tmp_path / "run.nc")
    code = main([str(path), "--type-map", "1:Al", "--lammps-units", "metal", "--factor", "2", "--method", "hermite",
                 "-o", str(tmp_path / "fine.h5md")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert read_trajectory(tmp_path / "fine.h5md").n_frames == 21
    assert get_format(data.TRJ_NCBOX).name == "netcdf"  # AMBER's: program is not LAMMPS
    code = main([data.TRJ_NCBOX, "--factor", "2", "-o", str(tmp_path / "amber.h5md")])
    assert code == 1 and "need a topology" in one_line(capsys.readouterr().err)




# ------------------------------------------------------------------ real: a dump with velocities
POLYMER = REAL / "polymer_real_velocities"


def test_real_units_velocities_give_the_temperature_lammps_printed():
    """A ``units real`` dump with velocities (CHARMM-GUI's polymer melt, LAMMPS 12 Dec 2018):
    the units come from ``step4.1_equilibration.inp`` beside it, whose ``write_dump`` writes
    this file (the log was written with ``echo screen`` and names no units).  Velocities are
    Å/fs as written, and with the data file's masses (H 1.008, C 12.011, O 15.999: types 1-3,
    4-5, 6-7) give the log's Temp, 405.4631 K, and KinEng, 8700.7724 kcal/mol, at step 100000."""
    traj = read_trajectory(POLYMER / "step4.1_equilibration.dump", type_map="1:H,2:H,3:H,4:C,5:C,6:O,7:O")
    assert (traj.n_frames, traj.n_atoms) == (1, 7200)
    np.testing.assert_allclose(traj.times, [100000.0])  # step × timestep 1 fs
    raw = dump_frames(POLYMER / "step4.1_equilibration.dump")[0][3]
    by_id = raw[np.argsort(raw[:, 0])]
    np.testing.assert_allclose(traj.velocities[0], by_id[:, 5:8], rtol=1e-12)  # Å/fs: nothing to convert
    masses = np.choose(by_id[:, 1].astype(int) - 1, [1.008, 1.008, 1.008, 12.011, 12.011, 15.999, 15.999])
    np.testing.assert_allclose(traj.masses, masses)
    kinetic = 0.5 * np.sum(masses[:, None] * traj.velocities[0] ** 2) * 1e7 / 4184.0  # (g/mol)(Å/fs)² → kcal/mol
    assert kinetic == pytest.approx(8700.7724, rel=1e-6)
    kcalmol_per_kelvin = BOLTZMANN_EV / KCALMOL_EV
    assert 2 * kinetic / ((3 * traj.n_atoms - 3) * kcalmol_per_kelvin) == pytest.approx(405.4631, rel=1e-5)
    # positions unwrapped with the image flags (box -24.0079 … 24.0079 Å)
    np.testing.assert_allclose(traj.positions[0], by_id[:, 2:5] + by_id[:, 8:11] * 2 * 24.0079, atol=1e-9)

# ------------------------------------------------------------------ a real LAMMPS NetCDF dump: a slab
SLAB = REAL / "netcdf_electrode" / "version-5.nc"
SLAB_TYPES = "1:C,2:C,3:C,4:C"  # no element or mass in the file or beside it


def test_real_lammps_netcdf_slab_numbers_are_the_files_converted_by_hand():
    """LAMMPS 21 Nov 2023 ``dump netcdf`` of a run periodic in x and y only (cell_lengths z = 0):
    the slab kept its cell was read as no box at all, so its image flags were dropped and an
    atom crossing a periodic face would have been drawn through the box."""
    assert get_format(SLAB).name == "lammps-netcdf"
    traj = read_trajectory(SLAB, type_map=SLAB_TYPES)
    assert (traj.n_frames, traj.n_atoms) == (11, 1576)
    np.testing.assert_allclose(traj.times, np.arange(11) * 8.058974, rtol=1e-6)  # step × scale_factor (fs)
    np.testing.assert_array_equal(traj.pbc, [True, True, False])
    np.testing.assert_allclose(traj.cell[0], [[24.0, 0, 0], [0, 23.382687, 0], [0, 0, 1.0]], atol=1e-5)
    # atom id 8, frame 0: x = 23.46999359 with ix = -1 → unwrapped by one cell length (24 Å)
    np.testing.assert_allclose(traj.positions[0, 7], [23.46999359 - 24.0, 1.51194096, 17.20757294], atol=1e-5)
    np.testing.assert_allclose(traj.velocities[0, 7], [-0.00297797, -0.00302525, -0.00312715], rtol=1e-5)  # Å/fs
    np.testing.assert_allclose(traj.forces[0, 7], np.array([0.0239206, -0.08770612, -0.08445013]) * KCALMOL_EV,
                               rtol=1e-5)
    # the velocities carry the atoms from frame to frame in the file's own time step
    step = np.diff(traj.positions, axis=0)
    mean_v = 0.5 * (traj.velocities[1:] + traj.velocities[:-1])
    assert abs((step * mean_v).sum() / (mean_v * mean_v).sum() / 8.058974 - 1) < 0.01


def test_real_lammps_netcdf_slab_upsampled_keeps_its_periodic_axes(tmp_path, capsys):
    import ase.io

    out = tmp_path / "fine.extxyz"
    assert main([str(SLAB), "--type-map", SLAB_TYPES, "--factor", "2", "--method", "hermite", "-o", str(out)]) == 0
    coarse, fine = read_trajectory(SLAB, type_map=SLAB_TYPES), read_trajectory(out)
    assert fine.n_frames == 21
    np.testing.assert_allclose(fine.positions[::2], coarse.positions, atol=1e-7)
    np.testing.assert_array_equal(fine.pbc, [True, True, False])
    atoms = ase.io.read(out, index=1)
    np.testing.assert_array_equal(atoms.pbc, [True, True, False])
    np.testing.assert_allclose(atoms.cell.lengths()[:2], [24.0, 23.382687], atol=1e-5)


@pytest.mark.parametrize("extension", [".dcd", ".nc"])
def test_real_lammps_netcdf_slab_written_without_a_fake_box(tmp_path, extension):
    """DCD and AMBER NetCDF have no per-axis periodicity: the slab's vacuum axis is written
    with length 0 (the AMBER convention LAMMPS follows), not as the 1 Å completed row, and
    read back (by MDAnalysis and by us) as periodic in x and y only."""
    import warnings

    import ase
    import ase.io
    import MDAnalysis as mda

    out = tmp_path / f"fine{extension}"
    assert main([str(SLAB), "--type-map", SLAB_TYPES, "--factor", "2", "--method", "hermite", "-o", str(out)]) == 0
    coarse = read_trajectory(SLAB, type_map=SLAB_TYPES)
    topology = tmp_path / "slab.pdb"
    ase.io.write(topology, ase.Atoms(numbers=coarse.numbers, positions=coarse.positions[0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        universe = mda.Universe(str(topology), str(out))
    np.testing.assert_allclose(universe.dimensions, [24.0, 23.382687, 0.0, 90.0, 90.0, 90.0], atol=1e-4)
    fine = read_trajectory(out, topology=str(topology))
    np.testing.assert_array_equal(fine.pbc, [True, True, False])
    np.testing.assert_allclose(fine.cell[0], coarse.cell[0], atol=1e-4)
    np.testing.assert_allclose(fine.positions[::2], coarse.positions, atol=1e-3)  # float32 in the file

# ------------------------------------------------------------------ MDAnalysis integration
def test_upsample_universe_takes_lammps_units_and_type_map(tmp_path):
    import MDAnalysis as mda

    from mdsr_plugin.integrations.mdanalysis import upsample_universe

    shutil.copy(METAL / "dump.out", tmp_path / "run.lammpstrj")  # no log: units must be given
    universe = mda.Universe(str(tmp_path / "run.lammpstrj"), format="LAMMPSDUMP", topology_format="LAMMPSDUMP")
    with pytest.raises(FormatError, match="LAMMPS dumps do not say their units"):
        upsample_universe(universe, 2, "hermite", dt=100.0)
    fine = upsample_universe(universe, 2, "hermite", dt=100.0, lammps_units="metal", type_map="1:Al")
    assert len(fine.trajectory) == 21
    fine.trajectory[2]
    raw = dump_frames(METAL / "dump.out")[1][3]
    np.testing.assert_allclose(fine.trajectory.ts.velocities, raw[:, 8:11], rtol=1e-5)  # Å/ps back in MDAnalysis
    with pytest.raises(FormatError, match="type 1 not in the type map"):
        upsample_universe(universe, 2, "hermite", dt=100.0, lammps_units="metal", type_map="2:Mg")


def test_mdsr_reader_format_takes_lammps_units_and_type_map(tmp_path):
    import MDAnalysis as mda

    import mdsr_plugin  # noqa: F401 - registers the MDSR format

    shutil.copy(METAL / "dump.out", tmp_path / "run.lammpstrj")  # no log beside it
    universe = mda.Universe(str(tmp_path / "run.lammpstrj"), str(tmp_path / "run.lammpstrj"), format="MDSR",
                            topology_format="LAMMPSDUMP", factor=2, method="hermite", dt=100.0,
                            lammps_units="metal", type_map="1:Al")
    assert len(universe.trajectory) == 21
    universe.trajectory[4]
    raw = dump_frames(METAL / "dump.out")[2][3]
    np.testing.assert_allclose(universe.trajectory.ts.velocities, raw[:, 8:11], rtol=1e-5)  # Å/ps
