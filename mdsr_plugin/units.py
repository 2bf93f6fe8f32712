"""Internal units of mdsr_plugin and the conversion factors used at file boundaries.

Every array inside the package is in one set of units:

============  ==========================
quantity      internal unit
============  ==========================
length        Å
time          fs
velocity      Å/fs
force         eV/Å
mass          atomic mass unit (u)
acceleration  Å/fs²
============  ==========================

Readers convert *into* these units and writers convert *out of* them; no other
module multiplies by a unit factor.  The factors below are the only place where
the other libraries' conventions are written down, and ``tests/test_units.py``
checks each one against the library that defines it.
"""

FS_PER_PS = 1000.0
"""MDAnalysis time (ps) → fs."""

FS_PER_AKMA = 48.88821
"""CHARMM/NAMD AKMA time unit → fs (the value MDAnalysis uses for DCD headers)."""

ASE_TIME_PER_FS = 0.09822694788464063
"""One fs in ASE time units (``ase.units.fs``); ASE velocities are Å per ASE time unit,
so ``v[Å/fs] = v_ase * ASE_TIME_PER_FS``."""

KJMOL_PER_EV = 96.48533212331
"""eV → kJ/mol (MDAnalysis forces are kJ/(mol·Å))."""

ACCEL_PER_FORCE_OVER_MASS = 9.648533212331e-3
"""(eV/Å)/u → Å/fs²: the factor turning force/mass into an acceleration (so a kinetic
energy ½ m v² in u·Å²/fs² is ``½ m v² / ACCEL_PER_FORCE_OVER_MASS`` eV)."""

BOLTZMANN_EV_PER_K = 8.617333262e-5
"""Boltzmann's constant, eV/K (``ase.units.kB``)."""

NAMD_VELOCITY_TO_ANGSTROM_PER_FS = 20.45482706 / FS_PER_PS
"""NAMD velocity DCD stores Å per AKMA time; ``v[Å/fs] = stored * this``."""

__all__ = [
    "FS_PER_PS",
    "FS_PER_AKMA",
    "ASE_TIME_PER_FS",
    "KJMOL_PER_EV",
    "ACCEL_PER_FORCE_OVER_MASS",
    "NAMD_VELOCITY_TO_ANGSTROM_PER_FS",
]
