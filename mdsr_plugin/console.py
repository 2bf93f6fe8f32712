"""What every command prints besides its results: one line per warning, as per error.

Python's own format shows the source file and line of the ``warnings.warn`` call and the
call itself, which mean nothing to a user of the command line.  Kept below every other
module (it imports none of the package) so that each command's ``main`` can use it.
"""

from __future__ import annotations

import errno
import functools
import os
import sys
import warnings

__all__ = ["one_line_warnings", "closed_pipe_ends_quietly"]


def one_line_warnings(prog: str) -> None:
    """Print every later warning as ``PROG: warning: MESSAGE`` (one line, whitespace folded)."""
    warnings.formatwarning = functools.partial(_format, prog)


def _format(prog, message, category, filename, lineno, line=None) -> str:
    return f"{prog}: warning: {' '.join(str(message).split())}\n"


def closed_pipe_ends_quietly(main):
    """Wrap a command's ``main`` so that output piped into a reader that stops early
    (``mdsr-models show ID --json | head``) ends the command without a traceback, with
    the shell's status for it (128 + SIGPIPE)."""

    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        try:
            code = main(*args, **kwargs)
            sys.stdout.flush()  # a closed pipe shows here, not at exit where it cannot be caught
            return code
        except BrokenPipeError:
            _drop_stdout()
            return 128 + 13
        except OSError as err:
            # a write to stdout names no file; the commands' own file errors are theirs to report
            if err.errno not in (errno.ENOSPC, errno.EIO) or err.filename is not None:
                raise
            _drop_stdout()  # stdout on a full disk (> /dev/full): one line, not a traceback
            print(f"{sys.argv[0].rsplit('/', 1)[-1]}: error: cannot write to stdout ({err.strerror})", file=sys.stderr)
            return 1

    return wrapped


def _drop_stdout() -> None:
    """Point stdout at /dev/null: Python flushes it again at exit and would fail the same way."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
