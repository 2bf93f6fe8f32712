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
import functools
import hashlib
import os
import signal
import socket
import stat
import sys
import uuid
from pathlib import Path

__all__ = ["AtomicFiles", "write_text_atomically", "temporary_name", "is_temporary_name", "remove_open_temporaries",
           "remove_stale_temporaries", "Interrupted", "stop_on_signals", "not_a_file", "published_while_stopping"]

#: Temporary files of this process not yet committed or aborted; a process killed by
#: SIGTERM removes them (:func:`remove_open_temporaries`).
_OPEN: set[Path] = set()

#: This host, as it appears in temporary names (a short hash: host names can be long
#: and hold dots, which would change the suffix libraries pick formats by).
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]

#: The signal that asked this process to stop, once one has (see :func:`stop_on_signals`).
_STOP_SIGNAL: list[int] = []

#: Files published within :func:`stop_on_signals` (so that an interrupt arriving just after
#: they were does not say nothing was written).
_PUBLISHED: list[Path] = []

#: The signals that stop a command: Ctrl-C, what ``timeout`` and SLURM send, a closed
#: terminal or a dropped ssh session.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def not_a_file(path) -> str | None:
    """What ``path`` is, where it exists and is no regular file ("a folder", "a device",
    "a FIFO", "a socket"); None for a regular file, a link to one, or nothing there.

    Publishing renames a finished file onto its name: a device (``/dev/null``), a FIFO or a
    socket there would be replaced by a plain file."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device"


def published_while_stopping() -> list[Path]:
    """The files published since :func:`stop_on_signals` began (an interrupt's message names them)."""
    return list(_PUBLISHED)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived: stop, publish nothing.  ``exit_code`` is 128 + the signal."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


@contextlib.contextmanager
def stop_on_signals():
    """Within the block, SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` (in the main thread).

    What ``timeout`` and SLURM send (SIGTERM) then unwinds like Ctrl-C: every writer
    deletes its temporary files.  If a library swallows the exception, the files are
    still not published (:meth:`AtomicFiles.commit` checks for the signal).
    """

    def handler(signum, frame):
        _STOP_SIGNAL.append(signum)
        if not when_published(functools.partial(_raise_interrupted, signum)):
            raise Interrupted(signum)

    def unraisable(report):  # the interrupt landed where Python ignores exceptions (a weakref
        if report.exc_type is not Interrupted:  # callback in h5py): commit() still sees it
            previous_hook(report)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    previous_hook, sys.unraisablehook = sys.unraisablehook, unraisable
    _PUBLISHED.clear()
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        sys.unraisablehook = previous_hook
        _STOP_SIGNAL.clear()
        _AFTER_PUBLISHING.clear()


def _raise_interrupted(signum: int):
    raise Interrupted(signum)


#: Set while a group of files is being published; what a stop signal would do waits in
#: :data:`_AFTER_PUBLISHING` until every rename is done (a DCD without its velocity DCD
#: would otherwise be left).  A flag, not a signal mask: a mask holds only in its own
#: thread, and the signal goes to any thread of the process (PyTorch's, OpenMP's).
_PUBLISHING: list[bool] = []
_AFTER_PUBLISHING: list = []


def when_published(action) -> bool:
    """While a group of files is being published, keep ``action`` (a signal handler's) for
    when it is, and return True; otherwise return False (the handler acts at once)."""
    if _PUBLISHING:
        _AFTER_PUBLISHING.append(action)
        return True
    return False


#: Longest file name, bytes, of the file systems in use (ext4, XFS, Btrfs, NFS...).
NAME_MAX = 255


def _temporary_stem(path: Path) -> str:
    """``path``'s stem, cut so that a temporary name fits :data:`NAME_MAX` (a 250-byte output
    name is valid; its temporary name, 35 bytes longer, would not be)."""
    room = NAME_MAX - len(f"..partial-{'0' * 8}-{_HOST}-{'9' * 10}") - len(path.suffix.encode())
    return path.stem.encode()[:room].decode(errors="ignore")


def _temporary_glob(path: Path) -> str:
    return f".{_temporary_stem(path)}.partial-*{path.suffix}"


def temporary_name(path: Path) -> Path:
    """A hidden sibling of ``path`` that keeps its extension (libraries pick formats by it)
    and names its writer: ``.STEM.partial-RANDOM-HOST-PID.EXT``."""
    path = Path(path)
    return path.with_name(f".{_temporary_stem(path)}.partial-{uuid.uuid4().hex[:8]}-{_HOST}-{os.getpid()}"
                          f"{path.suffix}")


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
            kind = not_a_file(final)
            if kind is not None:
                raise IsADirectoryError(f"{final}: is {kind}, not a file name")
            folder = final.parent if str(final.parent) else Path(".")
            if folder.is_dir() and not os.access(folder, os.W_OK):  # name the output, not a temporary name
                raise PermissionError(f"{final}: its folder cannot be written to")
            remove_stale_temporaries(final)
        self.temporary = [temporary_name(p) for p in self.final]
        _OPEN.update(self.temporary)

    def commit(self) -> None:
        """Rename every temporary file onto its final name; all of them or none.

        A group (a DCD and its velocity DCD) keeps each file it replaces aside (a hard link,
        else a copy) until every rename has succeeded, and puts them back if one fails; a stop
        signal waits until the group is published (:func:`when_published`), so that an
        interrupt cannot fall between two renames.
        """
        if _STOP_SIGNAL:  # an interrupt a library swallowed: publish nothing
            self.abort()
            raise Interrupted(_STOP_SIGNAL[0])
        mode = _new_file_mode()
        if not _PUBLISHING:  # left by a signal that acted at once after the last group (it ended that run)
            _AFTER_PUBLISHING.clear()
        _PUBLISHING.append(True)
        try:
            previous = {} if len(self.final) == 1 else _kept_aside(self.final)
            done = []
            try:
                for temp, final in zip(self.temporary, self.final):
                    # as open() would have made it: a library may create its file private (safetensors: 0600)
                    os.chmod(temp, mode)
                    try:
                        os.replace(temp, final)
                    except OSError as err:
                        raise type(err)(err.errno, f"{final} cannot be written ({err.strerror})") from None
                    done.append(final)
            except BaseException:
                for final in done:  # what this group published is undone: the old files, or none
                    _restore(final, previous.get(final, False))
                self.abort()
                raise
            finally:
                for kept in previous.values():
                    if kept is not None:
                        _unlink(kept)
            _PUBLISHED.extend(self.final)
            for temp in self.temporary:
                _OPEN.discard(temp)
        finally:
            _PUBLISHING.pop()
            if not _PUBLISHING:  # a stop signal that came meanwhile acts now (the first: it ends the run)
                waiting = list(_AFTER_PUBLISHING)
                _AFTER_PUBLISHING.clear()
                if waiting:
                    waiting[0]()

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


def _kept_aside(paths: list[Path]) -> dict[Path, Path | None]:
    """Each of ``paths`` that exists, kept under a temporary name to put back: a hard link,
    else (a file system without them, protected links) a copy.  A file that exists but
    could not be kept maps to None, so that it is never removed as if it were new."""
    import shutil

    kept = {}
    for path in paths:
        if not path.exists():
            continue
        aside = temporary_name(path)
        try:
            os.link(path, aside)
        except OSError:
            try:
                shutil.copy2(path, aside)
            except OSError:
                _unlink(aside)
                aside = None
        kept[path] = aside
    return kept


def _restore(final: Path, kept) -> None:
    """Put back the file ``final`` replaced (``kept`` aside), or remove ``final`` if it is new
    (``kept`` is ``False``: absent from :func:`_kept_aside`'s map)."""
    try:
        if kept:
            os.replace(kept, final)
        elif kept is False:
            final.unlink()
    except OSError:
        pass


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
