"""Peak resident memory block by block, in one process: does a long run's memory creep?

The input (a box's coarse frames played forward and backward, as in
``bench/box_memory.py``) is held in memory and fed to
:func:`mdsr_plugin.pipeline.upsample_stream` in chunks of 2000 frames; no file is
written unless ``--write`` names an H5MD file.  After each fine block the process's peak resident memory since the
previous block is read (``VmHWM``) and reset (``/proc/self/clear_refs``, Linux ≥ 4.0),
so each row is one block's own peak.  Run it with and without glibc's
``MALLOC_MMAP_THRESHOLD_`` fixed to see the allocator's share:

    python bench/block_memory.py bench/data/water32_gfn1_2800.h5md --frames 32769 --method hermite
    MALLOC_MMAP_THRESHOLD_=131072 python bench/block_memory.py bench/data/water32_gfn1_2800.h5md \\
        --frames 32769 --method hermite
    python bench/block_memory.py bench/data/water32_gfn1_2800.h5md --frames 32769 --method hermite \\
        --write /tmp/fine.h5md
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys

from box_memory import palindrome

from mdsr_plugin.io import open_writer, read_trajectory
from mdsr_plugin.pipeline import upsample_stream


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(key + ":")) / 1024


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", help="fine reference run of a box (0.5 fs steps)")
    parser.add_argument("--frames", type=int, default=32769, help="coarse frames of the input")
    parser.add_argument("--factor", type=int, default=10)
    parser.add_argument("--method", default="hermite")
    parser.add_argument("--model", help="checkpoint, with --method neural")
    parser.add_argument("--every", type=int, default=5, help="print every N-th block")
    parser.add_argument("--write", help="also write the fine blocks to this H5MD file")
    args = parser.parse_args(argv)
    coarse = palindrome(read_trajectory(args.reference)[::2][::args.factor], args.frames)
    chunks = (coarse[i:i + 2000] for i in range(0, coarse.n_frames, 2000))
    options = {"model": args.model} if args.model else {}
    peaks = []
    with contextlib.ExitStack() as stack:
        writer = stack.enter_context(open_writer(args.write)) if args.write else None
        _reset_peak()
        for block, fine in enumerate(upsample_stream(chunks, args.factor, args.method, **options)):
            if writer is not None:
                writer.write(fine)
            del fine
            peaks.append(_status_mb("VmHWM"))
            if block % args.every == 0:
                print(f"block {block}: peak {peaks[-1]:.0f} MB, resident after it {_status_mb('VmRSS'):.0f} MB",
                      flush=True)
            _reset_peak()
    print(json.dumps({"method": args.method, "frames": args.frames, "atoms": coarse.n_atoms, "written": args.write,
                      "malloc_mmap_threshold": os.environ.get("MALLOC_MMAP_THRESHOLD_"),
                      "block_peaks_mb": [round(p) for p in peaks]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
