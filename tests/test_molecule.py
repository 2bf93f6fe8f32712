"""mdsr_plugin.molecule: the canonical frame, adjacency and atom order, as the callers computed them before."""

import numpy as np
import pytest

from mdsr_plugin import molecule
from mdsr_plugin.evaluation.coordinates import choose_coordinates, main_torsions

ETHANOL = np.array([6, 6, 8, 1, 1, 1, 1, 1, 1])
GEOMETRY = np.array([[-0.0018, -0.3864, 0.0], [1.2486, 0.4906, 0.0], [-1.1596, 0.4422, 0.0],
                     [-0.0371, -1.0398, 0.8916], [-0.0371, -1.0398, -0.8916], [1.2836, 1.1383, 0.8893],
                     [1.2836, 1.1383, -0.8893], [2.1514, -0.1242, 0.0], [-1.9474, -0.1138, 0.0]])
MASSES = np.array([12.011, 12.011, 15.999, 1.008, 1.008, 1.008, 1.008, 1.008, 1.008])


def random_rotations(rng, n):
    q, r = np.linalg.qr(rng.normal(size=(n, 3, 3)))
    q *= np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None]
    q[np.linalg.det(q) < 0, :, 0] *= -1
    return q


def frames(rng, n=7):
    """Noisy, rotated, translated copies of ethanol, shape (n, 9, 3) Å."""
    noisy = GEOMETRY + 0.05 * rng.normal(size=(n, 9, 3))
    return np.einsum("gni,gij->gnj", noisy, random_rotations(rng, n)) + rng.normal(size=(n, 1, 3))


def test_canonical_frames_equal_the_inline_computation_bit_for_bit():
    rng = np.random.default_rng(0)
    x = frames(rng)
    reference = GEOMETRY - MASSES @ GEOMETRY / MASSES.sum()
    centres, rotations = molecule.canonical_frames(x, reference, MASSES)
    # as the upsampler, the training windows and best_order wrote it
    weights = MASSES / MASSES.sum()
    expected_centres = np.einsum("gni,n->gi", x, weights)
    expected = molecule.kabsch_rotations(x - expected_centres[:, None], reference, weights)
    np.testing.assert_array_equal(centres, expected_centres)
    np.testing.assert_array_equal(rotations, expected)
    assert centres.shape == (7, 3) and rotations.shape == (7, 3, 3)
    np.testing.assert_allclose(np.linalg.det(rotations), 1.0, atol=1e-12)


def test_canonical_frames_undo_a_rigid_motion():
    rng = np.random.default_rng(1)
    x = frames(rng, 1)
    reference = GEOMETRY - MASSES @ GEOMETRY / MASSES.sum()
    rotation, shift = random_rotations(rng, 1)[0], np.array([3.0, -2.0, 1.0])
    moved = x @ rotation + shift
    (c0, r0), (c1, r1) = (molecule.canonical_frames(y, reference, MASSES) for y in (x, moved))
    np.testing.assert_allclose((x - c0[:, None]) @ r0[0], (moved - c1[:, None]) @ r1[0], atol=1e-10)


def old_neighbours(n, bonds):
    """evaluation/coordinates.py's own adjacency before it used molecule.adjacency."""
    table = [[] for _ in range(n)]
    for i, j in bonds:
        table[i].append(j)
        table[j].append(i)
    return table


def test_adjacency_keeps_the_bond_order_the_coordinates_were_chosen_by():
    bonds = molecule.infer_bonds(ETHANOL, GEOMETRY)
    assert len(bonds) == 8
    assert molecule.adjacency(len(ETHANOL), bonds) == old_neighbours(len(ETHANOL), bonds)
    assert molecule.adjacency(3, [(0, 1), (1, 2), (1, 0)]) == [[1], [0, 2], [1]]  # no repeats
    # as the code before the change chose them
    assert [c.atoms for c in choose_coordinates(ETHANOL, GEOMETRY, bonds)] == [
        (0, 3), (0, 1), (7, 8), (0, 2, 8), (1, 0, 2, 8)]
    assert [c.atoms for c in main_torsions(ETHANOL, bonds, limit=5)] == [(1, 0, 2, 8), (2, 0, 1, 5)]


def old_best_order(order, symmetries, positions, reference, masses):
    """geometry.best_order before it used canonical_frames."""
    candidates = order[np.asarray(symmetries)]
    weights = masses / masses.sum()
    x = positions[candidates]
    x = x - np.einsum("ani,n->ai", x, weights)[:, None]
    target = reference - weights @ reference
    rotations = molecule.kabsch_rotations(x, target, weights)
    deviation = np.einsum("n,ani->a", weights, (np.einsum("ani,aij->anj", x, rotations) - target) ** 2)
    return candidates[int(np.argmin(np.round(deviation, 10)))]


@pytest.mark.parametrize("seed", range(4))
def test_best_order_is_unchanged(seed):
    rng = np.random.default_rng(seed)
    bonds = molecule.infer_bonds(ETHANOL, GEOMETRY)
    symmetries = molecule.automorphisms(ETHANOL, bonds)
    assert len(symmetries) == 12  # 3! methyl × 2! methylene hydrogens
    permutation = rng.permutation(9)
    positions = frames(rng, 1)[0][permutation]
    order = molecule.match_atoms(ETHANOL[permutation], positions, ETHANOL, bonds)
    found = molecule.best_order(order, symmetries, positions, GEOMETRY, MASSES)
    np.testing.assert_array_equal(found, old_best_order(order, symmetries, positions, GEOMETRY, MASSES))
    np.testing.assert_array_equal(ETHANOL[permutation][found], ETHANOL)


def test_molecule_imports_no_torch():
    import subprocess
    import sys

    code = "import sys, mdsr_plugin.molecule; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
