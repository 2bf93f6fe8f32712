"""Whether a binary trajectory (DCD, XTC, TRR) ends where its last frame ends.

MDAnalysis counts a DCD's frames from the file size and an XDR file's (XTC, TRR) by
scanning frame headers; a file cut inside its last frame (a run still writing, a copy
that stopped) is read without that frame and without a word, or fails on it with a
message about something else ("the periodic cell has volume 0").  Every text reader
here refuses a frame cut short; these checks do the same for the binary ones, from the
frames' own sizes, before any frame is read.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from .base import FormatError

__all__ = ["check_complete"]

#: XTC frame header before the compressed coordinates: magic, natoms, step, time, box (9),
#: natoms again, precision, minint (3), maxint (3), smallidx, byte count: 23 4-byte words.
_XTC_HEADER = 92
#: XTC stores up to 9 atoms uncompressed (3 floats each after the natoms word).
_XTC_UNCOMPRESSED_ATOMS = 9
#: The magic number of XTC frames whose compressed size needs 64 bits.
_XTC_MAGIC_WIDE = 2023


def check_complete(path, mda_format: str) -> None:
    """Raise a one-line :class:`FormatError` where ``path`` ends inside a frame.

    Parameters
    ----------
    path : path-like
    mda_format : str
        MDAnalysis' format name; only ``"DCD"``, ``"XTC"`` and ``"TRR"`` are checked.
    """
    check = {"DCD": _dcd_frames, "XTC": _xtc_end, "TRR": _trr_end}.get(str(mda_format).upper())
    if check is not None:
        check(Path(path))


def _cut_short(path: Path, whole: int) -> FormatError:
    return FormatError(f"{path.name}: the file ends inside frame {whole} (cut short: a run still writing, or a copy "
                       f"that stopped); give the whole file, or cut it after frame {whole - 1}")


def _dcd_frames(path: Path) -> None:
    from MDAnalysis.lib.formats.libdcd import DCDFile

    try:
        with DCDFile(str(path)) as dcd:
            header, first, each = dcd._header_size, dcd._firstframesize, dcd._framesize
    except Exception:  # not a DCD at all: MDAnalysis' own reader says so
        return
    body = os.path.getsize(path) - header - first
    if body >= 0 and each > 0 and body % each:
        raise _cut_short(path, 1 + body // each)


def _xtc_end(path: Path) -> None:
    """The last XTC frame's header gives its byte count: the file must end with its data."""
    offsets, header = _last_frame_header(path, "XTC", _XTC_HEADER + 4)
    if not offsets:
        return
    if len(header) < 8:
        raise _cut_short(path, len(offsets) - 1)
    magic, n_atoms = struct.unpack(">ii", header[:8])
    # magic 2023 (GROMACS 2023, frames over 2 GB) stores the byte count in 8 bytes
    wide = magic == _XTC_MAGIC_WIDE
    if n_atoms <= _XTC_UNCOMPRESSED_ATOMS:
        length = 56 + 12 * n_atoms
    elif len(header) < _XTC_HEADER + 4 * wide:
        raise _cut_short(path, len(offsets) - 1)
    else:
        compressed = struct.unpack(">q" if wide else ">i", header[88:96 if wide else 92])[0]
        length = _XTC_HEADER + 4 * wide + (compressed + 3) // 4 * 4
    _compare_end(path, offsets, offsets[-1] + length)


def _trr_end(path: Path) -> None:
    """A TRR frame is its header and the blocks the header sizes: the file must end with them."""
    offsets, header = _last_frame_header(path, "TRR", 256)
    if not offsets:
        return
    try:  # magic, version string (its length + 1, its length, the padded characters), then the
        # sizes of ir, e, box, vir, pres, top, sym, x, v, f, and natoms, step, nre
        position = 8
        (length,) = struct.unpack(">i", header[position:position + 4])
        position += 4 + (length + 3) // 4 * 4
        sizes = struct.unpack(">13i", header[position:position + 52])
        position += 52
        box, x, v, f, n_atoms = sizes[2], sizes[7], sizes[8], sizes[9], sizes[10]
        # the frame's precision (4 or 8 bytes) from a block's size: the box is 9 reals, x/v/f 3N
        if n_atoms <= 0 or min(sizes[:10]) < 0:
            raise FormatError(f"{path.name}: frame {len(offsets) - 1} has a corrupt TRR header "
                              f"({n_atoms} atoms, block sizes {list(sizes[:10])})")
        precision = box // 9 if box else next((block // (3 * n_atoms) for block in (x, v, f) if block), 4)
        position += 2 * precision  # time and lambda, in that precision
        end = offsets[-1] + position + sum(sizes[:10])
    except struct.error:
        raise _cut_short(path, len(offsets) - 1) from None
    _compare_end(path, offsets, end)


def _compare_end(path: Path, offsets, end: int) -> None:
    size = os.path.getsize(path)
    if size < end:
        raise _cut_short(path, len(offsets) - 1)
    if size > end:  # a frame begun after the last whole one, its header cut before it counted
        raise _cut_short(path, len(offsets))


def _last_frame_header(path: Path, kind: str, n_bytes: int) -> tuple[list[int], bytes]:
    """The frames' byte offsets (:func:`_offsets`) and the first ``n_bytes`` of the last frame
    (fewer where the file ends first); ([], b"") where MDAnalysis finds no frame."""
    offsets = _offsets(path, kind)
    if not offsets:
        return [], b""
    with open(path, "rb") as handle:
        handle.seek(offsets[-1])
        return offsets, handle.read(n_bytes)


def _offsets(path: Path, kind: str) -> list[int]:
    """Byte offsets of the frames MDAnalysis finds (its own scan; [] where it cannot)."""
    from MDAnalysis.lib.formats.libmdaxdr import TRRFile, XTCFile

    try:
        with (XTCFile if kind == "XTC" else TRRFile)(str(path)) as xdr:
            return [int(offset) for offset in xdr.offsets]
    except Exception:  # not an XDR file at all: MDAnalysis' own reader says so
        return []
