"""Element data: atomic numbers ↔ symbols and standard masses (from ASE's tables)."""

from __future__ import annotations

import numpy as np

__all__ = ["standard_masses", "symbols_of", "numbers_from_symbols"]


def standard_masses(numbers: np.ndarray) -> np.ndarray:
    """Standard atomic masses, shape (n_atoms,), u; 1.0 for unknown elements (number 0)."""
    from ase.data import atomic_masses

    masses = atomic_masses[np.asarray(numbers, dtype=np.int64)].astype(np.float64)
    masses[np.asarray(numbers) == 0] = 1.0
    return masses


def symbols_of(numbers: np.ndarray) -> list[str]:
    """Chemical symbols of ``numbers``; ``"X"`` for unknown (0)."""
    from ase.data import chemical_symbols

    return [chemical_symbols[int(z)] for z in numbers]


def numbers_from_symbols(symbols) -> np.ndarray:
    """Atomic numbers from element symbols or atom names (``"C1"``, ``"HW2"``, ``"CA"``).

    Names are matched the way topology guessers do: first the two leading letters
    with the second in lower case, then the first letter alone.  Unknown names give 0.
    """
    from ase.data import atomic_numbers

    numbers = np.zeros(len(symbols), dtype=np.int64)
    for i, name in enumerate(symbols):
        letters = "".join(ch for ch in str(name) if ch.isalpha())
        if not letters:
            continue
        two = letters[:2].capitalize()
        one = letters[0].upper()
        if len(letters) >= 2 and letters[1].islower() and two in atomic_numbers:
            numbers[i] = atomic_numbers[two]
        elif one in atomic_numbers:
            numbers[i] = atomic_numbers[one]
        elif two in atomic_numbers:
            numbers[i] = atomic_numbers[two]
    return numbers
