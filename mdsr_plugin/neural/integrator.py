"""The one bi-directional learned integrator: velocity Verlet, forward and backward, blended.

Every learned model of this package — the molecular architectures of
:mod:`mdsr_plugin.neural.models` and the local periodic potential of
:mod:`mdsr_plugin.neural.local` — is an *energy model* (or, for the neural ODE, an
acceleration field) integrated the same way.  This module holds that shared part
once:

* :func:`mlp`, the smooth networks the energies are made of;
* :func:`forces_from_energy`, F = −∇E by automatic differentiation;
* :func:`velocity_verlet`, fine frames from (x₀, v₀) with sub-steps, an optional
  memory correction held over each fine frame (the Bi-LSTM/RNN of the paper);
* :func:`run_both_ways` and :func:`blend`, the paper's bi-directional scheme: one
  path forward from a gap's first coarse frame, one backward (velocities reversed)
  from its last, through the integrator as one batch, and the two blended with
  λ(s) = 3s² − 2s³ (s ∈ [0, 1] across the gap) so that each end is reproduced
  exactly and each path is trusted most near its own start;
* :func:`gap_end_misfits`, what learning from coarse frames compares: where each path
  lands against the stored frame it should reach, and how far the two paths disagree.

Shapes: ``B`` gaps (or frames), ``N`` atoms, ``T = n_steps + 1`` fine frames.
Units: Å, fs, Å/fs, Å/fs², eV/Å.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

__all__ = ["mlp", "blend_weights", "forces_from_energy", "velocity_verlet", "run_both_ways", "blend",
           "gap_end_misfits"]


def mlp(n_in: int, width: int, depth: int, n_out: int) -> nn.Sequential:
    """``depth`` hidden layers of ``width`` SiLU units: smooth forces and force gradients."""
    layers, size = [], n_in
    for _ in range(depth):
        layers += [nn.Linear(size, width), nn.SiLU()]
        size = width
    layers.append(nn.Linear(size, n_out))
    return nn.Sequential(*layers)


def blend_weights(factor: int, dtype=torch.float64, device=None) -> torch.Tensor:
    """λ(s) at the fine frames of one gap, shape (factor + 1,): 0 at the start, 1 at the end."""
    s = torch.arange(factor + 1, dtype=dtype, device=device) / factor
    return s * s * (3 - 2 * s)


def forces_from_energy(energy: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, training: bool,
                       create_graph: bool = False) -> torch.Tensor:
    """Forces −∇E, shape of ``x``, of ``energy(x)`` (summed over the batch).

    The force stays differentiable when it is part of a larger graph: in training
    (gradients reach the weights) and when the positions depend on something being
    fitted (the velocity shooting of positions-only input).
    """
    create_graph = create_graph or training or x.requires_grad
    with torch.enable_grad():
        if not x.requires_grad:
            x = x.detach().requires_grad_(True)
        (gradient,) = torch.autograd.grad(energy(x).sum(), x, create_graph=create_graph)
    return -gradient


class Memory:
    """A correction to the acceleration carried along a path (the recurrent part of the
    paper's Bi-LSTM/Bi-RNN): :meth:`correction` is added to the memoryless acceleration
    and held over each fine frame; :meth:`advance` is called once per fine frame."""

    def correction(self):
        """The extra acceleration, (B, N, 3) Å/fs², or 0.0 for none."""
        return 0.0

    def advance(self, x: torch.Tensor, v: torch.Tensor) -> None:
        """Take in the fine frame just reached, (B, N, 3) Å and Å/fs."""


def velocity_verlet(x0: torch.Tensor, v0: torch.Tensor, n_steps: int, dt: float, substeps: int,
                    acceleration: Callable[[torch.Tensor], torch.Tensor],
                    memory: Memory | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Integrate ``n_steps`` fine steps of ``dt`` fs, each in ``substeps`` Verlet sub-steps.

    Parameters
    ----------
    x0, v0 : Tensor, shape (B, N, 3), Å and Å/fs
    n_steps : int
    dt : float
        Fine step, fs (positive; a path runs backward in time with reversed velocities).
    substeps : int
    acceleration : callable
        Memoryless acceleration at positions (B, N, 3) Å, in Å/fs².  Called once per
        sub-step, at the new positions (a model may refresh a neighbour list there).
    memory : Memory, optional

    Returns
    -------
    x, v : Tensor, shape (B, n_steps + 1, N, 3)
    """
    h = dt / substeps
    x, v = x0, v0
    base = acceleration(x)
    correction = memory.correction() if memory is not None else 0.0
    xs, vs = [x], [v]
    for _ in range(n_steps):
        for _ in range(substeps):
            v_half = v + 0.5 * h * (base + correction)
            x = x + h * v_half
            base = acceleration(x)
            v = v_half + 0.5 * h * (base + correction)
        if memory is not None:
            memory.advance(x, v)
            correction = memory.correction()
        xs.append(x)
        vs.append(v)
    return torch.stack(xs, 1), torch.stack(vs, 1)


def run_both_ways(rollout: Callable, start, end):
    """Forward paths from the gaps' first frames and backward ones from their last, as one batch.

    Parameters
    ----------
    rollout : callable
        ``rollout(history_x, history_v) -> (x, v)``: the model's integrator with its step
        (and cells) bound, from histories (2B, K, N, 3) whose last frame is the start,
        to paths (2B, T, N, 3).
    start, end : tuple of Tensor (positions, velocities), each shape (B, K, N, 3)
        The K coarse frames ending at each gap's first frame (oldest first), and the K
        starting at its last frame (in forward time order), Å and Å/fs.  The backward
        path's history is ``end`` reversed in time, velocities negated.

    Returns
    -------
    forward, backward : tuple of Tensor (x, v), each shape (B, T, N, 3)
        Both in forward time order, the backward velocities turned forward again.
    """
    (sx, sv), (ex, ev) = start, end
    xs, vs = rollout(torch.cat([sx, ex.flip(1)]), torch.cat([sv, -ev.flip(1)]))
    n = len(sx)
    return (xs[:n], vs[:n]), (xs[n:].flip(1), -vs[n:].flip(1))


def blend(forward, backward, factor: int):
    """The bi-directional fine frames of a gap from its two paths.

    Parameters
    ----------
    forward, backward : tuple of Tensor (x, v), each shape (B, factor + 1, N, 3)
    factor : int

    Returns
    -------
    x, v : Tensor, shape (B, factor + 1, N, 3)
        (1 − λ) · forward + λ · backward, positions Å and velocities Å/fs.
    disagreement : Tensor, shape (B, factor + 1)
        RMS distance (Å) between the forward and backward positions.
    """
    (xf, vf), (xb, vb) = forward, backward
    lam = blend_weights(factor, dtype=xf.dtype, device=xf.device)[None, :, None, None]
    x = (1 - lam) * xf + lam * xb
    v = (1 - lam) * vf + lam * vb
    disagreement = ((xf - xb) ** 2).sum(-1).mean(-1).sqrt()
    return x, v, disagreement


def gap_end_misfits(forward, backward, start_x, start_v, end_x, end_v):
    """Where each path lands against the frame it should reach, and how the paths differ.

    Parameters
    ----------
    forward, backward : tuple of Tensor (x, v), each shape (B, T, N, 3)
        From :func:`run_both_ways`.
    start_x, start_v, end_x, end_v : Tensor, shape (B, N, 3)
        The stored first and last frames of each gap.

    Returns
    -------
    end_x : Tensor, shape (2B, N, 3), Å
        Forward end minus the stored last frame, then backward end minus the stored first.
    end_v : Tensor, shape (2B, N, 3), Å/fs
    disagreement : Tensor, shape (B, T − 2, N, 3), Å
        Forward minus backward positions at the gap's inner frames.
    """
    (fx, fv), (bx, bv) = forward, backward
    misfit_x = torch.cat([fx[:, -1] - end_x, bx[:, 0] - start_x])
    misfit_v = torch.cat([fv[:, -1] - end_v, bv[:, 0] - start_v])
    return misfit_x, misfit_v, fx[:, 1:-1] - bx[:, 1:-1]
