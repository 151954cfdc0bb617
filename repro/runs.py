"""Run folders: `runs/<recipe>-<time>/`, or the folder a user names; `--resume` finds the newest one."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import yaml

from repro.errors import ReproError

# The keys that fix a training run's plan (which samples, in which batches, for how many steps): a resumed
# run must keep them, or its second half would follow another plan than its first. A section name covers
# every key in it.
PLAN_KEYS = (
    "seed",
    "train.micro_batch_tokens",
    "train.micro_batch_size",
    "train.grad_accum",
    "train.epochs",
    "train.max_steps",
    "train.pack",
)
# how a generation server is reached (not what it serves): a resumed run may find it at another address
SERVER_TRANSPORT = ("base_url", "api_key_env", "concurrency", "timeout_s", "max_retries")


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


def _transport(key: str) -> bool:
    parts = key.split(".")
    return len(parts) >= 2 and parts[-2] == "server" and parts[-1] in SERVER_TRANSPORT


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(_flatten(value, f"{prefix}{key}."))
    return flat


def check_resume_plan(run_dir: Path, recipe: Any, stage_keys: tuple[str, ...]) -> None:
    """Refuse to resume `run_dir` with a recipe whose plan differs from the one it started with.

    `stage_keys` adds the stage's own (e.g. "sft": its data selection). Nothing to compare: no recipe.yaml yet.
    """
    saved_file = run_dir / "recipe.yaml"
    if not saved_file.is_file():
        return
    try:
        saved = _flatten(yaml.safe_load(saved_file.read_text(encoding="utf-8")) or {})
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ReproError(f"{saved_file}: cannot read the run's recipe to resume it ({exc})") from None
    now = _flatten(dataclasses.asdict(recipe))
    keys = PLAN_KEYS + stage_keys
    changed = sorted(
        k
        for k in set(saved) | set(now)
        if any(k == p or k.startswith(p + ".") for p in keys) and saved.get(k) != now.get(k) and not _transport(k)
    )
    if changed:
        shown = ", ".join(f"{k} ({saved.get(k)!r} -> {now.get(k)!r})" for k in changed[:4])
        more = f" and {len(changed) - 4} more" if len(changed) > 4 else ""
        raise ReproError(
            f"--resume {run_dir}: the recipe changes the run's plan: {shown}{more}; "
            "resume with the run's own recipe.yaml, or start a new run"
        )
