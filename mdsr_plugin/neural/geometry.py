"""Molecular frames of reference and atom orderings for the neural upsampler.

The code lives in :mod:`mdsr_plugin.molecule` (bonds, graph matching, canonical
frames; NumPy only), which the evaluation uses too; this module keeps the names the
neural method has always imported from here.
"""

from __future__ import annotations

from ..molecule import (
    BOND_TOLERANCE,
    GraphMismatch,
    adjacency,
    automorphisms,
    best_order,
    canonical_frames,
    infer_bonds,
    kabsch_rotations,
    match_atoms,
)

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
