"""Run folders: `runs/<recipe>-<time>/`, or the folder a user names; `--resume` finds the newest one."""

from __future__ import annotations

import time
from pathlib import Path

from repro.errors import ReproError


def run_folder(output_dir: str, name: str, out: str | None, resume: bool) -> Path:
    """The folder a command writes into: --out, a new timestamped one, or (with --resume) the newest."""
    if out is not None:
        path = Path(out)
        if path.exists() and not path.is_dir():
            raise ReproError(f"--out {path}: is a file, not a folder; name a new or existing run folder")
        if path.is_dir() and any(path.iterdir()) and not resume:
            raise ReproError(
                f"{path}: run folder already holds a run; add --resume to continue it, or pick another --out"
            )
        return path
    if resume:
        candidates = sorted(Path(output_dir).glob(f"{name}-*"), key=lambda p: p.name)
        candidates = [p for p in candidates if p.is_dir()]
        if not candidates:
            raise ReproError(f"--resume: no earlier run of '{name}' under {output_dir}/; name one with --out")
        return candidates[-1]
    root = Path(output_dir)
    if root.exists() and not root.is_dir():
        raise ReproError(f"output_dir {root}: is a file, not a folder; set output_dir=FOLDER or pass --out")
    return root / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
