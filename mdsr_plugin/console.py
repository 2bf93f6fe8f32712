"""What every command prints besides its results: one line per warning, as per error.

Python's own format shows the source file and line of the ``warnings.warn`` call and the
call itself, which mean nothing to a user of the command line.  Kept below every other
module (it imports none of the package) so that each command's ``main`` can use it.
"""

from __future__ import annotations

import functools
import warnings

__all__ = ["one_line_warnings"]


def one_line_warnings(prog: str) -> None:
    """Print every later warning as ``PROG: warning: MESSAGE`` (one line, whitespace folded)."""
    warnings.formatwarning = functools.partial(_format, prog)


def _format(prog, message, category, filename, lineno, line=None) -> str:
    return f"{prog}: warning: {' '.join(str(message).split())}\n"
