"""Real AIMD archives as CP2K, i-PI and VASP wrote them (tests/data/real, origins in its README).

Every number read is checked against the file's own, converted by hand: CP2K's and
i-PI's velocities through the kinetic energy each code printed beside them, forces
and positions through their first values, the time step through the code's own
record of it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mdsr_plugin.cli import main
from mdsr_plugin.io import FormatError, open_reader, read_trajectory
from mdsr_plugin.units import ACCEL_PER_FORCE_OVER_MASS

REAL = Path(__file__).parent / "data" / "real"
REFERENCE = json.loads((REAL / "reference_values.json").read_text())
HARTREE_EV = 27.211386245988  # CODATA 2018, by hand: not the package's table
BOHR_A = 0.529177210903
AU_TIME_FS = 0.0241888432658

CP2K_NVT = REAL / "cp2k" / "h2o_nvt"
CP2K_NPT = REAL / "cp2k" / "water_xtb_npt_i"
IPI_WATER = REAL / "ipi" / "edanve_water"
IPI_ZUNDEL = REAL / "ipi" / "driven_zundel"
VASP5 = REAL / "vasp" / "h2o_md_vasp5"


def kinetic_hartree(traj) -> np.ndarray:
    """½ Σ m v² per frame, hartree (v in Å/fs, m in u)."""
    ev = 0.5 * np.einsum("n,fni->f", traj.masses, traj.velocities**2) / ACCEL_PER_FORCE_OVER_MASS
    return ev / HARTREE_EV


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ------------------------------------------------------------------------------ CP2K
def test_cp2k_positions_find_their_velocities_forces_and_cell_beside_them():
    with open_reader(CP2K_NVT / "H2O_restart-pos-1.xyz") as reader:
        traj = reader.read()
        notes = reader.notes
    assert traj.n_frames == 3 and traj.n_atoms == 12
    assert list(traj.numbers[:3]) == [8, 1, 1]
    np.testing.assert_array_equal(traj.steps, [20, 21, 22])  # a restarted run: steps 20.., not 0..
    np.testing.assert_allclose(traj.times, [20.0, 21.0, 22.0])
    # The file's first velocity, bohr per atomic time unit, converted by hand.
    raw = np.array([-0.0001207346, 0.0001074056, 0.0004703622])
    np.testing.assert_allclose(traj.velocities[0, 0], raw * BOHR_A / AU_TIME_FS, rtol=1e-7)
    raw_force = np.array([0.0102121326, 0.0082450214, 0.0258173651])
    np.testing.assert_allclose(traj.forces[0, 0], raw_force * HARTREE_EV / BOHR_A, rtol=1e-7)  # ASE: CODATA 2014
    np.testing.assert_allclose(traj.cell, np.broadcast_to(np.eye(3) * 12.6, (3, 3, 3)))
    # CP2K's own kinetic energy (.ener, hartree) from the velocities as read; masses differ
    # from CP2K's in the fifth digit.
    ener = np.loadtxt(CP2K_NVT / "H2O_restart-1.ener")
    np.testing.assert_allclose(kinetic_hartree(traj), ener[:, 2], rtol=2e-4)
    assert any("H2O_restart-vel-1.xyz (CP2K, bohr/a.u. time → Å/fs)" in n for n in notes)


def test_cp2k_npt_cell_changes_per_frame_and_forces_come_from_a_named_force_file():
    traj = read_trajectory(CP2K_NPT / "water-300K-pos-1.xyz")
    cell = np.loadtxt(CP2K_NPT / "water-300K-1.cell")
    np.testing.assert_allclose(traj.cell[:, 0, 0], cell[:, 2])
    np.testing.assert_allclose(traj.cell[:, 2, 2], cell[:, 10])
    assert traj.cell[0, 0, 0] > traj.cell[-1, 0, 0]  # the box shrinks
    assert traj.has_forces and not traj.has_velocities
    with open(CP2K_NPT / "water-300K-nvt.force-frc-1.xyz") as handle:
        first = np.array(handle.readlines()[2].split()[1:], dtype=float)
    np.testing.assert_allclose(traj.forces[0, 0], first * HARTREE_EV / BOHR_A, rtol=1e-7)  # ASE: CODATA 2014


@pytest.mark.parametrize("name, role", [("H2O_restart-vel-1.xyz", "velocities"), ("H2O_restart-frc-1.xyz", "forces")])
def test_a_cp2k_velocity_or_force_file_is_refused_as_positions(tmp_path, capsys, name, role):
    code = main([str(CP2K_NVT / name), "--factor", "2", "-o", str(tmp_path / "fine.xyz")])
    line = one_line(capsys.readouterr().err)
    assert code == 1 and f"holds CP2K {role}, not positions" in line
    assert not (tmp_path / "fine.xyz").exists()


def _copy_set(tmp_path, drop_last_velocity_frame=False, shift_velocity_steps=False):
    for f in CP2K_NVT.glob("H2O_restart*"):
        shutil.copy(f, tmp_path / f.name)
    velocity = tmp_path / "H2O_restart-vel-1.xyz"
    lines = velocity.read_text().splitlines(keepends=True)
    if drop_last_velocity_frame:
        velocity.write_text("".join(lines[: 2 * 14]))
    if shift_velocity_steps:
        velocity.write_text("".join(line.replace("i =       21", "i =       23") for line in lines))
    return tmp_path / "H2O_restart-pos-1.xyz"


@pytest.mark.parametrize("fault, message", [
    ({"drop_last_velocity_frame": True}, "H2O_restart-vel-1.xyz has 2 frames, H2O_restart-pos-1.xyz has more"),
    ({"shift_velocity_steps": True}, "frame 1: H2O_restart-pos-1.xyz is MD step 21, H2O_restart-vel-1.xyz step 23"),
])
def test_companion_frames_that_do_not_match_are_refused_in_one_line(tmp_path, capsys, fault, message):
    positions = _copy_set(tmp_path, **fault)
    code = main([str(positions), "--factor", "2", "-o", str(tmp_path / "fine.xyz")])
    assert code == 1 and message in one_line(capsys.readouterr().err)
    assert not (tmp_path / "fine.xyz").exists()


def test_explicit_companion_flags_work_for_a_renamed_set_and_name_what_was_read(tmp_path, capsys):
    """Files renamed so nothing is found beside them: --velocities/--forces/--cell give them."""
    for name, new in (("pos", "run.xyz"), ("vel", "v.xyz"), ("frc", "f.xyz")):
        shutil.copy(CP2K_NVT / f"H2O_restart-{name}-1.xyz", tmp_path / new)
    shutil.copy(CP2K_NVT / "H2O_restart-1.cell", tmp_path / "box.cell")
    code = main([str(tmp_path / "run.xyz"), "--velocities", str(tmp_path / "v.xyz"), "--forces",
                 str(tmp_path / "f.xyz"), "--cell", str(tmp_path / "box.cell"), "--factor", "4",
                 "-o", str(tmp_path / "fine.h5md"), "--method", "hermite"])
    out = capsys.readouterr().err  # what was read goes to stderr, the result to stdout
    assert code == 0
    assert "velocities from v.xyz (CP2K, bohr/a.u. time → Å/fs)" in out
    assert "forces from f.xyz (CP2K, Ha/bohr → eV/Å)" in out and "cell from box.cell" in out
    assert "coarse step 1 fs from the file's times" in out
    fine = read_trajectory(tmp_path / "fine.h5md")
    coarse = read_trajectory(CP2K_NVT / "H2O_restart-pos-1.xyz")
    assert fine.n_frames == 9
    np.testing.assert_array_equal(fine.positions[::4], coarse.positions)
    np.testing.assert_array_equal(fine.velocities[::4], coarse.velocities)


def test_a_velocity_file_of_unknown_units_is_refused(tmp_path, capsys):
    plain = tmp_path / "v.xyz"
    plain.write_text("1\nno units here\nH 0 0 0\n1\nno units here\nH 0 0 0\n")
    code = main([str(CP2K_NVT / "H2O_restart-pos-1.xyz"), "--velocities", str(plain), "--factor", "2",
                 "-o", str(tmp_path / "fine.xyz")])
    assert code == 1
    assert "cannot tell how it stores velocities" in one_line(capsys.readouterr().err)


# ------------------------------------------------------------------------------ i-PI
def test_ipi_atomic_units_are_converted_by_each_files_tag():
    with open_reader(IPI_WATER / "ref_simulation.positions_0.xyz") as reader:
        traj = reader.read()
    np.testing.assert_allclose(traj.positions[0, 0], np.array([3.77946, 3.41870, 3.77945]) * BOHR_A, rtol=1e-6)
    np.testing.assert_allclose(traj.cell[0], np.eye(3) * 7.0 * BOHR_A, atol=1e-9)  # cell{atomic_unit}
    assert traj.dt == pytest.approx(1.0)  # <timestep units='femtosecond'> 1 in input.xml
    properties = np.loadtxt(IPI_WATER / "ref_simulation.properties.out")
    np.testing.assert_allclose(kinetic_hartree(traj)[1:], properties[1:, 3], rtol=3e-4)


def test_ipi_positions_in_angstrom_with_velocities_in_atomic_units():
    traj = read_trajectory(IPI_ZUNDEL / "ref_simulation.pos_0.xyz")
    np.testing.assert_allclose(traj.positions[0, 0], [0.54045, -0.97485, -0.21658])  # positions{angstrom}
    np.testing.assert_allclose(traj.velocities[1, 0], np.array([6.5762e-07, 1.03469e-06, -8.79807e-07])
                               * BOHR_A / AU_TIME_FS, rtol=1e-7)
    assert traj.dt == pytest.approx(0.25)
    np.testing.assert_allclose(traj.cell[0], np.eye(3) * 13.38377, atol=1e-5)


def test_an_ipi_velocity_file_is_refused_as_positions(tmp_path, capsys):
    code = main([str(IPI_ZUNDEL / "ref_simulation.vel_0.xyz"), "--factor", "2", "-o", str(tmp_path / "f.xyz")])
    assert code == 1 and "holds i-PI velocities, not positions" in one_line(capsys.readouterr().err)


# ------------------------------------------------------------------------------ VASP
@pytest.mark.parametrize("name", ["vasprun.h2o.md.xml", "OUTCAR.h2o.md"])
def test_vasp_vasprun_and_outcar_give_forces_cell_and_potim(name):
    with open_reader(VASP5 / name) as reader:
        traj = reader.read()
    assert traj.n_frames == 3 and traj.n_atoms == 6 and not traj.has_velocities
    np.testing.assert_allclose(traj.forces[0, 0], [-0.14198623, -0.57372915, 0.35651545], atol=1e-6)
    np.testing.assert_allclose(traj.positions[0, 0], [4.34854, 4.20903, 5.2], atol=1e-5)
    assert traj.dt == pytest.approx(1.0)  # POTIM = 1.0 in the file's own header
    assert traj.is_periodic
    assert list(traj.numbers[:3]) == [8, 8, 1]


def test_vasp6_vasprun_time_step_is_its_potim():
    assert read_trajectory(REAL / "vasp" / "ti_aimd_vasp6" / "vasprun.xml").dt == pytest.approx(2.0)


def test_xdatcar_takes_potim_from_beside_it_times_the_configuration_stride(tmp_path, capsys):
    shutil.copy(REAL / "vasp" / "xdatcar_vasp5_nblock50" / "XDATCAR", tmp_path / "XDATCAR")
    with pytest.raises(FormatError, match="records no time step; pass --dt"):
        read_trajectory(tmp_path / "XDATCAR")
    (tmp_path / "INCAR").write_text("IBRION = 0\nPOTIM = 0.5\nNBLOCK = 50\n")
    traj = read_trajectory(tmp_path / "XDATCAR")
    np.testing.assert_array_equal(traj.steps, [50, 100, 150, 200, 250])
    assert traj.dt == pytest.approx(25.0)  # POTIM 0.5 fs × 50 steps between configurations
    # Fractional → Cartesian in the hexagonal cell, by hand for the first atom.
    fractional = np.array([0.30608513, 0.44413860, 0.47480219])
    cell = np.array([[9.611580, -5.549250, 0], [0, 11.098500, 0], [0, 0, 18.865000]])
    np.testing.assert_allclose(traj.positions[0, 0], fractional @ cell, rtol=1e-9)
    assert traj.n_atoms == 166 and list(np.bincount(traj.numbers)[[1, 6, 8, 17, 78]]) == [54, 16, 16, 16, 64]


def test_xdatcar_with_a_header_per_frame_and_blank_lines(tmp_path):
    """VASP 6 repeats the header before every frame of a changing cell; some writers add blank lines."""
    lines = (REAL / "vasp" / "xdatcar_vasp5_nblock50" / "XDATCAR").read_text().splitlines()
    header, n_atoms = lines[:7], 166
    frames = []
    for k in range(3):
        start = 7 + k * (n_atoms + 1)
        scaled = header[:2] + [" ".join(f"{float(x) * (1 + 0.01 * k):.6f}" for x in row.split()) for row in header[2:5]]
        frames += scaled + header[5:7] + lines[start:start + n_atoms + 1] + [""]
    path = tmp_path / "XDATCAR"
    path.write_text("\n".join(frames) + "\n")
    traj = read_trajectory(path, dt=10.0)
    assert traj.n_frames == 3
    np.testing.assert_allclose(traj.cell[:, 1, 1], 11.0985 * np.array([1.0, 1.01, 1.02]), rtol=1e-6)


def test_cp2k_set_upsampled_end_to_end_reads_back_in_mdanalysis_and_ase(tmp_path, capsys):
    import ase.io
    import MDAnalysis as mda

    code = main([str(CP2K_NVT / "H2O_restart-pos-1.xyz"), "--factor", "5", "-o", str(tmp_path / "fine.xyz")])
    assert code == 0, capsys.readouterr().err
    images = ase.io.read(tmp_path / "fine.xyz", ":")
    assert len(images) == 11
    np.testing.assert_allclose(images[5].positions, read_trajectory(CP2K_NVT / "H2O_restart-pos-1.xyz").positions[1],
                               atol=1e-8)
    universe = mda.Universe(str(tmp_path / "fine.xyz"))
    assert len(universe.trajectory) == 11


def test_batch_treats_a_cp2k_or_ipi_set_as_one_trajectory(tmp_path):
    """The velocity/force files are read with their positions, never planned as jobs of their own."""
    from mdsr_plugin.batch import process_archive
    from mdsr_plugin.batch.archive import BatchSettings, plan_jobs
    from mdsr_plugin.settings import UpsampleSettings

    archive = tmp_path / "archive"
    shutil.copytree(CP2K_NVT, archive / "cp2k")
    shutil.copytree(IPI_ZUNDEL, archive / "ipi")
    shutil.copytree(VASP5, archive / "vasp")
    settings = BatchSettings(UpsampleSettings(factor=2, method="hermite", output_format="h5md"),
                             fallback="classical")
    exclude = ["init.xyz"]  # i-PI's starting geometry: one frame
    jobs = plan_jobs(archive, tmp_path / "out", settings, exclude=exclude)
    assert sorted(job.relative for job in jobs) == [
        "cp2k/H2O_restart-pos-1.xyz", "ipi/ref_simulation.pos_0.xyz", "ipi/ref_simulation.pos_1.xyz",
        "vasp/OUTCAR.h2o.md", "vasp/vasprun.h2o.md.xml"]
    cp2k = next(job for job in jobs if job.relative.startswith("cp2k"))
    assert {Path(p).name for p in cp2k.reads} == {"H2O_restart-pos-1.xyz", "H2O_restart-vel-1.xyz",
                                                   "H2O_restart-frc-1.xyz", "H2O_restart-1.cell"}
    result = process_archive(archive, tmp_path / "out", settings, exclude=exclude)
    assert len(result.done) == 3 and len(result.failed) == 2  # VASP has no velocities for hermite
    fine = read_trajectory(tmp_path / "out" / "cp2k" / "H2O_restart-pos-1.h5md")
    assert fine.n_frames == 5 and fine.has_velocities
