"""The batch manifest: one JSON line per processed file, appended and synced.

``OUT_DIR/mdsr-manifest.jsonl`` is append-only, so a run killed at any moment
leaves at most one incomplete last line, which is ignored when read.  The latest
record of a file is its state.  A record (all sizes in bytes, times in seconds):

``file``        the input's path relative to the archive (the key)
``status``      ``done``, ``failed``, or :data:`NO_MD_RUN` (a code's output of no MD run:
                a single point, a relaxation; not retried while the input is unchanged)
``error``       one-line reason (failed and no-MD records)
``input_size``  the input's size
``fingerprint`` hash of settings and input size/mtime (see :mod:`.archive`)
``outputs``     ``{path relative to OUT_DIR: size}`` of every file written
``frames_in``, ``frames_out``, ``method``, ``model``, ``model_sha256``
``fallback``    why the fallback method was used, if it was
``seconds``     wall time of the file; ``worker`` host:pid; ``finished`` ISO time

Beside it, ``OUT_DIR/.mdsr-batch.lock`` (:data:`LOCK_NAME`) is held by the running
batch.  Either file marks a folder as a batch output folder (see
:mod:`mdsr_plugin.batch.archive` for what that allows).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["Manifest", "MANIFEST_NAME", "LOCK_NAME", "NO_MD_RUN"]

NO_MD_RUN = "no-md-run"
"""The status of a file its reader recognised as a code's output of no MD run."""

MANIFEST_NAME = "mdsr-manifest.jsonl"
LOCK_NAME = ".mdsr-batch.lock"


class Manifest:
    """Read the state of an output folder's manifest and append records to it."""

    def __init__(self, out_dir):
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / MANIFEST_NAME
        self.latest: dict[str, dict] = {}
        self._torn = False  # the file ends inside a line: start the next record on a new one
        if self.path.is_file():
            with open(self.path, encoding="utf-8") as handle:
                for line in handle:
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # the torn last line of a killed run
                    if isinstance(record, dict) and "file" in record:
                        self.latest[record["file"]] = record
                self._torn = not line.endswith("\n") if self.path.stat().st_size else False

    def is_complete(self, job) -> bool:
        """Whether ``job``'s output is done, valid for its current input and settings (or its
        unchanged input was found to hold no MD run)."""
        record = self.latest.get(job.relative)
        if record is None or record.get("fingerprint") != job.fingerprint:
            return False
        if record.get("status") == NO_MD_RUN:
            return True
        if record.get("status") != "done":
            return False
        for relative, size in record.get("outputs", {}).items():
            path = self.out_dir / relative
            if not path.is_file() or path.stat().st_size != size:
                return False
        return bool(record.get("outputs"))

    def append(self, record: dict) -> None:
        """Add ``record`` durably: the line is flushed and synced before returning."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        line = ("\n" if self._torn else "") + json.dumps(record, sort_keys=True, default=str) + "\n"
        self._torn = False
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        self.latest[record["file"]] = record
