"""The bench harness: each case in its own worker process (its peak memory its own), cases and commands by name."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent.parent
DEFAULT_MODEL = "artifacts/smollm2-135m-instruct"

# worker cases: name -> function of the worker's string arguments, returning the case's JSON row
CASES: dict[str, Callable[[list[str]], dict[str, Any]]] = {}
# sub-commands of `python -m repro.bench NAME ...`: name -> function of the remaining arguments, an exit code
COMMANDS: dict[str, Callable[[list[str]], int]] = {}


def register_case(name: str) -> Callable:
    """Decorator: the worker case `name`, run by run_worker([name, *args]) in its own process."""

    def add(fn: Callable[[list[str]], dict[str, Any]]) -> Callable[[list[str]], dict[str, Any]]:
        CASES[name] = fn
        return fn

    return add


def register_command(name: str) -> Callable:
    """Decorator: `python -m repro.bench NAME ...` runs this function with the arguments after NAME."""

    def add(fn: Callable[[list[str]], int]) -> Callable[[list[str]], int]:
        COMMANDS[name] = fn
        return fn

    return add


def model_folder(name: str, command: str) -> str | None:
    """`name` as given, or under the repository, when it holds a model (config.json); else None, said on stderr."""
    for candidate in (Path(name), REPO / name):
        if (candidate / "config.json").is_file():
            return str(candidate)
    print(f"{command}: model folder '{name}' missing; run `repro init-model recipes/tiny/base.yaml`", file=sys.stderr)
    return None


def first_to_kill() -> None:
    """In a worker: ask the kernel's out-of-memory killer to take this case before the run that launched it."""
    with contextlib.suppress(OSError):  # not allowed: the kernel's default choice stands
        Path("/proc/self/oom_score_adj").write_text("1000")


def worker_failure(returncode: int, stderr: str) -> str:
    """Why a worker process failed, in a few words for a report."""
    if returncode == -9:
        return "killed by the system, most likely out of memory"
    if "out of memory" in stderr.lower():
        return "out of memory"
    last = next((line.strip() for line in reversed(stderr.splitlines()) if line.strip()), "")
    return f"exit code {returncode}" + (f": {last[:200]}" if last else "")


def run_worker(args: list[str], *, may_fail: bool = False) -> dict[str, Any]:
    """One case (`args` = [case name, *its arguments]) in its own process; its last stdout line is its JSON.
    With `may_fail`, a failed case comes back as {"failed": why} (a case that does not fit in memory is a
    result); without, it ends the bench."""
    res = subprocess.run(
        [sys.executable, "-m", "repro.bench", "--worker", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        preexec_fn=first_to_kill if sys.platform == "linux" else None,
    )
    if res.returncode != 0:
        if may_fail:
            return {"failed": worker_failure(res.returncode, res.stderr)}
        raise SystemExit(f"bench worker {' '.join(args)} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def run_case(args: list[str]) -> int:
    """In a worker process: run the case and print its JSON row."""
    name, *rest = args
    if name not in CASES:
        print(f"bench: unknown case '{name}' (cases: {', '.join(sorted(CASES))})", file=sys.stderr)
        return 2
    print(json.dumps(CASES[name](rest)))
    return 0
