"""MDAnalysis and ASE integrations: fine Universes, the lazy MDSR reader, lists of Atoms;
real analyses on the result; velocities in each library's own units."""

import warnings

import ase
import ase.io
import MDAnalysis as mda
import numpy as np
import pytest
from ase import units as ase_units
from conftest import drifting_atoms
from MDAnalysisTests import datafiles as data

import mdsr_plugin
from mdsr_plugin.io import FormatError, write_trajectory
from mdsr_plugin.io.ase_backend import trajectory_to_atoms
from mdsr_plugin.trajectory import Trajectory


def universe(*files, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return mda.Universe(*map(str, files), **kwargs)


@pytest.fixture
def coarse_files(tmp_path, xtb_fine):
    """A coarse (5 fs) ethanol trajectory with velocities as PDB + TRR, starting at t = 100 fs."""
    from dataclasses import replace

    coarse = xtb_fine[::10][:40]
    coarse = replace(coarse, times=coarse.times + 100.0)
    pdb, trr = tmp_path / "ethanol.pdb", tmp_path / "ethanol.trr"
    ase.io.write(pdb, ase.Atoms(numbers=coarse.numbers, positions=coarse.positions[0]))
    write_trajectory(trr, coarse)
    return pdb, trr, coarse


def central_differences(positions, dt):
    return (positions[2:] - positions[:-2]) / (2 * dt)


# ----------------------------------------------------------------------------- MDAnalysis
def test_upsample_universe_keeps_topology_time_and_units(coarse_files):
    pdb, trr, coarse = coarse_files
    u = universe(pdb, trr)
    u.trajectory[7]
    before = u.atoms.positions.copy()
    fine = mdsr_plugin.upsample_universe(u, 5, method="hermite")
    # the input Universe is untouched
    assert u.trajectory.ts.frame == 7
    np.testing.assert_array_equal(u.atoms.positions, before)
    # same topology, fine time axis, start time kept (transfer_to_memory would drop it)
    assert fine is not u and list(fine.atoms.names) == list(u.atoms.names)
    assert len(fine.trajectory) == (len(u.trajectory) - 1) * 5 + 1
    assert fine.trajectory.dt == pytest.approx(u.trajectory.dt / 5, rel=1e-6)
    assert fine.trajectory[0].time == pytest.approx(0.1)  # ps
    assert fine.trajectory[5].time == pytest.approx(u.trajectory[1].time)
    # velocities in MDAnalysis units (Å/ps) agree with finite differences of fine positions
    positions = fine.trajectory.timeseries(order="fac").astype(np.float64)
    velocities = np.array([ts.velocities.copy() for ts in fine.trajectory])
    estimate = central_differences(positions, fine.trajectory.dt)
    inside = np.array([i % 5 not in (0, 1, 4) for i in range(1, len(positions) - 1)])
    scale = np.abs(velocities).mean()
    assert np.abs(estimate - velocities[1:-1])[inside].mean() < 0.05 * scale
    np.testing.assert_allclose(positions[::5], coarse.positions, atol=1e-4)


def test_real_analyses_run_on_the_fine_universe(coarse_files):
    from MDAnalysis.analysis.base import AnalysisFromFunction
    from MDAnalysis.analysis.msd import EinsteinMSD
    from MDAnalysis.analysis.rms import RMSD

    pdb, trr, _ = coarse_files
    fine = mdsr_plugin.upsample_universe(universe(pdb, trr), 5, method="hermite")
    times = np.array([ts.time for ts in fine.trajectory])
    rmsd = RMSD(fine, select="all").run()
    assert rmsd.results.rmsd.shape == (len(times), 3)
    np.testing.assert_allclose(rmsd.results.rmsd[:, 1], times)  # the fine time axis
    msd = EinsteinMSD(fine, select="all", msd_type="xyz", fft=False).run()
    assert msd.results.timeseries.shape == (len(times),)
    velocities = AnalysisFromFunction(lambda ag: ag.velocities.copy(), fine.atoms).run()
    v = velocities.results.timeseries  # (F, N, 3) Å/ps
    vacf = np.array([np.mean(np.sum(v[: len(v) - k] * v[k:], axis=-1)) for k in range(20)])
    assert vacf[0] > 0 and np.abs(vacf[1:]).max() < vacf[0] * 1.01
    np.testing.assert_allclose(velocities.results.times, times)


@pytest.mark.parametrize(
    "files, kwargs, factor, method, periodic",
    [
        ((data.PSF, data.DCD), {}, 2, "spline", False),
        ((data.LAMMPSDUMP,), {"format": "LAMMPSDUMP", "topology_format": "LAMMPSDUMP"}, 3, "spline", True),
    ],
    ids=["charmm-dcd", "lammps-dump"],
)
def test_upsample_universe_on_files_from_other_codes(files, kwargs, factor, method, periodic):
    u = universe(*files, **kwargs)
    fine = mdsr_plugin.upsample_universe(u, factor, method=method, dt=10.0 if "lammpstrj" in str(files[0]) else None)
    assert len(fine.trajectory) == (len(u.trajectory) - 1) * factor + 1
    coarse_positions = u.trajectory.timeseries(order="fac")
    np.testing.assert_allclose(fine.trajectory.timeseries(order="fac")[::factor], coarse_positions, atol=2e-3)
    assert (fine.trajectory[1].dimensions is not None) == periodic


def test_lazy_reader_matches_the_in_memory_universe(coarse_files):
    pdb, trr, _ = coarse_files
    eager = mdsr_plugin.upsample_universe(universe(pdb, trr), 5, method="hermite")
    lazy = universe(pdb, trr, format="MDSR", factor=5, method="hermite", top=pdb)
    assert len(lazy.trajectory) == len(eager.trajectory)
    for frame in (0, 37, 12, len(eager.trajectory) - 1):  # random access, any order
        lazy.trajectory[frame]
        eager.trajectory[frame]
        np.testing.assert_allclose(lazy.atoms.positions, eager.atoms.positions, atol=1e-5)
        np.testing.assert_allclose(lazy.atoms.velocities, eager.atoms.velocities, rtol=1e-5, atol=1e-4)
        assert lazy.trajectory.ts.time == pytest.approx(eager.trajectory.ts.time)
    lazy.transfer_to_memory()
    np.testing.assert_allclose(lazy.trajectory.timeseries(order="fac"), eager.trajectory.timeseries(order="fac"),
                               atol=1e-5)


def test_lazy_reader_is_registered_without_replacing_core_readers():
    from MDAnalysis import _READERS
    from MDAnalysis.coordinates.DCD import DCDReader

    from mdsr_plugin.integrations.mdanalysis import MDSRReader

    assert _READERS["MDSR"] is MDSRReader
    assert _READERS["DCD"] is DCDReader
    lazy = universe(data.PSF, data.DCD, format="MDSR", factor=4, top=data.PSF, method="spline")
    assert len(lazy.trajectory) == (98 - 1) * 4 + 1
    with pytest.raises(ValueError, match="needs factor"):
        universe(data.PSF, data.DCD, format="MDSR", top=data.PSF)


# ----------------------------------------------------------------------------- ASE
def test_upsample_atoms_in_ase_units(xtb_fine):
    coarse = xtb_fine[::10][:30]
    images = trajectory_to_atoms(coarse)
    fine = mdsr_plugin.upsample_atoms(images, 5, method="quintic")
    assert len(fine) == (len(images) - 1) * 5 + 1
    np.testing.assert_allclose([a.info["time"] for a in fine], coarse.times[0] + np.arange(len(fine)) * 1.0)
    np.testing.assert_allclose(fine[0].get_masses(), images[0].get_masses())
    positions = np.array([a.positions for a in fine])
    velocities = np.array([a.get_velocities() for a in fine])  # Å per ASE time unit
    dt_ase = 1.0 * ase_units.fs  # the fine step, 1 fs, in ASE time units
    estimate = central_differences(positions, dt_ase)
    inside = np.array([i % 5 not in (0, 1, 4) for i in range(1, len(fine) - 1)])
    assert np.abs(estimate - velocities[1:-1])[inside].mean() < 0.05 * np.abs(velocities).mean()
    np.testing.assert_allclose(velocities[::5] * ase_units.fs, coarse.velocities, atol=1e-12)


def test_upsample_atoms_streams_an_iterator_of_a_periodic_file(tmp_path, triclinic_cell):
    times = np.arange(30) * 10.0
    x, v = drifting_atoms(times, triclinic_cell)
    coarse = Trajectory(numbers=[8] * 6, positions=x, velocities=v, times=times, cell=triclinic_cell, pbc=True)
    path = tmp_path / "box.xyz"
    write_trajectory(path, coarse)
    fine = mdsr_plugin.upsample_atoms(ase.io.iread(path, ":"), 4)
    assert len(fine) == (30 - 1) * 4 + 1
    assert all(a.pbc.all() for a in fine)
    np.testing.assert_allclose(fine[3].cell.array, triclinic_cell)
    frac = np.array([a.get_scaled_positions(wrap=False) for a in fine])
    assert ((frac > -1e-6) & (frac < 1 + 1e-6)).all()  # wrapped, as the input was


def test_upsample_atoms_needs_a_time_step(xtb_fine):
    images = trajectory_to_atoms(xtb_fine[::10][:5])
    for atoms in images:
        del atoms.info["time"]
    with pytest.raises(FormatError, match="dt="):
        mdsr_plugin.upsample_atoms(images, 4)
    assert len(mdsr_plugin.upsample_atoms(images, 4, dt=5.0)) == 17


# --------------------------------------------------------------------- dt from Python, every entry point
EXAMPLE = mdsr_plugin.__path__[0] + "/data/examples/ethanol_coarse.xyz"


def test_every_python_entry_point_takes_dt_as_the_coarse_step_and_checks_it():
    """upsample() ignored dt=; upsample_universe and upsample_atoms replaced recorded times
    without the check --dt has; an XYZ Universe (no recorded step: MDAnalysis says 1 ps) was
    upsampled as 1 ps per frame."""
    from mdsr_plugin.integrations.ase import upsample_atoms
    from mdsr_plugin.integrations.mdanalysis import upsample_universe
    from mdsr_plugin.settings import SettingsError

    coarse = mdsr_plugin.read_trajectory(EXAMPLE)[:20]  # 20 fs, with velocities
    assert mdsr_plugin.upsample(coarse, 4, method="hermite", dt=20.0).dt == 5.0
    with pytest.raises(SettingsError, match="dt= 1e\\+30 fs contradicts the trajectory's own step of 20 fs"):
        mdsr_plugin.upsample(coarse, 4, method="hermite", dt=1e30)
    assert mdsr_plugin.upsample(coarse.without("velocities", "forces"), 4, method="spline", dt=10.0).dt == 2.5

    images = ase.io.read(EXAMPLE, ":20")
    with pytest.raises(SettingsError, match="contradicts the trajectory's own step of 20 fs"):
        upsample_atoms(images, 4, dt=1e30, method="hermite")
    assert upsample_atoms(images, 4, dt=20.0, method="hermite")[1].info["time"] == pytest.approx(5.0)

    universe = mda.Universe(EXAMPLE)  # XYZ: no time step recorded
    with pytest.raises(FormatError, match="records no time step; pass --dt or dt="):
        upsample_universe(universe, 4, method="spline")
    assert upsample_universe(universe, 4, method="spline", dt=20.0).trajectory.dt == pytest.approx(0.005)
    with pytest.raises(TypeError, match="takes an MDAnalysis Universe, not AtomGroup: write the selection"):
        upsample_universe(universe.atoms[:3], 4, dt=20.0)


def test_python_errors_are_the_package_s_own_one_liners(tmp_path):
    from mdsr_plugin.settings import SettingsError

    coarse = mdsr_plugin.read_trajectory(EXAMPLE)[:5]
    if not __import__("torch").cuda.is_available():
        with pytest.raises(SettingsError, match="device cuda: CUDA is not available"):
            mdsr_plugin.upsample(coarse, 4, device="cuda")
    with pytest.raises(FormatError, match="cannot tell the format from the extension; it writes"):
        mdsr_plugin.upsample_file(EXAMPLE, tmp_path / "fine.pdb", 4)
