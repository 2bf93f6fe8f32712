"""Readers on real files from other MD codes (MDAnalysisTests) and on files other tools write."""

import warnings

import ase.io
import MDAnalysis as mda
import numpy as np
import pytest
from MDAnalysisTests import datafiles as data

from mdsr_plugin.io import FormatError, open_reader, read_trajectory
from mdsr_plugin.trajectory import TrajectoryError
from mdsr_plugin.pipeline import upsample


def mda_frames(*files, **kwargs):
    """Positions (Å), velocities (Å/ps or None) and times (ps) as MDAnalysis reads them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        universe = mda.Universe(*map(str, files), **kwargs)
    frames = [(ts.positions.copy(), ts.velocities.copy() if ts.has_velocities else None, ts.time)
              for ts in universe.trajectory]
    return universe, frames


@pytest.mark.parametrize(
    "trajectory, topology, velocities, forces, periodic",
    [
        (data.DCD, data.PSF, False, False, False),  # CHARMM DCD (adenylate kinase)
        (data.DCD_TRICLINIC, data.PSF_TRICLINIC, False, False, True),  # triclinic water box
        (data.NCDF, data.PRMncdf, False, False, True),  # AMBER NetCDF
    ],
    ids=["dcd", "dcd-triclinic", "netcdf"],
)
def test_mdanalysistests_files_match_mdanalysis(trajectory, topology, velocities, forces, periodic):
    traj = read_trajectory(trajectory, topology=topology)
    universe, frames = mda_frames(topology, trajectory)
    assert (traj.n_frames, traj.n_atoms) == (len(frames), len(universe.atoms))
    np.testing.assert_allclose(traj.positions, [f[0] for f in frames], atol=1e-3)
    np.testing.assert_allclose(traj.times, [1000 * f[2] for f in frames], rtol=1e-6)
    assert traj.has_velocities == velocities and traj.has_forces == forces
    if velocities:
        np.testing.assert_allclose(traj.velocities * 1000, [f[1] for f in frames], rtol=1e-5, atol=1e-3)
    assert traj.is_periodic == periodic
    assert (traj.numbers > 0).all()  # elements recovered from the topology


@pytest.mark.parametrize("trajectory", [data.TRR_xvf, data.H5MD_xvf])
def test_tip4p_virtual_sites_are_refused_never_read_as_oxygen(trajectory):
    """cobrotoxin's TPR has 4612 massless MW sites: once read as O, now refused by name."""
    with pytest.raises(FormatError, match=r"atom 921 \(MW\) is a massless virtual site"):
        read_trajectory(trajectory, topology=data.TPR_xvf)


def test_lammps_dump_needs_units_dt_and_elements_and_keeps_velocities():
    with pytest.raises(FormatError, match="LAMMPS dumps do not say their units"):
        read_trajectory(data.LAMMPSDUMP_image_vf, dt=2.0)
    traj = read_trajectory(data.LAMMPSDUMP_image_vf, dt=2.0, lammps_units="real", type_map="1:O,2:H")
    assert traj.has_velocities and traj.is_periodic
    np.testing.assert_allclose(traj.times, 2.0 * np.arange(traj.n_frames))
    fine = upsample(traj, 4)
    assert fine.n_frames == (traj.n_frames - 1) * 4 + 1


def test_lammps_dump_compressed_periodic():
    traj = read_trajectory(data.LAMMPSDUMP, dt=1.0)
    assert traj.n_frames == 3 and traj.is_periodic


def test_namd_velocity_dcd_is_picked_up(tmp_path):
    """A velocity DCD written by MDAnalysis itself, in NAMD's Å/AKMA convention."""
    universe, frames = mda_frames(data.PSF, data.DCD)
    rng = np.random.default_rng(1)
    velocities_ps = rng.normal(0, 5, (len(frames), len(universe.atoms), 3))  # Å/ps
    path = tmp_path / "vel.dcd"
    with mda.Writer(str(path), n_atoms=len(universe.atoms), format="DCD") as writer:
        for v in velocities_ps:
            universe.trajectory.ts.positions = v / 20.45482706
            writer.write(universe.atoms)
    traj = read_trajectory(data.DCD, topology=data.PSF, velocities=path)
    np.testing.assert_allclose(traj.velocities * 1000, velocities_ps, rtol=1e-5, atol=1e-4)


def test_velocity_file_frame_mismatch(tmp_path):
    universe, frames = mda_frames(data.PSF, data.DCD)
    path = tmp_path / "vel.dcd"
    with mda.Writer(str(path), n_atoms=len(universe.atoms), format="DCD") as writer:
        writer.write(universe.atoms)
    with pytest.raises(FormatError, match="has 1 frames"):
        read_trajectory(data.DCD, topology=data.PSF, velocities=path)


def test_dcd_without_topology_is_a_clear_error():
    with pytest.raises(FormatError, match="need a topology; pass --top"):
        read_trajectory(data.DCD)


def test_cp2k_xyz_time_comment(tmp_path):
    lines = []
    for i in range(4):
        lines += ["3", f" i =      {i * 20}, time =      {i * 10.0:.3f}, E =     -17.18"]
        lines += [f"O 0.0 0.0 {0.01 * i}", "H 0.96 0.0 0.0", "H -0.24 0.93 0.0"]
    path = tmp_path / "cp2k-pos-1.xyz"
    path.write_text("\n".join(lines) + "\n")
    traj = read_trajectory(path)
    np.testing.assert_allclose(traj.times, [0, 10, 20, 30])
    assert traj.dt == 10.0 and list(traj.numbers) == [8, 1, 1]


def test_plain_xyz_needs_dt(tmp_path):
    path = tmp_path / "plain.xyz"
    path.write_text("2\nframe 0\nH 0 0 0\nH 0.74 0 0\n2\nframe 1\nH 0 0 0\nH 0.75 0 0\n")
    with pytest.raises(FormatError, match="pass --dt"):
        read_trajectory(path)
    traj = read_trajectory(path, dt=5.0)
    assert not traj.has_velocities
    np.testing.assert_allclose(traj.times, [0.0, 5.0])


def test_extxyz_vel_columns_of_other_codes_are_velocities(tmp_path):
    path = tmp_path / "gpumd.xyz"
    path.write_text(
        '1\nProperties=species:S:1:pos:R:3:vel:R:3 time=0.0\nH 0 0 0 0.01 0 0\n'
        '1\nProperties=species:S:1:pos:R:3:vel:R:3 time=1.0\nH 0.01 0 0 0.01 0 0\n'
    )
    traj = read_trajectory(path)
    np.testing.assert_allclose(traj.velocities[:, 0, 0], 0.01)


def test_ase_traj_and_xdatcar(tmp_path, small_traj):
    from mdsr_plugin.io.ase_backend import trajectory_to_atoms

    images = trajectory_to_atoms(small_traj)
    for atoms in images:
        atoms.info.clear()  # as ASE's own MD writes them: no time
    ase.io.write(tmp_path / "md.traj", images)
    ase.io.write(tmp_path / "XDATCAR", images, format="vasp-xdatcar")
    with pytest.raises(FormatError, match="pass --dt"):
        read_trajectory(tmp_path / "md.traj")
    traj = read_trajectory(tmp_path / "md.traj", dt=2.0)
    np.testing.assert_allclose(traj.velocities, small_traj.velocities, atol=1e-12)
    xdatcar = read_trajectory(tmp_path / "XDATCAR", dt=2.0)
    assert xdatcar.n_frames == small_traj.n_frames and xdatcar.is_periodic
    np.testing.assert_allclose(xdatcar.cell, small_traj.cell, atol=1e-6)


def test_changing_atom_count_names_the_frame(tmp_path):
    path = tmp_path / "grow.xyz"
    path.write_text("1\ntime=0\nH 0 0 0\n1\ntime=1\nH 0 0 0\n2\ntime=2\nH 0 0 0\nH 1 0 0\n")
    with pytest.raises(TrajectoryError, match="frame 2: 2 atoms where frame 0 has 1"):
        read_trajectory(path)


def test_nan_coordinates_name_the_frame(tmp_path):
    path = tmp_path / "nan.xyz"
    path.write_text("1\ntime=0\nH 0 0 0\n1\ntime=1\nH nan 0 0\n")
    with pytest.raises(TrajectoryError, match="frame 1: positions contain NaN"):
        read_trajectory(path)


def test_truncated_file_is_a_format_error(tmp_path):
    path = tmp_path / "cut.xyz"
    path.write_text("3\ntime=0\nO 0 0 0\nH 1 0 0\nH 0 1 0\n3\ntime=1\nO 0 0 0\n")
    with pytest.raises((FormatError, TrajectoryError)):
        read_trajectory(path)


def test_chunks_are_bounded_and_complete():
    with open_reader(data.DCD, topology=data.PSF) as reader:
        sizes = [chunk.n_frames for chunk in reader.chunks(30)]
    assert sizes == [30, 30, 30, 8]
