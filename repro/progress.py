"""Progress bars: on a terminal only (logs and captured output get none), and all closed before an error line."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from tqdm import tqdm


def progress(total: int, desc: str, unit: str, initial: int = 0, enabled: bool = True) -> tqdm:
    """A bar on stderr when it is a terminal and `enabled` (e.g. rank 0 only); a silent stand-in otherwise."""
    show = enabled and sys.stderr.isatty()
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not show, file=sys.stderr)


def close_all_bars() -> None:
    """Finish every open bar's line, so that what is printed next starts on a line of its own."""
    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


@contextlib.contextmanager
def hf_bars(enabled: bool) -> Iterator[None]:
    """Turn transformers' own bars (weight loading, shard writing) on or off for a block, then restore them."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    (hf_logging.enable_progress_bar if enabled else hf_logging.disable_progress_bar)()
    try:
        yield
    finally:
        (hf_logging.enable_progress_bar if was_enabled else hf_logging.disable_progress_bar)()
