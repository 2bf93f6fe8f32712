"""The potentials reference trajectories are run on, named by one string.

``mdsr-generate --hamiltonian SPEC`` and :func:`mdsr_plugin.reference.generate_reference`
take one of

``gfn2-xtb``, ``gfn1-xtb``
    Tight binding through tblite (a few ms per step for MD17-sized molecules).
``pyscf:FUNCTIONAL/BASIS``
    Kohn–Sham DFT through PySCF, e.g. ``pyscf:pbe/6-31g`` or ``pyscf:b3lyp/def2-svp``
    (seconds per step: run it in the background, it resumes).

Why more than one: a learned integrator trained on GFN2-xTB must be measured on
dynamics of another Hamiltonian, as a user's DFT archive is.  To add a
Hamiltonian, add a branch to :func:`make_calculator` that returns an ASE
calculator giving energies (eV) and forces (eV/Å).
"""

from __future__ import annotations

import numpy as np

__all__ = ["make_calculator", "describe_hamiltonian", "PySCFCalculator", "HAMILTONIANS", "PRIOR_HAMILTONIANS"]

#: The tight-binding names understood besides ``pyscf:FUNCTIONAL/BASIS``.
HAMILTONIANS = ("gfn2-xtb", "gfn1-xtb")
#: Hamiltonians a prior of ``--adapt`` can be run on (cheap enough to run while the user
#: waits; :mod:`mdsr_plugin.neural.prior`).
PRIOR_HAMILTONIANS = ("gfn1-xtb", "gfn2-xtb")

_TBLITE_METHODS = {"gfn2-xtb": "GFN2-xTB", "gfn1-xtb": "GFN1-xTB"}


def _parse(spec: str) -> tuple[str, str | None, str | None]:
    """``(kind, functional, basis)`` of a Hamiltonian string; ValueError when malformed."""
    text = spec.strip().lower()
    if text in _TBLITE_METHODS:
        return text, None, None
    if text.startswith("pyscf:"):
        functional, _, basis = text[len("pyscf:"):].partition("/")
        if functional and basis:
            return "pyscf", functional, basis
    raise ValueError(
        f"unknown Hamiltonian {spec!r}; use {', '.join(HAMILTONIANS)} or pyscf:FUNCTIONAL/BASIS "
        "(e.g. pyscf:pbe/6-31g)"
    )


def describe_hamiltonian(spec: str) -> str:
    """A human-readable name recorded in a trajectory's provenance, e.g. ``"PBE/6-31G (PySCF)"``."""
    kind, functional, basis = _parse(spec)
    if kind == "pyscf":
        return f"{functional.upper()}/{basis.upper()} (PySCF, density-fitted Coulomb)"
    return f"{_TBLITE_METHODS[kind]} (tblite)"


def make_calculator(spec: str, *, charge: int = 0, spin: int = 0):
    """An ASE calculator for ``spec`` (see the module docstring).

    Parameters
    ----------
    spec : str
    charge : int
        Total charge in e.
    spin : int
        Number of unpaired electrons (2S).
    """
    kind, functional, basis = _parse(spec)
    if kind == "pyscf":
        return PySCFCalculator(functional=functional, basis=basis, charge=charge, spin=spin)
    from tblite.ase import TBLite

    return TBLite(method=_TBLITE_METHODS[kind], charge=charge, multiplicity=spin + 1, verbosity=0)


def _ase_calculator_base():
    from ase.calculators.calculator import Calculator

    return Calculator


class PySCFCalculator(_ase_calculator_base()):
    """Kohn–Sham DFT energies and forces of a molecule through PySCF.

    Each SCF starts from the previous call's density matrix, which roughly halves
    the cost of an MD step; ``conv_tol`` is tight (1e-10 Hartree) because looser
    SCFs give forces noisy enough to spoil energy conservation.

    Parameters
    ----------
    functional : str
        Any libxc/PySCF functional name (``"pbe"``, ``"b3lyp"``…).
    basis : str
        Any PySCF basis name (``"6-31g"``, ``"def2-svp"``…).
    grid_level : int
        PySCF's integration grid level (2 conserves energy to a few meV per ps).
    density_fit : bool
        Density-fit the Coulomb term (PySCF's default auxiliary basis): for
        PBE/6-31G ethanol on one core the step costs 2.5 s instead of 4.3 s, the
        gradient 1.0–1.5 s instead of 2.4 s (measured here); the trajectory is then
        on the density-fitted surface, as it is in most production AIMD codes.
    """

    implemented_properties = ["energy", "forces"]

    def __init__(self, functional="pbe", basis="6-31g", *, charge=0, spin=0, grid_level=2,
                 conv_tol=1e-10, density_fit=True, **kwargs):
        super().__init__(**kwargs)
        self.functional, self.basis = functional, basis
        self.charge, self.spin = charge, spin
        self.grid_level, self.conv_tol, self.density_fit = grid_level, conv_tol, density_fit
        self._density = None

    def calculate(self, atoms=None, properties=("energy",), system_changes=None):
        from ase.calculators.calculator import all_changes
        from ase.units import Bohr, Hartree
        from pyscf import dft, gto

        super().calculate(atoms, properties, system_changes or all_changes)
        mol = gto.M(
            atom=[(s, tuple(p)) for s, p in zip(self.atoms.get_chemical_symbols(), self.atoms.positions)],
            basis=self.basis, unit="Angstrom", charge=self.charge, spin=self.spin, verbose=0,
        )
        mf = (dft.RKS if self.spin == 0 else dft.UKS)(mol)
        if self.density_fit:
            mf = mf.density_fit()
        mf.xc = self.functional
        mf.grids.level = self.grid_level
        mf.conv_tol = self.conv_tol
        energy = mf.kernel(dm0=self._density)
        if not mf.converged:
            # Restarting from a density far from this geometry's can stall; a fresh guess does not.
            energy = mf.kernel()
            if not mf.converged:
                raise RuntimeError(f"PySCF {self.functional}/{self.basis} SCF did not converge")
        self._density = mf.make_rdm1()
        gradient = mf.nuc_grad_method().kernel()  # Hartree/Bohr
        self.results["energy"] = float(energy) * Hartree
        self.results["forces"] = -np.asarray(gradient) * Hartree / Bohr
