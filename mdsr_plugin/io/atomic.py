"""Write-to-temporary-then-rename, so an output file appears only when it is complete.

A temporary name carries its writer's host and process id, so that the next run of
the same output can tell a leftover of a killed run (that process is gone: removed)
from a run still writing (left alone).  Not a file lock: HDF5 takes its own ``flock``
on the file it writes, and POSIX locks vanish whenever a library closes any
descriptor of the file.  SIGTERM and SIGINT end the
process through :class:`Interrupted`; an interrupt that a library swallowed (h5py
ignores exceptions raised in some of its callbacks) is still seen when the files
would be published, and they are deleted instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import sys
import uuid
from pathlib import Path

__all__ = ["AtomicFiles", "write_text_atomically", "temporary_name", "is_temporary_name", "remove_open_temporaries",
           "remove_stale_temporaries", "Interrupted", "stop_on_signals"]

#: Temporary files of this process not yet committed or aborted; a process killed by
#: SIGTERM removes them (:func:`remove_open_temporaries`).
_OPEN: set[Path] = set()

#: This host, as it appears in temporary names (a short hash: host names can be long
#: and hold dots, which would change the suffix libraries pick formats by).
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]

#: The signal that asked this process to stop, once one has (see :func:`stop_on_signals`).
_STOP_SIGNAL: list[int] = []


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived: stop, publish nothing.  ``exit_code`` is 128 + the signal."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


@contextlib.contextmanager
def stop_on_signals():
    """Within the block, SIGINT and SIGTERM raise :class:`Interrupted` (in the main thread).

    What ``timeout`` and SLURM send (SIGTERM) then unwinds like Ctrl-C: every writer
    deletes its temporary files.  If a library swallows the exception, the files are
    still not published (:meth:`AtomicFiles.commit` checks for the signal).
    """

    def handler(signum, frame):
        _STOP_SIGNAL.append(signum)
        raise Interrupted(signum)

    def unraisable(report):  # the interrupt landed where Python ignores exceptions (a weakref
        if report.exc_type is not Interrupted:  # callback in h5py): commit() still sees it
            previous_hook(report)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous_hook, sys.unraisablehook = sys.unraisablehook, unraisable
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        sys.unraisablehook = previous_hook
        _STOP_SIGNAL.clear()


def _temporary_glob(path: Path) -> str:
    return f".{path.stem}.partial-*{path.suffix}"


def temporary_name(path: Path) -> Path:
    """A hidden sibling of ``path`` that keeps its extension (libraries pick formats by it)
    and names its writer: ``.STEM.partial-RANDOM-HOST-PID.EXT``."""
    path = Path(path)
    return path.with_name(f".{path.stem}.partial-{uuid.uuid4().hex[:8]}-{_HOST}-{os.getpid()}{path.suffix}")


def is_temporary_name(path) -> bool:
    """Whether ``path`` looks like a :func:`temporary_name` (a leftover of a killed writer)."""
    name = Path(path).name
    if not name.startswith(".") or ".partial-" not in name:
        return False
    tag = name.split(".partial-", 1)[1][:8]
    return len(tag) == 8 and all(c in "0123456789abcdef" for c in tag)


def _writer_is_gone(temp: Path) -> bool:
    """Whether the process that named ``temp`` has ended (False when that cannot be told:
    another host, or a name without an owner)."""
    owner = temp.name.split(".partial-", 1)[1][: -len(temp.suffix) or None].split("-")
    if len(owner) != 3 or owner[1] != _HOST or not owner[2].isdigit():
        return False
    pid = int(owner[2])
    if pid == os.getpid():
        return temp not in _OPEN
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def remove_open_temporaries() -> None:
    """Delete this process's uncommitted temporary files (for signal handlers)."""
    for temp in list(_OPEN):
        _OPEN.discard(temp)
        _unlink(temp)


def remove_stale_temporaries(path) -> list[Path]:
    """Delete the temporary files of ``path`` whose writer has ended (leftovers of a killed
    run); returns them.  A run still writing is left alone."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    stale = [t for t in path.parent.glob(_temporary_glob(path)) if is_temporary_name(t) and _writer_is_gone(t)]
    for temp in stale:
        _unlink(temp)
    return stale


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


class AtomicFiles:
    """Temporary names for a group of output files that are published together.

    ``commit()`` renames every temporary file onto its final name (each rename is
    atomic on POSIX); ``abort()`` deletes them.  As a context manager it gives the
    temporary paths and commits on success, aborts on any exception.  A writer producing two files (a DCD
    and its velocity DCD) commits both or neither.
    """

    def __init__(self, *paths: Path):
        self.final = [Path(p) for p in paths]
        for final in self.final:
            if final.is_dir():
                raise IsADirectoryError(f"{final}: is a folder, not a file name")
            remove_stale_temporaries(final)
        self.temporary = [temporary_name(p) for p in self.final]
        _OPEN.update(self.temporary)

    def commit(self) -> None:
        if _STOP_SIGNAL:  # an interrupt a library swallowed: publish nothing
            self.abort()
            raise Interrupted(_STOP_SIGNAL[0])
        mode = _new_file_mode()
        for temp, final in zip(self.temporary, self.final):
            # as open() would have made it: a library may create its file private (safetensors: 0600)
            os.chmod(temp, mode)
            os.replace(temp, final)
            _OPEN.discard(temp)

    def __enter__(self) -> list[Path]:
        """The temporary paths to write; committed when the block ends normally, else deleted."""
        return self.temporary

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.abort()
        return False

    def abort(self) -> None:
        for temp in self.temporary:
            _OPEN.discard(temp)
            _unlink(temp)


def _new_file_mode() -> int:
    """The permissions open() gives a new file: 0o666 less the process's umask."""
    mask = os.umask(0)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return 0o666 & ~mask


def write_text_atomically(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file; returns ``path``.

    Readers see the old file or the whole new one, never a part; on an error the
    old file is left as it was.
    """
    path = Path(path)
    with AtomicFiles(path) as (temporary,):
        temporary.write_text(text, encoding="utf-8")
    return path
