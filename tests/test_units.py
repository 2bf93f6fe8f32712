"""The unit factors agree with the libraries that define the conventions."""

import ase.units
import MDAnalysis.units as mda_units
import pytest

from mdsr_plugin import units


def test_ase_time_unit():
    assert units.ASE_TIME_PER_FS == pytest.approx(ase.units.fs, rel=1e-12)


def test_mdanalysis_time_units():
    assert units.FS_PER_PS == mda_units.timeUnit_factor["fs"]
    assert units.FS_PER_AKMA == pytest.approx(1e3 / mda_units.timeUnit_factor["AKMA"], rel=1e-6)


def test_force_units():
    assert units.KJMOL_PER_EV == pytest.approx(ase.units.eV / (ase.units.kJ / ase.units.mol), rel=1e-6)
    # In ASE's unit system eV/(Å·u) is Å per (ASE time)², and one ASE time unit is 1/ase.units.fs fs.
    assert units.ACCEL_PER_FORCE_OVER_MASS == pytest.approx(ase.units.fs**2, rel=1e-6)


def test_namd_velocity_factor():
    # NAMD's PDBVELFACTOR: Å/ps per stored (Å/AKMA) unit, the inverse of the AKMA time in ps.
    assert units.NAMD_VELOCITY_TO_ANGSTROM_PER_FS * units.FS_PER_AKMA == pytest.approx(1.0, rel=1e-6)


def test_boltzmann_constant():
    assert units.BOLTZMANN_EV_PER_K == pytest.approx(ase.units.kB, rel=1e-6)
