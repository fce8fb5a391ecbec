"""Progress output that suits where it goes: tqdm bars on a terminal, plain lines in a log file.

A bar redraws itself with carriage returns, which a log file or CI output keeps as one long
garbled line; so bars are drawn only when stderr is a terminal, and the trainer prints one plain
line per epoch instead (:func:`plain_lines`).
"""

from __future__ import annotations

import sys


def bars_enabled(requested: bool = True) -> bool:
    """Draw progress bars: asked for (not ``--quiet``) and stderr is a terminal."""
    try:
        return bool(requested) and sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def plain_lines(requested: bool = True) -> bool:
    """Print a plain progress line now and then instead: asked for but no terminal."""
    return bool(requested) and not bars_enabled(True)


def progress_bar(iterable=None, *, enabled: bool = True, **kwargs):
    """A tqdm bar, disabled unless :func:`bars_enabled` (same arguments as ``tqdm``)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=not bars_enabled(enabled), **kwargs)


def say(text: str) -> None:
    """One progress line on stderr (for :func:`plain_lines` output)."""
    print(text, file=sys.stderr, flush=True)
