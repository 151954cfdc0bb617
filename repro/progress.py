"""Progress bars: on a terminal only (logs and captured output get none), and all closed before an error line."""

from __future__ import annotations

import sys

from tqdm import tqdm


def progress(total: int, desc: str, unit: str, initial: int = 0, enabled: bool = True) -> tqdm:
    """A bar on stderr when it is a terminal and `enabled` (e.g. rank 0 only); a silent stand-in otherwise."""
    show = enabled and sys.stderr.isatty()
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not show, file=sys.stderr)


def close_all_bars() -> None:
    """Finish every open bar's line, so that what is printed next starts on a line of its own."""
    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()
