"""A learned integrator for periodic boxes: a local, permutation-invariant potential.

The molecular integrators (:mod:`mdsr_plugin.neural.models`) read all inverse
interatomic distances of one molecule in its canonical frame: that neither scales
to a liquid of hundreds of atoms nor treats identical molecules alike.  Here the
potential energy is a sum of atomic energies, each a function of the atom's
neighbourhood within ``cutoff`` under the minimum image (any triclinic cell):

    E = Σ_i ε_{Z_i}(D_i),    F = −∇E,    a = F / m

with ``ε_Z`` one small MLP per element and ``D_i`` invariant features of the
neighbours ``j`` of atom ``i`` (``r_ij`` the minimum-image vector, ``u = r/|r|``,
``R_c(r)`` Gaussians times a cosine cutoff, one set per neighbour element):

* radial densities        ``s_c  = Σ_j R_c(r_ij)``
* vector moments' Gram    ``V_c · V_d`` with ``V_c = Σ_j R_c(r_ij) u_ij``
* tensor moments' Gram    ``T_c : T_d`` with ``T_c = Σ_j R_c(r_ij) u u``

The moments carry bond-angle information (``V_c · V_d = Σ_jk R_c R_d cos θ_jik``)
at a cost linear in the neighbours, as in moment-tensor and ACE potentials.  The
energy is invariant to translations, rotations, permutations of like atoms and
lattice translations, and smooth (forces continuous) at the cutoff.

Integration and bi-directional blending are the one learned integrator's
(:mod:`mdsr_plugin.neural.integrator`), as for the molecular models:
velocity-Verlet sub-steps, a forward path from the gap's first frame and a backward
one (velocities reversed) from its last, blended with λ(s) = 3s² − 2s³.
Neighbour lists are Verlet lists: built with ``cutoff + skin`` and rebuilt only
when an atom has moved more than ``skin / 2`` since, so the list is exact along
every path (pairs beyond ``cutoff`` contribute exactly zero).

Example
-------
>>> import torch
>>> config = default_local_config([8, 1])
>>> model = LocalIntegrator(config)
>>> x = torch.rand(2, 6, 3, dtype=torch.float64) * 4           # (B, N, 3) Å
>>> cell = torch.eye(3, dtype=torch.float64).expand(2, 3, 3) * 8  # (B, 3, 3) Å, rows
>>> model.set_atoms([8, 1, 1, 8, 1, 1], [16.0, 1.0, 1.0, 16.0, 1.0, 1.0])
>>> model.forces(x, cell).shape
torch.Size([2, 6, 3])
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import torch
from torch import nn

from .. import units
from .card import LOCAL_ARCH  # the ``arch`` of a local periodic integrator's configuration
from .integrator import blend, forces_from_energy, mlp, run_both_ways, velocity_verlet

__all__ = ["LOCAL_ARCH", "LocalIntegrator", "NeighbourList", "neighbour_list", "repeated_neighbour_list",
           "default_local_config"]


def default_local_config(elements, *, cutoff: float = 4.5, n_radial: int = 8, n_angular: int = 4,
                         width: int = 64, depth: int = 2, substeps: int = 2, skin: float = 1.0) -> dict:
    """Hyper-parameters of a local integrator, as stored in its model card.

    Parameters
    ----------
    elements : sequence of int
        Atomic numbers it can treat (each gets its own atomic-energy network).
    cutoff : float
        Neighbourhood radius, Å.
    n_radial, n_angular : int
        Gaussians per neighbour element for the radial densities and for the moments.
    skin : float
        Verlet-list skin, Å.
    """
    return {
        "arch": LOCAL_ARCH,
        "bidirectional": True,
        "elements": sorted({int(z) for z in elements}),
        "cutoff": float(cutoff),
        "n_radial": int(n_radial),
        "n_angular": int(n_angular),
        "width": int(width),
        "depth": int(depth),
        "substeps": int(substeps),
        "skin": float(skin),
        "context": 1,
    }


class NeighbourList(NamedTuple):
    """Directed neighbour pairs of a batch of frames (both i→j and j→i are listed).

    Attributes
    ----------
    first, second : Tensor, shape (P,), int64
        Flat atom indices ``b * N + i`` into the batch's ``(B * N)`` atoms.
    images : Tensor, shape (P, 3)
        Lattice translation (integer multiples of the cell rows, in the positions'
        dtype) such that ``r = x[second] − x[first] + images @ cell[frame]``.
    frame : Tensor, shape (P,), int64
        The frame of each pair.
    built_at : Tensor, shape (B, N, 3), Å
        Positions the list was built at (for the skin criterion).
    """

    first: torch.Tensor
    second: torch.Tensor
    images: torch.Tensor
    frame: torch.Tensor
    built_at: torch.Tensor


def neighbour_list(x: torch.Tensor, cell: torch.Tensor, pbc, cutoff: float,
                   work_elements: int = 2**21) -> NeighbourList:
    """All pairs closer than ``cutoff`` under periodic boundaries, with their images.

    Exact for any cell, also one smaller than twice the cutoff: after reducing each
    fractional difference to the nearest image, every further image that can lie
    within ``cutoff`` is enumerated (``⌊cutoff / width + ½⌋`` along each periodic
    axis, ``width`` the distance between opposite faces).

    Parameters
    ----------
    x : Tensor, shape (B, N, 3), Å
        Positions, wrapped or not.
    cell : Tensor, shape (B, 3, 3), Å
        Cell vectors as rows.
    pbc : sequence of 3 bool
    cutoff : float, Å
    work_elements : int
        Bound on the (frames, N, N, images) distances held at once: as many frames and
        images are done together as fit (a small box does all its frames and images in
        one pass; a large one a frame and a few images at a time).
    """
    pbc = torch.as_tensor(pbc, dtype=torch.bool, device=x.device)
    b_total, n = x.shape[:2]
    with torch.no_grad():
        x = x.detach()
        inverse = torch.linalg.inv(cell)  # frac = x @ inverse; its columns are the reciprocal vectors
        widths = 1.0 / inverse.norm(dim=1)  # (B, 3): distance between opposite faces
        reach = torch.where(pbc, torch.floor(cutoff / widths + 0.5), torch.zeros_like(widths)).amax(0)
        ranges = [range(-int(k), int(k) + 1) for k in reach.tolist()]
        shifts = torch.tensor(list(itertools.product(*ranges)), dtype=x.dtype, device=x.device)  # (S, 3)
        # an atom is its own neighbour only through another image
        self_pair = torch.eye(n, dtype=torch.bool, device=x.device)[:, :, None] & ~shifts.any(1)
        frames_at_once = max(1, work_elements // (n * n * len(shifts)))
        shifts_at_once = max(1, min(len(shifts), work_elements // (n * n)))
        parts = []
        for start in range(0, b_total, frames_at_once):
            stop = min(start + frames_at_once, b_total)
            frac = x[start:stop] @ inverse[start:stop]
            diff = frac[:, None, :, :] - frac[:, :, None, :]  # (b, N_i, N_j, 3): f_j − f_i
            nearest = torch.where(pbc, torch.round(diff), torch.zeros_like(diff))
            reduced = (diff - nearest) @ cell[start:stop, None]  # (b, N, N, 3), Å
            for lo in range(0, len(shifts), shifts_at_once):
                some = shifts[lo:lo + shifts_at_once]
                cart = reduced[:, :, :, None, :] + (some @ cell[start:stop])[:, None, None]  # (b, N, N, s, 3)
                close = ((cart * cart).sum(-1) < cutoff * cutoff) & ~self_pair[:, :, lo:lo + shifts_at_once]
                frame, i, j, k = close.nonzero(as_tuple=True)
                parts.append((frame + start, i, j, some[k] - nearest[frame, i, j]))
        frame, i, j, images = (torch.cat(column) for column in zip(*parts))
    return NeighbourList(frame * n + i, frame * n + j, images, frame, x.clone())


def repeated_neighbour_list(nl: NeighbourList, copies: int, x: torch.Tensor) -> NeighbourList:
    """The list of each frame of ``nl`` for ``copies`` consecutive frames of ``x``.

    For positions that stay within half the skin of those the list was built at (the
    small displacements of a finite-difference Hessian): the Verlet list of frame ``b``
    is then exact for frames ``b * copies`` to ``(b + 1) * copies - 1`` of ``x``, and
    building it once instead of ``copies`` times saves about a quarter of a Hessian's cost.

    Parameters
    ----------
    nl : NeighbourList
        Of B frames of N atoms.
    copies : int
    x : Tensor, shape (B * copies, N, 3), Å
        The positions the repeated list is for.
    """
    n = nl.built_at.shape[1]
    copy = torch.arange(copies, device=nl.frame.device)
    frame = (nl.frame[:, None] * copies + copy).reshape(-1)
    shift = (frame - nl.frame.repeat_interleave(copies)) * n  # from frame b's atoms to its copy's
    return NeighbourList(nl.first.repeat_interleave(copies) + shift, nl.second.repeat_interleave(copies) + shift,
                         nl.images.repeat_interleave(copies, 0), frame, x.detach().clone())


class LocalIntegrator(nn.Module):
    """The local periodic integrator (see the module docstring).

    Parameters
    ----------
    config : dict
        From :func:`default_local_config` (stored in the model card).

    Buffers set by training from the data: ``feature_mean``, ``feature_std``
    (E, n_features), the per-element statistics of the descriptor; ``energy_scale``
    (scalar, eV), the atomic networks' output unit.
    """

    def __init__(self, config: dict):
        super().__init__()
        self.config = dict(config)
        self.arch = LOCAL_ARCH
        self.bidirectional = bool(config["bidirectional"])
        self.context = 1
        self.substeps = int(config["substeps"])
        self.cutoff = float(config["cutoff"])
        self.skin = float(config["skin"])
        self.elements = [int(z) for z in config["elements"]]
        n_el, n_rad, n_ang = len(self.elements), int(config["n_radial"]), int(config["n_angular"])
        self.n_radial_channels, self.n_angular_channels = n_el * n_rad, n_el * n_ang
        pairs = self.n_angular_channels * (self.n_angular_channels + 1) // 2
        self.n_features = self.n_radial_channels + 2 * pairs
        rows, cols = torch.triu_indices(self.n_angular_channels, self.n_angular_channels)
        self.register_buffer("gram_rows", rows, persistent=False)
        self.register_buffer("gram_cols", cols, persistent=False)
        # Gaussians from 0.5 Å (closer than any bond) to the cutoff, width their spacing.
        self.register_buffer("radial_centres", torch.linspace(0.5, self.cutoff, n_rad, dtype=torch.float64),
                             persistent=False)
        self.register_buffer("angular_centres", torch.linspace(0.5, self.cutoff, n_ang, dtype=torch.float64),
                             persistent=False)
        self.radial_width = (self.cutoff - 0.5) / (n_rad - 1)
        self.angular_width = (self.cutoff - 0.5) / (n_ang - 1)
        self.register_buffer("feature_mean", torch.zeros(n_el, self.n_features, dtype=torch.float64))
        self.register_buffer("feature_std", torch.ones(n_el, self.n_features, dtype=torch.float64))
        self.register_buffer("energy_scale", torch.tensor(1.0, dtype=torch.float64))
        self.energies = nn.ModuleList(mlp(self.n_features, int(config["width"]), int(config["depth"]), 1)
                                      for _ in self.elements)
        self._species = None  # (N,) element index of each atom of the current system
        self._accel_per_force = None  # (N, 1) (Å/fs²)/(eV/Å)

    # ------------------------------------------------------------------ the system
    def set_atoms(self, numbers, masses) -> None:
        """Tell the model which atoms it integrates (any number, any order).

        Parameters
        ----------
        numbers : sequence of int, length N
        masses : sequence of float, length N, u
        """
        lookup = {z: k for k, z in enumerate(self.elements)}
        unknown = sorted({int(z) for z in numbers} - set(lookup))
        if unknown:
            raise ValueError(f"the model knows elements {self.elements}, not {unknown}")
        device, dtype = self.feature_mean.device, self.feature_mean.dtype
        self._species = torch.tensor([lookup[int(z)] for z in numbers], device=device)
        masses = torch.as_tensor(masses, dtype=dtype, device=device)
        self._accel_per_force = (units.ACCEL_PER_FORCE_OVER_MASS / masses)[:, None]

    def _apply(self, fn, recurse=True):
        # keep the per-system tensors on the model's device and dtype
        super()._apply(fn, recurse)
        if self._species is not None:
            self._species = self._species.to(self.feature_mean.device)
            self._accel_per_force = fn(self._accel_per_force)
        return self

    # ------------------------------------------------------------------ energy
    def neighbours(self, x, cell, pbc=(True, True, True)) -> NeighbourList:
        """A Verlet list of positions (B, N, 3) Å in cells (B, 3, 3) Å."""
        return neighbour_list(x, cell, pbc, self.cutoff + self.skin)

    @staticmethod
    def image_shifts(cell: torch.Tensor, nl: NeighbourList) -> torch.Tensor:
        """The lattice translation of each pair of ``nl``, (P, 3) Å, in cells (B, 3, 3) Å."""
        return torch.einsum("pi,pij->pj", nl.images.to(cell.dtype), cell[nl.frame])

    def within_cutoff(self, flat: torch.Tensor, shifts: torch.Tensor, nl: NeighbourList) -> torch.Tensor:
        """Which pairs of the Verlet list ``nl`` are closer than the cutoff, (P,) bool, at the
        positions ``flat`` (B * N, 3) Å with the pairs' ``shifts`` (:meth:`image_shifts`)."""
        separation = flat[nl.second] - flat[nl.first] + shifts
        return (separation * separation).sum(-1) < self.cutoff ** 2

    def descriptors(self, x: torch.Tensor, cell: torch.Tensor, nl: NeighbourList,
                    centres: torch.Tensor | None = None) -> torch.Tensor:
        """Raw (unstandardised) features of every atom, shape (B * N, n_features), or of the
        atoms ``centres`` (K,) (flat indices into the B * N atoms), shape (K, n_features)."""
        flat = x.reshape(-1, 3)
        shifts = self.image_shifts(cell, nl)
        with torch.no_grad():  # the Verlet list's pairs in the skin contribute nothing: drop them first
            keep = self.within_cutoff(flat, shifts, nl)
            if centres is not None:  # only the pairs of the centres, which are renumbered 0 … K − 1
                row = torch.full((flat.shape[0],), -1, dtype=torch.long, device=flat.device)
                row[centres] = torch.arange(len(centres), device=flat.device)
                keep &= row[nl.first] >= 0
            inside = keep.nonzero(as_tuple=True)[0]
        first, second = nl.first[inside], nl.second[inside]
        r = flat[second] - flat[first] + shifts[inside]
        d = (r * r).sum(-1).sqrt()
        envelope = 0.5 * (torch.cos(math.pi * d / self.cutoff) + 1.0)  # zero, with zero slope, at the cutoff
        n_el = len(self.elements)
        if centres is None:
            n_total = flat.shape[0]
        else:
            n_total, first = len(centres), row[first]
        # Scatter each pair straight into (atom, neighbour element) rows: no one-hot products.
        slot = first * n_el + self._species.repeat(len(x))[second]
        radial = torch.exp(-(((d[:, None] - self.radial_centres.to(x.dtype)) / self.radial_width) ** 2))
        angular = torch.exp(-(((d[:, None] - self.angular_centres.to(x.dtype)) / self.angular_width) ** 2))
        radial, angular = radial * envelope[:, None], angular * envelope[:, None]
        u = r / d[:, None]
        # u u as its 6 independent components, off-diagonal ones scaled by √2 so that the dot
        # product of two is the full contraction T : T' (the trace part −I/3 only adds a
        # product of densities, which the MLP has already).
        root2 = math.sqrt(2.0)
        outer = torch.stack([u[:, 0] * u[:, 0], u[:, 1] * u[:, 1], u[:, 2] * u[:, 2], root2 * u[:, 0] * u[:, 1],
                             root2 * u[:, 0] * u[:, 2], root2 * u[:, 1] * u[:, 2]], dim=1)
        density = x.new_zeros(n_total * n_el, radial.shape[1]).index_add_(0, slot, radial)
        # The vector and tensor moments of each (atom, neighbour element) slot as one batched
        # product over its neighbours, padded to the fullest slot: (S, C, K) @ (S, K, 9).  A
        # scatter of the pairs' (P, C, 9) outer products gives the same, at 1.5x the time of
        # a force call (24-atom water box, 20 frames a call: 33-36 against 22-24 ms; docs/benchmarks.md).
        directions = torch.cat([u, outer], dim=1)  # (P, 9)
        with torch.no_grad():
            order = torch.sort(slot, stable=True).indices
            counts = torch.bincount(slot, minlength=n_total * n_el)
            sorted_slot = slot[order]
            rank = torch.arange(len(slot), device=slot.device) - (torch.cumsum(counts, 0) - counts)[sorted_slot]
            widest = int(counts.max()) if len(counts) else 0
        padded_angular = x.new_zeros(n_total * n_el, widest, angular.shape[1]).index_put(
            (sorted_slot, rank), angular[order])
        padded_directions = x.new_zeros(n_total * n_el, widest, 9).index_put((sorted_slot, rank), directions[order])
        moments = padded_angular.transpose(1, 2) @ padded_directions  # (S, C, 9)
        density = density.reshape(n_total, self.n_radial_channels)
        moments = moments.reshape(n_total, self.n_angular_channels, 9)
        vector, tensor = moments[:, :, :3], moments[:, :, 3:]
        vector_gram = torch.einsum("acx,adx->acd", vector, vector)[:, self.gram_rows, self.gram_cols]
        tensor_gram = torch.einsum("acx,adx->acd", tensor, tensor)[:, self.gram_rows, self.gram_cols]
        return torch.cat([density, vector_gram, tensor_gram], dim=1)

    def energy(self, x: torch.Tensor, cell: torch.Tensor, nl: NeighbourList,
               centres: torch.Tensor | None = None) -> torch.Tensor:
        """Potential energy of each frame, shape (B,), eV (up to a constant); with ``centres``
        (K,) (flat indices into the B * N atoms), the sum of those atoms' energies only."""
        features = self.descriptors(x, cell, nl, centres)
        species = self._species.repeat(len(x))
        if centres is not None:
            species = species[centres]
        standard = (features - self.feature_mean[species]) / self.feature_std[species]
        atomic = x.new_zeros(len(features))
        for k, network in enumerate(self.energies):
            mine = (species == k).nonzero(as_tuple=True)[0]
            if len(mine):
                atomic = atomic.index_put((mine,), network(standard[mine]).squeeze(-1))
        if centres is not None:
            return x.new_zeros(len(x)).index_add(0, centres // x.shape[1], atomic) * self.energy_scale
        return atomic.reshape(len(x), -1).sum(1) * self.energy_scale

    def forces(self, x: torch.Tensor, cell: torch.Tensor, nl: NeighbourList | None = None,
               pbc=(True, True, True), create_graph: bool = False, centres: torch.Tensor | None = None
               ) -> torch.Tensor:
        """Forces −∇E, shape (B, N, 3), eV/Å, at positions (B, N, 3) Å in cells (B, 3, 3) Å; with
        ``centres``, −∇ of those atoms' energies only (:meth:`energy`)."""
        if self._species is None:
            raise RuntimeError("call set_atoms() first")
        if nl is None:
            nl = self.neighbours(x, cell, pbc)
        return forces_from_energy(lambda y: self.energy(y, cell, nl, centres), x, self.training, create_graph)

    # ------------------------------------------------------------------ rollout
    def rollout(self, x0, v0, cell, n_steps: int, dt: float, pbc=(True, True, True)):
        """Integrate ``n_steps`` fine steps of ``dt`` fs from (x0, v0) in fixed cells.

        Parameters
        ----------
        x0, v0 : Tensor, shape (B, N, 3), Å and Å/fs
        cell : Tensor, shape (B, 3, 3), Å
        n_steps : int
        dt : float
            Fine step, fs (run backward by reversing the velocities).

        Returns
        -------
        x, v : Tensor, shape (B, n_steps + 1, N, 3)
        """
        accel = self._accel_per_force.to(x0.dtype)
        nl = self.neighbours(x0, cell, pbc)

        def acceleration(x):
            nonlocal nl
            if x is not x0 and (x.detach() - nl.built_at).norm(dim=-1).amax() > 0.5 * self.skin:
                nl = self.neighbours(x, cell, pbc)  # a Verlet list: rebuilt once an atom has moved skin / 2
            return self.forces(x, cell, nl) * accel

        return velocity_verlet(x0, v0, n_steps, dt, self.substeps, acceleration)

    def interpolate(self, start, end, factor: int, dt: float, cells, pbc=(True, True, True)):
        """Fine frames across gaps, forward from ``start`` and backward from ``end``, blended.

        Parameters
        ----------
        start, end : tuple of Tensor (positions, velocities), each shape (B, N, 3)
            The gaps' first and last coarse frames (unwrapped: ``end`` continues ``start``).
        factor : int
        dt : float
            Fine step, fs.
        cells : tuple of Tensor, each shape (B, 3, 3), Å
            The cells of the first and of the last frame (each path runs in its own).

        Returns
        -------
        x, v : Tensor, shape (B, factor + 1, N, 3)
        disagreement : Tensor, shape (B, factor + 1)
            RMS distance (Å) between the forward and backward positions.
        """
        (sx, sv), (ex, ev) = start, end
        both_cells = torch.cat(cells)
        forward, backward = run_both_ways(
            lambda hx, hv: self.rollout(hx[:, -1], hv[:, -1], both_cells, factor, dt, pbc),
            (sx[:, None], sv[:, None]), (ex[:, None], ev[:, None]))
        return blend(forward, backward, factor)
