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

# ------------------------------------------------------------------ native units of MD codes
# One table: what each code writes, as factors into the internal units, computed from
# ASE's CODATA constants (``ase.units``) rather than typed in.
from dataclasses import dataclass as _dataclass

from ase import units as _ase

BOHR = _ase.Bohr
"""bohr → Å."""

HARTREE = _ase.Hartree
"""hartree → eV."""

AU_TIME_FS = _ase._aut * 1e15
"""Hartree atomic unit of time → fs (≈ 0.0241888)."""

_KCALMOL = _ase.kcal / _ase.mol  # eV
_KJMOL = _ase.kJ / _ase.mol  # eV


@_dataclass(frozen=True)
class NativeUnits:
    """The units a file stores, as factors into the internal ones.

    Attributes
    ----------
    name : str
        How a summary names them ("bohr, bohr/a.u. time, Ha/bohr").
    length : float
        File length unit in Å.
    time : float
        File time unit in fs.
    velocity : float
        File velocity unit in Å/fs.
    force : float
        File force unit in eV/Å.
    """

    name: str
    length: float
    time: float
    velocity: float
    force: float


#: What each code's files store (see docs/formats.md); keys are the names the readers use.
NATIVE_UNITS = {
    "internal": NativeUnits("Å, fs, Å/fs, eV/Å", 1.0, 1.0, 1.0, 1.0),
    # CP2K: positions Å (pos-1.xyz), velocities bohr/a.u. time, forces Ha/bohr, times fs.
    "cp2k": NativeUnits("Å; bohr/a.u. time; Ha/bohr", 1.0, 1.0, BOHR / AU_TIME_FS, HARTREE / BOHR),
    # i-PI atomic units (bohr, a.u. time, Ha/bohr): the default of every output tag.
    "atomic": NativeUnits("bohr; bohr/a.u. time; Ha/bohr", BOHR, AU_TIME_FS, BOHR / AU_TIME_FS, HARTREE / BOHR),
    # LAMMPS unit styles (https://docs.lammps.org/units.html).
    "lammps-real": NativeUnits("LAMMPS real: Å, fs, Å/fs, kcal/(mol·Å)", 1.0, 1.0, 1.0, _KCALMOL),
    "lammps-metal": NativeUnits("LAMMPS metal: Å, ps, Å/ps, eV/Å", 1.0, FS_PER_PS, 1.0 / FS_PER_PS, 1.0),
    "lammps-si": NativeUnits("LAMMPS si: m, s, m/s, N", 1e10, 1e15, 1e-5, 1.0 / (_ase._e * 1e10)),
    "lammps-cgs": NativeUnits("LAMMPS cgs: cm, s, cm/s, dyne", 1e8, 1e15, 1e-7, 1e-5 / (_ase._e * 1e10)),
    # VASP: Å, fs (POTIM), eV/Å.
    "vasp": NativeUnits("Å, fs, eV/Å", 1.0, 1.0, 1.0, 1.0),
    # Tinker: Å; velocities (.vel) Å/ps; forces (.frc) kcal/(mol·Å); times ps.
    "tinker": NativeUnits("Å, ps, Å/ps, kcal/(mol·Å)", 1.0, FS_PER_PS, 1.0 / FS_PER_PS, _KCALMOL),
    # xtb.trj: positions Å; velocity lines (velo=true) bohr per atomic time unit; $md step in fs.
    "xtb": NativeUnits("Å; bohr/a.u. time", 1.0, 1.0, BOHR / AU_TIME_FS, HARTREE / BOHR),
    # DFTB+ geo_end.xyz: Å; velocity columns Å/ps (formatout.F90 scales bohr/a.u. to Å/ps).
    "dftbplus": NativeUnits("Å, Å/ps", 1.0, 1.0, 1.0 / FS_PER_PS, HARTREE / BOHR),
}

#: The LAMMPS ``units`` styles mdsr_plugin converts (``lj`` is reduced: no physical units).
LAMMPS_UNIT_STYLES = tuple(k.split("-", 1)[1] for k in NATIVE_UNITS if k.startswith("lammps-"))

#: i-PI's ``{unit}`` tags → factors into Å, Å/fs, eV/Å (its ``units.py`` names).
IPI_LENGTH = {"atomic_unit": BOHR, "angstrom": 1.0, "bohr": BOHR, "nanometer": 10.0}
IPI_VELOCITY = {"atomic_unit": BOHR / AU_TIME_FS, "m/s": 1e-5, "angstrom/femtosecond": 1.0}
IPI_FORCE = {"atomic_unit": HARTREE / BOHR, "ev/ang": 1.0}

#: Time units that input files name beside a value (SIESTA's fdf ``MD.LengthTimeStep 1.0 fs``,
#: DFTB+'s HSD ``TimeStep [fs] = 1.0``; both default to other units), lower case → fs.
TIME_UNITS_FS = {"fs": 1.0, "ps": FS_PER_PS, "ns": 1e6, "s": 1e15, "au": AU_TIME_FS, "a.u.": AU_TIME_FS}


__all__ = [
    "BOHR",
    "HARTREE",
    "AU_TIME_FS",
    "NativeUnits",
    "NATIVE_UNITS",
    "LAMMPS_UNIT_STYLES",
    "IPI_LENGTH",
    "IPI_VELOCITY",
    "IPI_FORCE",
    "TIME_UNITS_FS",
    "FS_PER_PS",
    "FS_PER_AKMA",
    "ASE_TIME_PER_FS",
    "KJMOL_PER_EV",
    "ACCEL_PER_FORCE_OVER_MASS",
    "NAMD_VELOCITY_TO_ANGSTROM_PER_FS",
]
