"""Representative internal coordinates of a molecule, chosen from its bond graph.

The paper's physical checks look at a bond with hydrogen (the fastest vibration),
a heavy-atom bond, a far pair distance, an angle, a dihedral, and the free-energy
surface of the two main torsions.  :func:`choose_coordinates` picks them from the
bonds inferred from the first frame; :func:`evaluate_coordinates` computes them
for a chunk of frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..elements import symbols_of
from ..molecule import adjacency

__all__ = ["InternalCoordinate", "choose_coordinates", "main_torsions", "evaluate_coordinates"]


@dataclass(frozen=True)
class InternalCoordinate:
    """A distance (2 atoms, Å), angle (3 atoms, degrees) or dihedral (4 atoms, degrees)."""

    label: str
    atoms: tuple[int, ...]

    @property
    def kind(self) -> str:
        return {2: "distance", 3: "angle", 4: "dihedral"}[len(self.atoms)]

    @property
    def unit(self) -> str:
        return "Å" if len(self.atoms) == 2 else "°"


def _name(numbers, atoms):
    symbols = symbols_of(numbers)
    return "–".join(f"{symbols[i]}{i}" for i in atoms)


def choose_coordinates(numbers, positions, bonds) -> list[InternalCoordinate]:
    """Up to five coordinates: X–H bond, heavy-atom bond, far pair, angle, dihedral.

    Parameters
    ----------
    numbers : array of int, shape (N,)
    positions : ndarray, shape (N, 3), Å
        One frame (for the far pair).
    bonds : list of (int, int)
    """
    numbers = np.asarray(numbers)
    heavy = numbers > 1
    neighbours = adjacency(len(numbers), bonds)
    chosen = []
    with_h = [b for b in bonds if heavy[b[0]] != heavy[b[1]]]
    if with_h:
        chosen.append(InternalCoordinate(f"bond {_name(numbers, with_h[0])}", tuple(with_h[0])))
    heavy_bonds = [b for b in bonds if heavy[b[0]] and heavy[b[1]]]
    if heavy_bonds:
        chosen.append(InternalCoordinate(f"bond {_name(numbers, heavy_bonds[0])}", tuple(heavy_bonds[0])))
    if len(numbers) > 2:
        d = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
        i, j = np.unravel_index(np.argmax(d), d.shape)
        pair = (int(min(i, j)), int(max(i, j)))
        chosen.append(InternalCoordinate(f"far pair {_name(numbers, pair)}", pair))
    centres = sorted((b for b in range(len(numbers)) if len(neighbours[b]) >= 2), key=lambda b: -numbers[b])
    if centres:
        b = centres[0]
        a, c = sorted(neighbours[b], key=lambda k: -numbers[k])[:2]
        chosen.append(InternalCoordinate(f"angle {_name(numbers, (a, b, c))}", (a, b, c)))
    torsions = main_torsions(numbers, bonds, limit=1) or _any_torsion(numbers, neighbours, bonds)
    if torsions:
        chosen.append(torsions[0])
    return chosen


def main_torsions(numbers, bonds, limit: int = 2) -> list[InternalCoordinate]:
    """Dihedrals about rotatable bonds: heavy–heavy, not in a ring, substituted on both ends.

    The substituent of each end is its heaviest other neighbour; the bonds are ranked
    by the atomic numbers of the four atoms (heaviest first).
    """
    numbers = np.asarray(numbers)
    neighbours = adjacency(len(numbers), bonds)
    found = []
    for b, c in bonds:
        if numbers[b] == 1 or numbers[c] == 1 or _in_ring(b, c, neighbours):
            continue
        others_b = [k for k in neighbours[b] if k != c]
        others_c = [k for k in neighbours[c] if k != b]
        if not others_b or not others_c:
            continue
        a = max(others_b, key=lambda k: (numbers[k], -k))
        d = max(others_c, key=lambda k: (numbers[k], -k))
        atoms = (a, b, c, d)
        found.append((-int(numbers[list(atoms)].sum()), atoms))
    found.sort()
    return [InternalCoordinate(f"dihedral {_name(numbers, atoms)}", atoms) for _, atoms in found[:limit]]


def _any_torsion(numbers, neighbours, bonds):
    for b, c in bonds:
        others_b = [k for k in neighbours[b] if k != c]
        others_c = [k for k in neighbours[c] if k != b]
        if others_b and others_c:
            atoms = (others_b[0], b, c, others_c[0])
            return [InternalCoordinate(f"dihedral {_name(numbers, atoms)}", atoms)]
    return []


def _in_ring(b, c, neighbours) -> bool:
    """Whether ``c`` is reachable from ``b`` without the bond b–c."""
    seen, stack = {b}, [k for k in neighbours[b] if k != c]
    while stack:
        k = stack.pop()
        if k == c:
            return True
        if k not in seen:
            seen.add(k)
            stack.extend(m for m in neighbours[k] if m not in seen)
    return False


def evaluate_coordinates(positions, coordinates) -> np.ndarray:
    """Values of ``coordinates`` for each frame, shape (F, len(coordinates)), Å or degrees.

    Parameters
    ----------
    positions : ndarray, shape (F, N, 3), Å
    coordinates : sequence of InternalCoordinate
    """
    x = np.asarray(positions)
    out = np.empty((len(x), len(coordinates)))
    for k, coordinate in enumerate(coordinates):
        atoms = coordinate.atoms
        if len(atoms) == 2:
            out[:, k] = np.linalg.norm(x[:, atoms[1]] - x[:, atoms[0]], axis=-1)
        elif len(atoms) == 3:
            u = x[:, atoms[0]] - x[:, atoms[1]]
            v = x[:, atoms[2]] - x[:, atoms[1]]
            cosine = np.einsum("fi,fi->f", u, v) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1))
            out[:, k] = np.degrees(np.arccos(np.clip(cosine, -1, 1)))
        else:
            out[:, k] = dihedrals(x, atoms)
    return out


def dihedrals(x, atoms) -> np.ndarray:
    """The dihedral angle a–b–c–d for each frame of ``x`` (F, N, 3), degrees in (−180, 180]."""
    a, b, c, d = (x[:, i] for i in atoms)
    b0, b1, b2 = a - b, c - b, d - c
    b1 = b1 / np.linalg.norm(b1, axis=-1, keepdims=True)
    v = b0 - np.einsum("fi,fi->f", b0, b1)[:, None] * b1
    w = b2 - np.einsum("fi,fi->f", b2, b1)[:, None] * b1
    x_ = np.einsum("fi,fi->f", v, w)
    y_ = np.einsum("fi,fi->f", np.cross(b1, v), w)
    return np.degrees(np.arctan2(y_, x_))
