"""The evaluation report: ``metrics.json``, PNG plots and one self-contained ``report.html``.

Plots (matplotlib, Agg backend, no display needed):

``error_in_gap.png``       position MAE against the position inside the gap
``error_by_atom.png``      position MAE per atom
``coordinates.png``        time traces of a bond with H, a heavy-atom bond, a far pair, an angle, a dihedral
``distributions.png``      pair-distance distribution h(r) and speed distribution
``vdos.png``               vibrational density of states: reference, reconstructions, coarse data
``free_energy.png``        −ln P of the two main torsions, reference vs the best method (if any)
``uncertainty.png``        the neural model's disagreement against its actual error (neural only)
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..io.atomic import AtomicFiles
from ..metrics import CM1_PER_INV_FS

__all__ = ["write_report", "format_table"]

KT_LABEL = "−ln P (kT)"


def format_table(evaluation) -> str:
    """The metrics as a plain-text table (best method first by position MAE)."""
    rows = sorted(evaluation.metrics.items(), key=lambda kv: kv[1]["position_mae"])
    width = max([len("method"), *(len(name) for name in [*evaluation.metrics, *evaluation.skipped])])
    header = (f"{'method':<{width}} {'pos MAE Å':>10} {'pos RMSE Å':>10} {'vel MAE Å/fs':>12} "
              f"{'dist MAE Å':>10} {'VDOS ovl':>8}")
    lines = [header, "-" * len(header)]
    for name, m in rows:  # the name column as wide as the longest name ("quintic-spline")
        lines.append(
            f"{name:<{width}} {m['position_mae']:>10.2e} {m['position_rmse']:>10.2e} "
            f"{_fmt(m['velocity_mae'], '.2e'):>12} {_fmt(m['distance_mae'], '.2e'):>10} "
            f"{_fmt(m['spectral_overlap'], '.3f'):>8}"
        )
    for name, why in evaluation.skipped.items():
        lines.append(f"{name:<{width}} skipped: {why}")
    return "\n".join(lines)


def _fmt(value, spec):
    return "—" if value is None else format(value, spec)


#: Every plot a report can hold (the module docstring's list); a report removes those it does not make.
REPORT_PLOTS = ("error_in_gap.png", "error_by_atom.png", "coordinates.png", "distributions.png", "vdos.png",
                "free_energy.png", "uncertainty.png")


def write_report(evaluation, out_dir, max_scatter: int = 20000) -> dict:
    """Write ``metrics.json``, the plots and ``report.html`` into ``out_dir``.

    Returns
    -------
    dict
        ``{"json": path, "html": path, "plots": [paths]}``.
    """
    import matplotlib

    matplotlib.use("Agg")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Rendered in memory, then published together: an interrupted or failed report leaves the
    # folder as it was, never new plots beside an earlier run's metrics.
    plots = [
        _plot_error_in_gap(evaluation, out_dir),
        _plot_error_by_atom(evaluation, out_dir),
        _plot_coordinates(evaluation, out_dir),
        _plot_distributions(evaluation, out_dir),
        _plot_vdos(evaluation, out_dir),
        _plot_free_energy(evaluation, out_dir),
        _plot_uncertainty(evaluation, out_dir, max_scatter),
    ]
    plots = [p for p in plots if p is not None]
    contents = {out_dir / "metrics.json": json.dumps(evaluation.to_json(), indent=1).encode(),
                **{figure.path: figure.png for figure in plots},
                out_dir / "report.html": _html(evaluation, plots).encode()}
    with AtomicFiles(*contents) as temporaries:
        for temporary, data in zip(temporaries, contents.values()):
            temporary.write_bytes(data)
    for stale in set(REPORT_PLOTS) - {figure.path.name for figure in plots}:  # an earlier report's, of other methods
        (out_dir / stale).unlink(missing_ok=True)
    return {"json": out_dir / "metrics.json", "html": out_dir / "report.html", "plots": [f.path for f in plots]}


class _Figure(NamedTuple):
    """A plot rendered, not yet written: its file and its PNG bytes."""

    path: Path
    png: bytes


def _save(fig, path: Path) -> _Figure:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return _Figure(path, buffer.getvalue())


def _colours(evaluation):
    import matplotlib.pyplot as plt

    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {name: cycle[(k + 1) % len(cycle)] for k, name in enumerate(evaluation.metrics)}


def _plot_error_in_gap(evaluation, out_dir):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    colours = _colours(evaluation)
    tau = np.arange(1, evaluation.factor) * evaluation.dt
    for name, m in evaluation.metrics.items():
        ax.semilogy(tau, m["position_mae_by_gap_position"], "o-", ms=3, label=name, color=colours[name])
    ax.set(xlabel="time since the coarse frame (fs)", ylabel="position MAE (Å)",
           title=f"Error inside the gap (coarse step {evaluation.dt * evaluation.factor:g} fs)")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(fig, out_dir / "error_in_gap.png")


def _plot_error_by_atom(evaluation, out_dir):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 0.35 * evaluation.n_atoms), 4))
    names = list(evaluation.metrics)
    width = 0.8 / max(len(names), 1)
    x = np.arange(evaluation.n_atoms)
    colours = _colours(evaluation)
    for k, name in enumerate(names):
        ax.bar(x + k * width, evaluation.metrics[name]["position_mae_by_atom"], width, label=name,
               color=colours[name])
    ax.set_yscale("log")
    ax.set_xticks(x + 0.4 - width / 2, [f"{s}{i}" for i, s in enumerate(evaluation.symbols)], fontsize=8)
    ax.set(ylabel="position MAE (Å)", title="Error per atom")
    ax.legend(fontsize=8)
    return _save(fig, out_dir / "error_by_atom.png")


def _plot_coordinates(evaluation, out_dir):
    import matplotlib.pyplot as plt

    coordinates = evaluation.binning.coordinates
    if not coordinates:
        return None
    reference = evaluation.reference_observables.trace()
    n = min(len(reference), 20 * evaluation.factor + 1)  # twenty gaps: enough to see the vibrations
    t = np.arange(n) * evaluation.dt
    fig, axes = plt.subplots(len(coordinates), 1, figsize=(7, 2.0 * len(coordinates)), sharex=True)
    axes = np.atleast_1d(axes)
    colours = _colours(evaluation)
    coarse = np.arange(0, n, evaluation.factor)
    for k, (ax, coordinate) in enumerate(zip(axes, coordinates)):
        ax.plot(t, reference[:n, k], color="black", lw=2.2, alpha=0.35, label="reference")
        for name, observables in evaluation.observables.items():
            trace = observables.trace()[:n, k]
            ax.plot(t[: len(trace)], trace, lw=1, color=colours[name], label=name)
        ax.plot(t[coarse], reference[coarse, k], "ko", ms=3, label="coarse frames")
        ax.set_ylabel(f"{coordinate.label}\n({coordinate.unit})", fontsize=8)
    axes[0].legend(fontsize=7, ncol=4, loc="upper right")
    axes[-1].set_xlabel("time (fs)")
    fig.suptitle("Internal coordinates: reference and reconstructions")
    return _save(fig, out_dir / "coordinates.png")


def _normalised(counts, edges):
    widths = np.diff(edges)
    total = counts.sum()
    return counts / (total * widths) if total else counts


def _plot_distributions(evaluation, out_dir):
    import matplotlib.pyplot as plt

    b = evaluation.binning
    ref = evaluation.reference_observables
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    _plot_histograms(evaluation, left, "distance_counts", b.distance_edges)
    left.set(xlabel="interatomic distance r (Å)", ylabel="h(r) (1/Å)", title="Pair-distance distribution")
    if ref.speed_counts.sum():
        _plot_histograms(evaluation, right, "speed_counts", b.speed_edges)
        right.set(xlabel="atomic speed (Å/fs)", ylabel="probability density (fs/Å)", title="Speed distribution")
    else:
        right.text(0.5, 0.5, "the reference has no velocities", ha="center", transform=right.transAxes)
        right.set_axis_off()
    return _save(fig, out_dir / "distributions.png")


def _plot_histograms(evaluation, ax, attribute, edges):
    """Reference (thick, grey) and each method's normalised histogram ``attribute`` on ``ax``."""
    centres = 0.5 * (edges[1:] + edges[:-1])
    reference = getattr(evaluation.reference_observables, attribute)
    ax.plot(centres, _normalised(reference, edges), color="black", lw=2.2, alpha=0.35, label="reference")
    colours = _colours(evaluation)
    for name, observables in evaluation.observables.items():
        ax.plot(centres, _normalised(getattr(observables, attribute), edges), lw=1, color=colours[name], label=name)
    ax.legend(fontsize=8)


def _plot_vdos(evaluation, out_dir):
    import matplotlib.pyplot as plt

    w_ref, p_ref = evaluation.reference_observables.spectrum()
    if p_ref is None:
        return None
    fig, ax = plt.subplots(figsize=(8, 4))
    nyquist = 0.5 / (evaluation.dt * evaluation.factor) * CM1_PER_INV_FS
    ax.axvspan(0, nyquist, color="tab:green", alpha=0.12, label=f"band the coarse data resolves (<{nyquist:.0f} cm⁻¹)")
    ax.plot(w_ref, p_ref, color="black", lw=2.2, alpha=0.35, label="reference")
    colours = _colours(evaluation)
    for name, obs in evaluation.observables.items():
        w, p = obs.spectrum()
        if p is not None:
            ax.plot(w, p, lw=1, color=colours[name], label=name)
    w_c, p_c = evaluation.coarse_spectrum
    spacing_ratio = (w_ref[1] - w_ref[0]) / max(w_c[1] - w_c[0], 1e-12)
    ax.plot(w_c, p_c * spacing_ratio, color="grey", ls="--", lw=1, label="coarse data")
    ax.set(xlim=(0, min(4500, w_ref[-1])), xlabel="wavenumber (cm⁻¹)", ylabel="VDOS (normalised)",
           title="Vibrational density of states (from the velocity autocorrelation)")
    ax.legend(fontsize=8)
    return _save(fig, out_dir / "vdos.png")


def _plot_free_energy(evaluation, out_dir):
    import matplotlib.pyplot as plt

    b = evaluation.binning
    if not b.torsions or not evaluation.metrics:
        return None
    best = min(evaluation.metrics, key=lambda name: evaluation.metrics[name]["position_mae"])
    panels = [("reference", evaluation.reference_observables.torsion_counts),
              (best, evaluation.observables[best].torsion_counts)]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    for ax, (title, counts) in zip(axes, panels):
        with np.errstate(divide="ignore"):
            free = -np.log(counts / counts.sum())
        free -= np.nanmin(free[np.isfinite(free)]) if np.isfinite(free).any() else 0
        image = ax.imshow(free.T, origin="lower", extent=[-180, 180, -180, 180], cmap="viridis", aspect="auto")
        ax.set(title=title, xlabel=f"{b.torsions[0].label} (°)")
        fig.colorbar(image, ax=ax, label=KT_LABEL)
    axes[0].set_ylabel(f"{b.torsions[1].label} (°)")
    fig.suptitle("Free-energy surface of the two main torsions")
    return _save(fig, out_dir / "free_energy.png")


def _plot_uncertainty(evaluation, out_dir, max_points):
    import matplotlib.pyplot as plt

    with_model = [(n, e) for n, e in evaluation.errors.items() if e.frame_disagreement]
    if not with_model:
        return None
    name, errors = with_model[0]
    actual, disagreement = errors.frame_arrays()
    step = max(1, len(actual) // max_points)  # subsample what is plotted
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.loglog(disagreement[::step], actual[::step], ".", ms=2, alpha=0.4)
    u = evaluation.metrics[name]["uncertainty"]
    ax.set(xlabel="forward/backward disagreement (Å)", ylabel="actual position MAE of the frame (Å)",
           title=f"{name}: is the uncertainty informative?\nSpearman ρ = {u['spearman']:.2f}")
    ax.grid(alpha=0.3, which="both")
    return _save(fig, out_dir / "uncertainty.png")


def _html(evaluation, plots) -> str:
    """One page: summary, metric table, every plot embedded (data URIs: self-contained)."""
    data = evaluation.to_json()
    rows = []
    for name, m in sorted(evaluation.metrics.items(), key=lambda kv: kv[1]["position_mae"]):
        cells = [name, _fmt(m["position_mae"], ".2e"), _fmt(m["position_rmse"], ".2e"),
                 _fmt(m["velocity_mae"], ".2e"), _fmt(m["velocity_rmse"], ".2e"), _fmt(m["distance_mae"], ".2e"),
                 _fmt(m["spectral_overlap"], ".3f")]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    skipped = "".join(f"<li><b>{html.escape(n)}</b>: {html.escape(w)}</li>" for n, w in evaluation.skipped.items())
    uncertainty = ""
    for name, m in evaluation.metrics.items():
        if "uncertainty" in m:
            u = m["uncertainty"]
            uncertainty += (f"<p><b>{html.escape(name)}</b>: forward/backward disagreement vs actual error — "
                            f"Spearman ρ = {u['spearman']:.2f}, Pearson r = {u['pearson']:.2f}; the mean error is "
                            f"{u['ratio_mean_error_to_disagreement']:.2f}× the mean disagreement.</p>")
    figures = []
    for figure in plots:
        encoded = base64.b64encode(figure.png).decode("ascii")
        figures.append(f'<figure><img alt="{html.escape(figure.path.stem)}" src="data:image/png;base64,{encoded}">'
                       f"<figcaption>{html.escape(figure.path.name)}</figcaption></figure>")
    title = f"mdsr-eval: {html.escape(os.path.basename(evaluation.reference))}, factor {evaluation.factor}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
td:first-child{{text-align:left}}img{{max-width:100%}}figure{{margin:1.5em 0}}</style></head>
<body><h1>{title}</h1>
<p>Reference <code>{html.escape(evaluation.reference)}</code>: {data['n_atoms']} atoms, {data['frames_compared']}
frames at {data['fine_dt_fs']:g} fs. Coarse input: every {evaluation.factor}th frame ({data['coarse_dt_fs']:g} fs),
{'positions only' if evaluation.positions_only else 'as stored (positions and, if present, velocities)'}.
Errors are over the reconstructed frames only (coarse frames are exact).</p>
<h2>Metrics</h2>
<table><tr><th>method</th><th>position MAE (Å)</th><th>position RMSE (Å)</th><th>velocity MAE (Å/fs)</th>
<th>velocity RMSE (Å/fs)</th><th>distance MAE (Å)</th><th>VDOS overlap</th></tr>
{''.join(rows)}</table>
{f'<p>Not evaluated:</p><ul>{skipped}</ul>' if skipped else ''}
{uncertainty}
<h2>Plots</h2>
{''.join(figures)}
<p>All numbers: <code>metrics.json</code>. Made by mdsr_plugin's <code>mdsr-eval</code>.</p>
</body></html>
"""
