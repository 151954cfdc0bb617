"""The run record every run folder keeps (environment.json): code version, libraries, device, seed, input hashes."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from repro.fsio import atomic_write_json

REPO = Path(__file__).resolve().parent.parent
RECORDED_LIBRARIES = ("torch", "transformers", "peft", "bitsandbytes", "accelerate", "datasets", "flash_attn")


def git_state(root: Path = REPO) -> tuple[str, bool]:
    """(commit, whether tracked files differ from it) of the checkout the kit runs from; ("unknown", False)
    outside a git checkout or without git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        status_cmd = ["git", "status", "--porcelain", "--untracked-files=no"]
        status = subprocess.run(status_cmd, cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown", False
    if commit.returncode != 0:
        return "unknown", False
    return commit.stdout.strip(), bool(status.stdout.strip())


def sha256_file(path: str | Path) -> str | None:
    """The file's sha256 in hex; None when it is not a file."""
    path = Path(path)
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})"
    import os

    return f"cpu: {os.cpu_count()} cores"


def environment(seed: int | Sequence[int] | None = None, data_files: Sequence[str] = (), recipe_text: str = "") -> dict:
    """What produced a run: git commit and dirtiness, python and library versions (torch with its CUDA build),
    the device, the seed(s), and the sha256 of each input data file and of the resolved recipe."""
    import importlib.metadata
    import platform

    import torch

    commit, dirty = git_state()
    libraries = {}
    for name in RECORDED_LIBRARIES:
        try:
            libraries[name] = importlib.metadata.version(name.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            libraries[name] = None
    record: dict[str, Any] = {
        "git_commit": commit,
        "git_dirty": dirty,
        "python": platform.python_version(),
        **libraries,
        "torch_cuda": torch.version.cuda,
        "device": device_name(),
        "seed": seed,
        "data_sha256": {str(p): sha256_file(p) for p in data_files},
    }
    if recipe_text:
        record["recipe_sha256"] = hashlib.sha256(recipe_text.encode("utf-8")).hexdigest()
    return record


def write_environment(run_dir: Path, **kwargs: Any) -> dict:
    """environment(**kwargs) into run_dir/environment.json (atomically); returns it."""
    record = environment(**kwargs)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "environment.json", record)
    return record
