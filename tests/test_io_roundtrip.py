"""Every writer's output read back by MDAnalysis and ASE themselves, in their own units.

ASE reads XYZ, ``.traj`` and NetCDF positions; MDAnalysis reads XYZ positions, DCD
(+ velocity DCD), TRR, NetCDF and H5MD with velocities.  Our own reader reads them all.
"""

import warnings
from dataclasses import replace
from pathlib import Path

import ase.io
import MDAnalysis as mda
import numpy as np
import pytest
from ase import units as ase_units

from mdsr_plugin.io import (FormatError, formats, get_format, open_reader, open_writer, read_trajectory,
                             write_trajectory)
from mdsr_plugin.io.mdanalysis import DCDWriter
from mdsr_plugin.trajectory import TrajectoryError

WRITABLE = sorted(name for name, fmt in formats().items() if fmt.open_writer is not None)
EXTENSION = {"xyz": ".xyz", "traj": ".traj", "h5md": ".h5md", "dcd": ".dcd", "trr": ".trr",
             "xtc": ".xtc", "netcdf": ".nc"}
# float32 formats keep ~7 significant digits; XTC keeps 3 decimals of nm
POSITION_TOLERANCE = {"xtc": 6e-3, "dcd": 1e-5, "trr": 1e-5, "netcdf": 1e-5}
CARRY_VELOCITIES = {"xyz", "traj", "h5md", "dcd", "trr", "netcdf"}


@pytest.fixture
def topology(tmp_path, small_traj):
    path = tmp_path / "top.pdb"
    ase.io.write(path, ase.Atoms(numbers=small_traj.numbers, positions=small_traj.positions[0],
                                 cell=small_traj.cell[0], pbc=True))
    return path


def mda_universe(topology, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mda.Universe(str(topology), str(path))


def test_every_writable_format_is_covered():
    assert set(WRITABLE) == set(EXTENSION)


@pytest.mark.parametrize("name", WRITABLE)
def test_round_trip_through_our_reader(tmp_path, small_traj, topology, name):
    path = tmp_path / f"out{EXTENSION[name]}"
    written = write_trajectory(path, small_traj)
    # only the published files are left: no temporary names
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["top.pdb", *(p.name for p in written)])
    options = {"topology": topology} if name in ("dcd", "trr", "xtc", "netcdf") else {}
    if name == "dcd":
        options["velocities"] = DCDWriter.velocity_path(path)
    back = read_trajectory(path, **options)
    tol = POSITION_TOLERANCE.get(name, 1e-8)
    assert back.n_frames == small_traj.n_frames
    np.testing.assert_allclose(back.positions, small_traj.positions, atol=tol)
    np.testing.assert_allclose(back.times, small_traj.times, atol=1e-4)
    np.testing.assert_allclose(back.cell, small_traj.cell, atol=tol)
    if name in CARRY_VELOCITIES:
        np.testing.assert_allclose(back.velocities, small_traj.velocities, atol=1e-7)
    assert written[0].name == path.name


@pytest.mark.parametrize("name", WRITABLE)
@pytest.mark.parametrize("dropped", [("forces",), ("velocities", "forces")])
def test_writers_follow_the_quantities_the_trajectory_has(tmp_path, small_traj, topology, name, dropped):
    # An upsampled trajectory has velocities but no forces; a coarse one may have neither.
    traj = small_traj.without(*dropped)
    path = tmp_path / f"out{EXTENSION[name]}"
    write_trajectory(path, traj)
    options = {"topology": topology} if name in ("dcd", "trr", "xtc", "netcdf") else {}
    back = read_trajectory(path, **options)
    np.testing.assert_allclose(back.positions, traj.positions, atol=POSITION_TOLERANCE.get(name, 1e-8))
    assert back.forces is None
    if "velocities" in dropped or name not in CARRY_VELOCITIES:
        assert back.velocities is None
    elif name != "dcd":  # DCD velocities live in a separate file, read only when named
        np.testing.assert_allclose(back.velocities, traj.velocities, atol=1e-7)


@pytest.mark.parametrize("name", ["h5md", "trr", "netcdf", "dcd", "xyz", "xtc"])
def test_mdanalysis_reads_our_output_in_its_units(tmp_path, small_traj, topology, name):
    path = tmp_path / f"out{EXTENSION[name]}"
    write_trajectory(path, small_traj)
    universe = mda_universe(topology, path)
    assert len(universe.trajectory) == small_traj.n_frames
    tol = POSITION_TOLERANCE.get(name, 1e-5)
    times_ps = np.array([ts.time for ts in universe.trajectory])
    positions = np.array([ts.positions.copy() for ts in universe.trajectory])
    np.testing.assert_allclose(positions, small_traj.positions, atol=tol)
    if name != "xyz":  # MDAnalysis' XYZ reader has no time
        np.testing.assert_allclose(times_ps, small_traj.times / 1000.0, atol=1e-6)
    if name in ("h5md", "trr", "netcdf"):
        velocities = np.array([ts.velocities.copy() for ts in universe.trajectory])  # Å/ps
        np.testing.assert_allclose(velocities, small_traj.velocities * 1000.0, rtol=1e-5, atol=1e-4)
    if name in ("dcd", "trr", "netcdf", "xtc"):
        assert universe.trajectory.dt == pytest.approx(small_traj.dt / 1000.0, rel=1e-6)


def test_dcd_velocity_file_follows_the_namd_convention(tmp_path, small_traj, topology):
    path = tmp_path / "out.dcd"
    write_trajectory(path, small_traj)
    velocity_universe = mda_universe(topology, DCDWriter.velocity_path(path))
    stored = np.array([ts.positions.copy() for ts in velocity_universe.trajectory])
    # NAMD: v[Å/ps] = stored × 20.45482706
    np.testing.assert_allclose(stored * 20.45482706, small_traj.velocities * 1000.0, rtol=1e-5, atol=1e-5)


def _mdanalysis_dcd(path, traj, vectors):
    """``vectors`` (F, N, 3) written frame by frame by MDAnalysis' own DCD writer, the way
    mdsr_plugin's DCD output is defined: box from the cell, vectors in MDAnalysis' cell frame."""
    from ase.geometry import cell_to_cellpar, cellpar_to_cell

    from mdsr_plugin.io.mdanalysis import cell_to_dimensions

    def rotation_to_mda_frame(cell):  # through ASE, not the package's vectorised one
        canonical = cellpar_to_cell(cell_to_cellpar(cell))
        return None if np.allclose(canonical, cell, atol=1e-8) else np.linalg.solve(cell, canonical)

    universe = mda.Universe.empty(traj.n_atoms, trajectory=True)
    ts = universe.trajectory.ts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mda.Writer(str(path), n_atoms=traj.n_atoms, format="DCD", dt=traj.dt / 1000.0,
                        istart=int(round(traj.times[0] / traj.dt)), nsavc=1) as writer:
            for i in range(traj.n_frames):
                rotation = None if traj.cell is None else rotation_to_mda_frame(traj.cell[i])
                ts.positions = vectors[i] if rotation is None else vectors[i] @ rotation
                ts.dimensions = None if traj.cell is None else cell_to_dimensions(traj.cell[i])
                writer.write(universe.atoms)


@pytest.mark.parametrize("cell", ["none", "triclinic", "rotated"])
def test_dcd_bytes_equal_mdanalysis_own_writer(tmp_path, small_traj, cell):
    from scipy.spatial.transform import Rotation

    traj = small_traj
    if cell == "none":
        traj = replace(small_traj.without("forces"), cell=None, pbc=False)
    elif cell == "rotated":  # a cell not in MDAnalysis' orientation: vectors are rotated into it
        rotation = Rotation.from_euler("xyz", [20, -35, 50], degrees=True).as_matrix()
        traj = replace(small_traj, positions=small_traj.positions @ rotation.T,
                       cell=small_traj.cell @ rotation.T, velocities=small_traj.velocities @ rotation.T)
    path = tmp_path / "ours.dcd"
    with open_writer(path) as writer:  # in two chunks, as the streaming pipeline writes
        writer.write(traj[:4])
        writer.write(traj[4:])
    _mdanalysis_dcd(tmp_path / "theirs.dcd", traj, traj.positions)
    _mdanalysis_dcd(tmp_path / "theirs.vel.dcd", traj, traj.velocities / 20.45482706 * 1000.0)
    assert path.read_bytes() == (tmp_path / "theirs.dcd").read_bytes()
    ours_v, theirs_v = DCDWriter.velocity_path(path).read_bytes(), (tmp_path / "theirs.vel.dcd").read_bytes()
    assert len(ours_v) == len(theirs_v)
    header = len(ours_v) - traj.n_frames * (80 + 12 * traj.n_atoms)  # box + 3 coordinate records per frame
    assert ours_v[:header] == theirs_v[:header]
    # the velocities were divided by the AKMA factor in another order of operations:
    # the numbers may differ in the last float32 digit
    ours_frames = np.frombuffer(ours_v[header:], np.float32)
    theirs_frames = np.frombuffer(theirs_v[header:], np.float32)
    np.testing.assert_allclose(ours_frames, theirs_frames, rtol=1e-6)


@pytest.mark.parametrize("case", ["periodic-forces", "gas-phase-disagreement", "positions-only"])
def test_extxyz_text_equals_ase_own_writer(tmp_path, small_traj, case):
    from mdsr_plugin.io.ase_backend import trajectory_to_atoms

    traj = small_traj
    if case == "gas-phase-disagreement":
        traj = replace(small_traj.without("forces"), cell=None, pbc=False,
                       frame_data={"disagreement": np.linspace(1e-5, 3e-4, small_traj.n_frames)})
    elif case == "positions-only":
        traj = replace(small_traj.without("velocities", "forces"), steps=None)
    path = tmp_path / "ours.xyz"
    with open_writer(path) as writer:  # in two chunks, as the streaming pipeline writes
        writer.write(traj[:4])
        writer.write(traj[4:])
    ase.io.write(tmp_path / "theirs.xyz", trajectory_to_atoms(traj), format="extxyz")
    assert path.read_text() == (tmp_path / "theirs.xyz").read_text()


def test_h5md_layout_and_units(tmp_path, small_traj):
    import h5py

    path = tmp_path / "out.h5md"
    write_trajectory(path, small_traj, parameters={"method": "hermite"})
    with h5py.File(path) as f:
        group = f["particles/all"]
        assert list(f["h5md"].attrs["version"]) == [1, 1]
        assert group["position/value"].attrs["unit"] == "Angstrom"
        assert group["velocity/value"].attrs["unit"] == "Angstrom fs-1"
        assert group["position/time"].attrs["unit"] == "fs"
        # shuffled gzip: readable by any HDF5 build, smaller and faster than plain gzip
        assert group["position/value"].compression == "gzip" and group["position/value"].shuffle
        np.testing.assert_array_equal(group["position/step"][()], small_traj.steps)
        np.testing.assert_array_equal(group["species"][()], small_traj.numbers)
        assert "hermite" in f["parameters"].attrs["mdsr_plugin"]


def test_h5md_keeps_per_frame_observables(tmp_path, small_traj):
    energies = np.linspace(-10.0, -9.0, small_traj.n_frames)
    path = tmp_path / "out.h5md"
    write_trajectory(path, replace(small_traj, frame_data={"potential_energy": energies}))
    back = read_trajectory(path)
    np.testing.assert_array_equal(back.frame_data["potential_energy"], energies)


def test_ase_reads_our_xyz_and_traj_in_ase_units(tmp_path, small_traj):
    for ext in (".xyz", ".traj"):
        path = tmp_path / f"out{ext}"
        write_trajectory(path, small_traj)
        images = ase.io.read(path, ":")
        assert len(images) == small_traj.n_frames
        np.testing.assert_allclose([a.positions for a in images], small_traj.positions, atol=1e-8)
        # ASE velocities are Å per ASE time unit: ×ase.units.fs gives Å/fs
        velocities = np.array([a.get_velocities() for a in images]) * ase_units.fs
        np.testing.assert_allclose(velocities, small_traj.velocities, atol=1e-9)
        np.testing.assert_allclose([a.info["time"] for a in images], small_traj.times)
        np.testing.assert_allclose(images[0].get_masses(), small_traj.masses)
        assert images[0].pbc.all()


def test_ase_reads_netcdf_positions(tmp_path, small_traj):
    path = tmp_path / "out.nc"
    write_trajectory(path, small_traj)
    images = ase.io.read(path, ":")
    assert len(images) == small_traj.n_frames
    np.testing.assert_allclose([a.positions for a in images], small_traj.positions, atol=1e-5)


def _rotated(traj, theta=0.3):
    rotation = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    return replace(traj, positions=traj.positions @ rotation.T, cell=traj.cell @ rotation.T,
                   velocities=traj.velocities @ rotation.T, forces=traj.forces @ rotation.T)


@pytest.mark.parametrize("handed", ["right", "left"])
@pytest.mark.parametrize("name", ["trr", "dcd", "netcdf"])
def test_rotated_cell_is_written_in_mdanalysis_orientation(tmp_path, small_traj, topology, name, handed):
    """MDAnalysis keeps only box lengths and angles: vectors of a rotated cell are rotated into
    its orientation, and the writer says so once.  A left-handed cell is the same lattice as its
    right-handed equivalent: rotated, never mirrored (chirality kept)."""
    from MDAnalysis.lib.distances import distance_array

    traj = small_traj
    if handed == "left":
        traj = replace(small_traj, cell=small_traj.cell * np.array([1.0, 1.0, -1.0])[:, None])
    path = tmp_path / f"out{EXTENSION[name]}"
    with pytest.warns(UserWarning, match="not in the orientation MDAnalysis reads") as said:
        with open_writer(path) as writer:  # two chunks: one notice
            writer.write(_rotated(traj)[:3])
            writer.write(_rotated(traj)[3:])
    assert sum("orientation MDAnalysis" in str(w.message) for w in said) == 1
    options = {"topology": topology, **({"velocities": DCDWriter.velocity_path(path)} if name == "dcd" else {})}
    back = read_trajectory(path, **options)
    np.testing.assert_allclose(back.positions, small_traj.positions, atol=1e-5)
    np.testing.assert_allclose(back.velocities, small_traj.velocities, atol=1e-7)
    universe = mda_universe(topology, path) if name != "dcd" else mda.Universe(str(topology), str(path))
    for ts, positions in zip(universe.trajectory, small_traj.positions):
        theirs = distance_array(ts.positions, ts.positions, box=ts.dimensions)
        ours = ase.Atoms(numbers=small_traj.numbers, positions=positions, cell=small_traj.cell[0],
                         pbc=True).get_all_distances(mic=True)
        np.testing.assert_allclose(theirs, ours, atol=1e-4)
        # the signed volume of the first three atoms: a mirror would flip it
        def handedness(x):
            return np.sign(np.linalg.det(x[1:4] - x[0]))

        assert handedness(ts.positions) == handedness(positions)


def test_h5md_keeps_a_rotated_cell_exactly_and_says_mdanalysis_would_misread_it(tmp_path, small_traj):
    """MDAnalysis' H5MD reader turns box/edges into lengths and angles; H5MD keeps the file's
    coordinates exactly (our reader, h5py, ZnH5MD read them so) and says so once."""
    path = tmp_path / "out.h5md"
    with pytest.warns(UserWarning, match="H5MD keeps it and the positions exactly") as said:
        with open_writer(path) as writer:
            writer.write(_rotated(small_traj)[:3])
            writer.write(_rotated(small_traj)[3:])
    assert sum("orientation MDAnalysis" in str(w.message) for w in said) == 1
    back = read_trajectory(path)
    np.testing.assert_array_equal(back.positions, _rotated(small_traj).positions)
    np.testing.assert_array_equal(back.cell, _rotated(small_traj).cell)


@pytest.mark.parametrize("name", ["trr", "xtc"])
def test_a_slab_s_gromacs_file_keeps_its_whole_box(tmp_path, small_traj, topology, name):
    """TRR and XTC hold a box matrix, which MDAnalysis zeroes whole for a length of 0: a slab
    (periodic in x and y) is written with its whole cell, with a notice, not without a box."""
    slab = replace(small_traj, pbc=np.array([True, True, False]))
    path = tmp_path / f"slab{EXTENSION[name]}"
    with pytest.warns(UserWarning, match="cannot say which axes are periodic"):
        write_trajectory(path, slab)
    back = read_trajectory(path, topology=topology)
    np.testing.assert_allclose(back.cell, small_traj.cell, atol=POSITION_TOLERANCE[name])
    assert back.pbc.all()
    # NetCDF marks the vacuum axis by a length of 0 (AMBER's convention) and keeps the slab
    write_trajectory(tmp_path / "slab.nc", slab)
    assert list(read_trajectory(tmp_path / "slab.nc", topology=topology).pbc) == [True, True, False]


def _gromacs_file(path, topology, times_ps):
    """An XTC or TRR MDAnalysis writes (GROMACS' float32 times) of drifting atoms."""
    universe = mda_universe(topology, topology)
    rng = np.random.default_rng(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mda.Writer(str(path), universe.atoms.n_atoms) as writer:
            for i, time in enumerate(times_ps):
                universe.atoms.positions = universe.atoms.positions + rng.normal(0, 0.01, (universe.atoms.n_atoms, 3))
                universe.trajectory.ts.time = time
                universe.trajectory.ts.data["step"] = 20 * i
                writer.write(universe.atoms)


@pytest.mark.parametrize("ext", [".xtc", ".trr"])
def test_float32_times_far_into_a_run_are_evenly_spaced(tmp_path, topology, ext):
    """At 1 ns GROMACS' float32 times are rounded to 0.061 fs, 0.6 % of a 10 fs step: the
    frames were refused as uneven.  They are read on the line through the first and last."""
    path = tmp_path / f"late{ext}"
    _gromacs_file(path, topology, 1000.0 + 0.01 * np.arange(40))
    stored = np.array([ts.time for ts in mda_universe(topology, path).trajectory]) * 1000.0
    assert np.ptp(np.diff(stored)) > 0.05  # what the file holds: uneven by its rounding
    with open_reader(path, topology=topology) as reader:
        back = reader.read()
        assert "times stored as float32, rounded to 0.061 fs" in " ".join(reader.notes)
    np.testing.assert_allclose(np.diff(back.times), np.diff(back.times)[0], rtol=1e-9)
    assert abs(back.dt - 10.0) < 2e-4 * 10.0 and abs(back.times[0] - 1e6) <= 0.061
    # a missing frame is a real gap, not rounding: still refused, naming it
    _gromacs_file(tmp_path / f"gap{ext}", topology, 1000.0 + 0.01 * np.delete(np.arange(40), 20))
    with pytest.raises(TrajectoryError, match="frame 20: non-uniform time step"):
        read_trajectory(tmp_path / f"gap{ext}", topology=topology).dt
    # read in chunks, those without the gap are even among themselves but off the file's line
    with open_reader(tmp_path / f"gap{ext}", topology=topology) as reader:
        with pytest.raises(TrajectoryError, match="frames 0-9 are 10.* fs apart, but the file's first and last"):
            next(reader.chunks(10))


def test_times_summed_in_float32_drifting_off_the_line_are_read_as_stored(tmp_path, topology):
    """A program adding its step in float32 drifts from the line through the file's ends by more
    than the rounding, though every step is even: read as stored, not refused as a gap."""
    from mdsr_plugin.io.base import Float32Times

    times = np.cumsum(np.full(501, np.float32(0.01), dtype=np.float32), dtype=np.float32)
    grid = Float32Times(float(times[0]), float(times[-1]), len(times), 1000.0)
    even = grid.grid[0] + np.arange(len(times)) * grid.grid[1]
    assert np.abs(times * 1000.0 - even).max() > grid.rounding  # off the line by more than the rounding
    _gromacs_file(tmp_path / "summed.xtc", topology, times.astype(np.float64))
    back = read_trajectory(tmp_path / "summed.xtc", topology=topology)
    assert back.n_frames == 501 and abs(back.dt - 10.0) < 1e-3


def test_our_trr_of_late_fine_frames_reads_back_with_a_notice(tmp_path, small_traj, topology):
    late = replace(small_traj, times=1e6 + 0.25 * np.arange(small_traj.n_frames))
    with pytest.warns(UserWarning, match=r"float32 ps: at 1000 ps they are rounded to 0\.061 fs"):
        write_trajectory(tmp_path / "late.trr", late)
    back = read_trajectory(tmp_path / "late.trr", topology=topology)
    np.testing.assert_allclose(back.times, late.times, atol=0.061)
    np.testing.assert_allclose(np.diff(back.times), 0.25, rtol=0.061 / 0.25 / 5)


def test_dcd_says_where_it_moves_the_start_time(tmp_path, small_traj, topology):
    offset = replace(small_traj, times=1002.5 + 2.0 * np.arange(small_traj.n_frames))
    with pytest.warns(UserWarning, match="1002.5 fs is written as 1002 fs"):
        write_trajectory(tmp_path / "off.dcd", offset)


def test_h5md_forces_and_observables_keep_their_numbers_and_units(tmp_path, small_traj):
    import h5py

    path = tmp_path / "out.h5md"
    disagreement = np.linspace(0.0, 0.1, small_traj.n_frames)
    write_trajectory(path, replace(small_traj, frame_data={"disagreement": disagreement}))
    np.testing.assert_allclose(read_trajectory(path).forces, small_traj.forces, rtol=1e-15, atol=0)
    with h5py.File(path) as f:
        assert list(f["h5md/modules/units"].attrs["version"]) == [1, 0]
        assert f["observables/disagreement/value"].attrs["unit"] == "Angstrom"


def test_failed_write_leaves_nothing(tmp_path, small_traj):
    path = tmp_path / "out.dcd"
    with pytest.raises(RuntimeError):
        with open_writer(path) as writer:
            writer.write(small_traj)
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_unknown_extension_and_missing_folder(tmp_path, small_traj):
    unknown = tmp_path / "out.abc"
    with pytest.raises(FormatError, match="out.abc: no such file"):
        get_format(unknown)
    unknown.write_text("nothing any MD code writes\n")
    with pytest.raises(FormatError, match="cannot tell the format from its content, name or extension; known formats"):
        get_format(unknown)
    with pytest.raises(FormatError, match="cannot tell the format from the extension; it writes"):
        get_format(unknown, writing=True)
    with pytest.raises(FormatError, match="output folder does not exist"):
        write_trajectory(tmp_path / "missing" / "out.xyz", small_traj)


def test_the_topology_option_is_also_top_and_an_unknown_option_is_named(tmp_path):
    """``top=``, as the command line's --top and the MDSR Universe reader name it, raised
    'MDAnalysisReader.__init__() got an unexpected keyword argument' from deep inside."""
    import ase

    coarse = read_trajectory(Path(__file__).parents[1] / "mdsr_plugin/data/examples/ethanol_coarse.xyz")
    write_trajectory(tmp_path / "e.trr", coarse)
    ase.io.write(tmp_path / "e.pdb", ase.Atoms(numbers=coarse.numbers, positions=coarse.positions[0]))
    assert read_trajectory(tmp_path / "e.trr", top=tmp_path / "e.pdb").n_frames == coarse.n_frames
    with pytest.raises(TypeError, match="topology= or top=, not both"):
        read_trajectory(tmp_path / "e.trr", top=tmp_path / "e.pdb", topology=tmp_path / "e.pdb")
    with pytest.raises(TypeError, match="e.trr: the trr reader takes no option 'toplogy'"):
        read_trajectory(tmp_path / "e.trr", toplogy=tmp_path / "e.pdb")
