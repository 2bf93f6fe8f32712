"""CPU speed of an existing MLIP library (MACE) on a periodic 96-atom water box.

Measures, on ONE CPU thread, how long an untrained small MACE model
(mace-torch) takes for

  * ``graph``          building the periodic neighbour graph (mace's own
                       pipeline: config_from_atoms -> AtomicData.from_config,
                       matscipy neighbour list) -- per frame;
  * ``energy_forces``  energy + forces (forces = -dE/dx via autograd);
  * ``train_step``     loss = mean(F**2), backward to the weights
                       (double backward through the force autograd),

for a single frame and for a batch of 16 frames, in float64 and float32.
Reported number: median wall time of >= 10 repeats after warm-up, divided by
the number of frames (ms per frame).

This is a decision aid for building a learned periodic integrator on top of
an existing library; it is not part of mdsr_plugin and not run by the tests.

Needs ``mace-torch`` (not a dependency of this project).  Installed without
touching the system torch, e.g.::

    python -m venv --system-site-packages /tmp/libvenv
    /tmp/libvenv/bin/pip install --no-deps mace-torch==0.3.16
    /tmp/libvenv/bin/pip install --no-deps e3nn==0.4.4 opt_einsum opt_einsum_fx \
        torch-ema prettytable matscipy torchmetrics lightning-utilities \
        python-hostlist configargparse gitpython gitdb smmap lmdb pandas

(ase, h5py, numpy, scipy, pyyaml, tqdm, orjson, matplotlib came from the
system site-packages.)  Run::

    OMP_NUM_THREADS=1 nice -n 5 /tmp/libvenv/bin/python bench/library_speed.py \
        [--out bench/results/library_speed.json] [--repeats 10] [--quick]
        [--repeats-big 3] [--max-ell 3,2] [--dtypes float64,float32] [--batches 1,16]

A full default run takes well over 25 min on a shared 2-core box (a float64
batch-16 train step alone is ~1 min per call); the committed results were
made in three runs (see the "note" field of each row).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)
torch.set_num_interop_threads(1)

import ase  # noqa: E402

# mace must be imported before e3nn: e3nn 0.4.4 torch.load()s its packaged
# constants.pt without weights_only=False, which torch >= 2.6 refuses;
# mace's __init__ sets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 to allow it.
import mace  # noqa: E402
from e3nn import o3  # noqa: E402
from mace import data as mdata  # noqa: E402
from mace import modules, tools  # noqa: E402
from mace.tools import torch_geometric  # noqa: E402

try:
    from mace.__version__ import __version__ as MACE_VERSION
except Exception:  # pragma: no cover
    MACE_VERSION = getattr(mace, "__version__", "unknown")

BOX = 9.86  # Angstrom, 32 H2O -> ~0.998 g/cm^3
N_MOL = 32
R_OH = 0.96
HOH = np.deg2rad(104.5)
R_MAX = 5.0


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    a, b, c, d = q
    return np.array(
        [
            [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
            [2 * (b * c + a * d), a * a - b * b + c * c - d * d, 2 * (c * d - a * b)],
            [2 * (b * d - a * c), 2 * (c * d + a * b), a * a - b * b - c * c + d * d],
        ]
    )


def water_box(seed: int = 0) -> ase.Atoms:
    """32 rigid waters, random orientation, O on a jittered 4x4x2 lattice
    (spacing 2.465 x 2.465 x 4.93 A) with min O-O image distance >= 2.3 A."""
    rng = np.random.default_rng(seed)
    h1 = np.array([R_OH, 0.0, 0.0])
    h2 = np.array([R_OH * np.cos(HOH), R_OH * np.sin(HOH), 0.0])
    grid = np.array(
        [[i, j, k] for i in range(4) for j in range(4) for k in range(2)], float
    )
    grid = (grid + 0.5) * np.array([BOX / 4, BOX / 4, BOX / 2])
    # stagger alternate layers so the z-spacing is less anisotropic
    grid[:, 2] += (grid[:, 0] // (BOX / 4) + grid[:, 1] // (BOX / 4)) % 2 * BOX / 4
    o_pos = (grid + rng.uniform(-0.2, 0.2, size=grid.shape)) % BOX
    pos, sym = [], []
    for o in o_pos:
        rot = _random_rotation(rng)
        pos += [o, o + rot @ h1, o + rot @ h2]
        sym += ["O", "H", "H"]
    atoms = ase.Atoms(sym, positions=np.array(pos), cell=[BOX] * 3, pbc=True)
    atoms.wrap()
    d = atoms.get_all_distances(mic=True)[::3, ::3]
    np.fill_diagonal(d, np.inf)
    assert d.min() > 2.3, d.min()
    return atoms


def frames(n: int, seed: int = 0) -> list[ase.Atoms]:
    base = water_box(seed)
    rng = np.random.default_rng(seed + 1)
    out = []
    for _ in range(n):
        a = base.copy()
        a.positions += rng.normal(scale=0.05, size=a.positions.shape)
        a.wrap()
        out.append(a)
    return out


def build_model(z_table, avg_num_neighbors: float, hidden: str, max_ell: int):
    return modules.ScaleShiftMACE(
        r_max=R_MAX,
        num_bessel=8,
        num_polynomial_cutoff=5,
        max_ell=max_ell,
        interaction_cls=modules.interaction_classes[
            "RealAgnosticResidualInteractionBlock"
        ],
        interaction_cls_first=modules.interaction_classes[
            "RealAgnosticInteractionBlock"
        ],
        num_interactions=2,
        num_elements=len(z_table),
        hidden_irreps=o3.Irreps(hidden),
        MLP_irreps=o3.Irreps("16x0e"),
        atomic_energies=np.zeros(len(z_table)),
        avg_num_neighbors=avg_num_neighbors,
        atomic_numbers=z_table.zs,
        correlation=3,
        gate=torch.nn.functional.silu,
        radial_MLP=[64, 64, 64],
        atomic_inter_scale=1.0,
        atomic_inter_shift=0.0,
    )


def to_graphs(atoms_list, z_table):
    return [
        mdata.AtomicData.from_config(
            mdata.config_from_atoms(a), z_table=z_table, cutoff=R_MAX
        )
        for a in atoms_list
    ]


def batch_dict(graphs):
    return torch_geometric.Batch.from_data_list(graphs).to_dict()


def timeit(fn, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--out",
        default=str(Path(__file__).resolve().parent / "results" / "library_speed.json"),
    )
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--repeats-big", type=int, default=None,
                    help="repeats for batches > 1 (default: --repeats)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--hidden", default="32x0e + 32x1o")
    ap.add_argument("--max-ell", default="3,2", help="comma list; one model each")
    ap.add_argument("--dtypes", default="float64,float32")
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--quick", action="store_true", help="3 repeats, 1 warm-up")
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.warmup = 3, 1

    z_table = tools.AtomicNumberTable([1, 8])
    cpu = cpu_model()
    rows = []
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    batches = [int(b) for b in args.batches.split(",")]
    all_atoms = frames(max(batches))

    for max_ell in [int(x) for x in args.max_ell.split(",")]:
        for dtype_name in args.dtypes.split(","):
            dtype = getattr(torch, dtype_name)
            torch.set_default_dtype(dtype)
            torch.manual_seed(0)
            g_all = to_graphs(all_atoms, z_table)
            n_edges = g_all[0].edge_index.shape[1]
            avg_nn = n_edges / g_all[0].num_nodes
            model = build_model(z_table, avg_nn, args.hidden, max_ell).to(dtype)
            n_params = sum(p.numel() for p in model.parameters())
            desc = (
                f"untrained ScaleShiftMACE r_max={R_MAX} num_bessel=8 poly_cutoff=5 "
                f"max_ell={max_ell} correlation=3 num_interactions=2 "
                f"hidden='{args.hidden}' MLP='16x0e' radial_MLP=[64,64,64] "
                f"Z=[1,8] params={n_params}; 96-atom water box L={BOX} A pbc, "
                f"{n_edges} edges/frame (avg {avg_nn:.1f} neighbours)"
            )
            print(desc, dtype_name, flush=True)

            def row(batch, task, sec_per_call):
                r = dict(
                    library="mace-torch",
                    version=MACE_VERSION,
                    torch_version=torch.__version__,
                    model=desc,
                    dtype=dtype_name,
                    batch=batch,
                    task=task,
                    max_ell=max_ell,
                    ms_per_frame=round(1e3 * sec_per_call / batch, 3),
                    ms_per_call=round(1e3 * sec_per_call, 3),
                    repeats=reps,
                    statistic="median",
                    n_threads=torch.get_num_threads(),
                    cpu=cpu,
                )
                rows.append(r)
                out.write_text(json.dumps(rows, indent=1) + "\n")  # partial
                print(f"  {task:14s} batch={batch:2d}  {r['ms_per_frame']:9.2f} ms/frame",
                      flush=True)

            for batch in batches:
                reps = args.repeats
                if batch > 1 and args.repeats_big is not None:
                    reps = args.repeats_big
                atoms = all_atoms[:batch]
                row(
                    batch,
                    "graph",
                    timeit(lambda: batch_dict(to_graphs(atoms, z_table)),
                           reps, args.warmup),
                )
                bd = batch_dict(g_all[:batch])

                def energy_forces():
                    d = dict(bd)
                    d["positions"] = bd["positions"].detach().clone()
                    out = model(d, training=False, compute_force=True)
                    return out["energy"].detach(), out["forces"].detach()

                def train_step():
                    d = dict(bd)
                    d["positions"] = bd["positions"].detach().clone()
                    model.zero_grad(set_to_none=True)
                    out = model(d, training=True, compute_force=True)
                    loss = out["forces"].pow(2).mean()
                    loss.backward()
                    return loss.detach()

                e, f = energy_forces()
                assert f.shape == (96 * batch, 3) and torch.isfinite(f).all()
                assert f.dtype == dtype
                row(batch, "energy_forces", timeit(energy_forces, reps, args.warmup))
                train_step()
                n_grad = sum(p.grad is not None for p in model.parameters())
                assert n_grad > 0, "double backward produced no weight gradients"
                row(batch, "train_step", timeit(train_step, reps, args.warmup))

    out.write_text(json.dumps(rows, indent=1) + "\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
