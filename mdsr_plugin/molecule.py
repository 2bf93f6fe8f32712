"""The molecule as a graph and a rigid body: bonds, atom matching, canonical frames.

Pure NumPy (element radii from ASE's tables); used by the neural method, its
training, and the evaluation's choice of internal coordinates.

Bonds
    :func:`infer_bonds` from one geometry by covalent radii; :func:`adjacency` lists
    each atom's neighbours.
Atom order
    Users list atoms in their own order.  :func:`match_atoms` matches the molecular
    graph to a checkpoint's (element-labelled graph isomorphism) and gives the
    permutation into the checkpoint's order; :func:`automorphisms` are the graph's
    symmetries (the three methyl hydrogens), and :func:`best_order` picks among the
    equivalent orders the one that superimposes best.
Orientation
    A gas-phase molecule tumbles, and users' files put it anywhere.
    :func:`canonical_frames` gives, for each geometry, its centre of mass and the
    rotation onto a reference geometry (Kabsch, :func:`kabsch_rotations`); windows
    are moved into that frame and the result is moved back.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "infer_bonds",
    "adjacency",
    "match_atoms",
    "best_order",
    "automorphisms",
    "kabsch_rotations",
    "canonical_frames",
    "GraphMismatch",
    "BOND_TOLERANCE",
]

BOND_TOLERANCE = 1.25
"""Atoms closer than this many times the sum of their covalent radii are bonded."""


class GraphMismatch(ValueError):
    """The input molecule is not the checkpoint's molecule."""


def infer_bonds(numbers: np.ndarray, positions: np.ndarray) -> list[tuple[int, int]]:
    """Bonds (i < j) from one geometry, shape (N, 3) Å, by covalent radii."""
    from ase.data import covalent_radii

    radii = covalent_radii[np.asarray(numbers)]
    distances = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    limit = BOND_TOLERANCE * (radii[:, None] + radii[None])
    i, j = np.nonzero(np.triu(distances < limit, k=1))
    return [(int(a), int(b)) for a, b in zip(i, j)]


def adjacency(n_atoms: int, bonds) -> list[list[int]]:
    """Each atom's bonded neighbours, in the order the bonds list them (no repeats).

    Parameters
    ----------
    n_atoms : int
    bonds : iterable of (int, int)

    Returns
    -------
    list of list of int, length ``n_atoms``
    """
    neighbours = [[] for _ in range(n_atoms)]
    for a, b in bonds:
        if b not in neighbours[a]:
            neighbours[a].append(b)
            neighbours[b].append(a)
    return neighbours


def _refined_labels(numbers, neighbours, rounds=4):
    """Weisfeiler–Lehman colours: element, then the multiset of neighbour colours."""
    labels = [str(int(z)) for z in numbers]
    for _ in range(rounds):
        labels = [
            labels[i] + "(" + ",".join(sorted(labels[j] for j in neighbours[i])) + ")"
            for i in range(len(labels))
        ]
        # keep labels short: map to indices of the sorted distinct labels
        table = {lab: str(k) for k, lab in enumerate(sorted(set(labels)))}
        labels = [table[lab] for lab in labels]
    return labels


def _isomorphisms(numbers_a, bonds_a, numbers_b, bonds_b, limit=None):
    """Yield mappings m (array, m[i] = atom of b matching atom i of a)."""
    n = len(numbers_a)
    if n != len(numbers_b) or sorted(numbers_a) != sorted(numbers_b) or len(bonds_a) != len(bonds_b):
        return
    nbr_a, nbr_b = adjacency(n, bonds_a), adjacency(n, bonds_b)
    # Refine both graphs together so that the colours are comparable.
    joint_numbers = list(numbers_a) + list(numbers_b)
    joint = nbr_a + [[k + n for k in s] for s in nbr_b]
    labels = _refined_labels(joint_numbers, joint)
    label_a, label_b = labels[:n], labels[n:]
    if sorted(label_a) != sorted(label_b):
        return
    candidates = [[j for j in range(n) if label_b[j] == label_a[i]] for i in range(n)]
    # Visit atoms with few candidates first, each next to atoms already placed when possible.
    order = sorted(range(n), key=lambda i: len(candidates[i]))
    mapping = [-1] * n
    used = [False] * n
    found = 0

    def extend(depth):
        nonlocal found
        if depth == n:
            found += 1
            yield np.array(mapping)
            return
        i = order[depth]
        for j in candidates[i]:
            if used[j]:
                continue
            if all((mapping[k] in nbr_b[j]) == (k in nbr_a[i]) for k in range(n) if mapping[k] >= 0):
                mapping[i], used[j] = j, True
                yield from extend(depth + 1)
                mapping[i], used[j] = -1, False
                if limit is not None and found >= limit:
                    return

    yield from extend(0)


def match_atoms(numbers, positions, reference_numbers, reference_bonds) -> np.ndarray:
    """Permutation taking the input's atoms into a checkpoint's order.

    Parameters
    ----------
    numbers : ndarray, shape (N,)
    positions : ndarray, shape (N, 3), Å
        One geometry of the input, used to infer its bonds.
    reference_numbers : ndarray, shape (N,)
    reference_bonds : list of (int, int)

    Returns
    -------
    ndarray, shape (N,), int
        ``order`` such that ``input[order]`` lists atoms in the checkpoint's order.

    Raises
    ------
    GraphMismatch
        If the molecular graphs differ.
    """
    numbers = [int(z) for z in numbers]
    bonds = infer_bonds(np.asarray(numbers), np.asarray(positions))
    for mapping in _isomorphisms(numbers, bonds, [int(z) for z in reference_numbers],
                                 [tuple(b) for b in reference_bonds], limit=1):
        order = np.empty(len(numbers), dtype=np.int64)
        order[mapping] = np.arange(len(numbers))  # mapping[i] = checkpoint index of input atom i
        return order
    raise GraphMismatch("the molecule's bond graph does not match the checkpoint's")


def automorphisms(numbers, bonds, limit=120) -> np.ndarray:
    """Graph automorphisms (permutations preserving elements and bonds), shape (K, N)."""
    numbers = [int(z) for z in numbers]
    bonds = [tuple(b) for b in bonds]
    return np.array(list(_isomorphisms(numbers, bonds, numbers, bonds, limit=limit)))


def kabsch_rotations(mobile: np.ndarray, target: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Rotations that best superimpose centred ``mobile`` onto centred ``target``.

    Parameters
    ----------
    mobile : ndarray, shape (B, N, 3)
        Geometries, each already centred on its weighted centre.
    target : ndarray, shape (N, 3)
        Centred reference geometry.
    weights : ndarray, shape (N,)

    Returns
    -------
    ndarray, shape (B, 3, 3)
        Proper rotations R (det +1) with ``mobile @ R`` ≈ ``target``.
    """
    covariance = np.einsum("bni,nj->bij", mobile * weights[None, :, None], target)
    u, _, vt = np.linalg.svd(covariance)
    sign = np.sign(np.linalg.det(u @ vt))
    u[:, :, -1] *= sign[:, None]
    return u @ vt


def canonical_frames(positions: np.ndarray, reference: np.ndarray, masses: np.ndarray):
    """The canonical frame of each geometry: its centre of mass, and the rotation onto ``reference``.

    Parameters
    ----------
    positions : ndarray, shape (G, N, 3), Å
        One geometry per frame (a gap's first frame, a training window's anchor).
    reference : ndarray, shape (N, 3), Å
        The centred geometry frames are rotated onto.
    masses : ndarray, shape (N,), u

    Returns
    -------
    centres : ndarray, shape (G, 3), Å
        Mass-weighted centres.
    rotations : ndarray, shape (G, 3, 3)
        Proper rotations (Kabsch, mass-weighted) with
        ``(positions - centres[:, None]) @ rotations`` ≈ ``reference``; a geometry
        ``y`` goes into the frame as ``(y - centre) @ rotation`` and back as
        ``y @ rotation.T + centre`` (velocities without the centre).
    """
    weights = masses / masses.sum()
    centres = np.einsum("gni,n->gi", positions, weights)
    rotations = kabsch_rotations(positions - centres[:, None], reference, weights)
    return centres, rotations


def best_order(order, symmetries, positions, reference, masses) -> np.ndarray:
    """Among the orders equivalent under graph ``symmetries``, the one that best superimposes
    ``positions`` (N, 3) Å on the checkpoint's ``reference`` (N, 3) Å.

    Symmetry-equivalent atoms (the three methyl hydrogens) can be matched in several
    ways; choosing by geometry makes the result independent of the order the user's
    file lists them in.

    Parameters
    ----------
    order : ndarray, shape (N,)
        One valid order from :func:`match_atoms`.
    symmetries : ndarray, shape (A, N)
        Automorphisms of the checkpoint's graph.
    """
    candidates = order[np.asarray(symmetries)]  # (A, N): input atom for each checkpoint slot
    weights = masses / masses.sum()
    target = reference - weights @ reference
    centres, rotations = canonical_frames(positions[candidates], target, masses)
    x = positions[candidates] - centres[:, None]
    deviation = np.einsum("n,ani->a", weights, (np.einsum("ani,aij->anj", x, rotations) - target) ** 2)
    # round so that floating-point noise between equivalent inputs cannot flip the choice
    return candidates[int(np.argmin(np.round(deviation, 10)))]
