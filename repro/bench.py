"""`python -m repro.bench [prefix|rl|solopo|cprs] ...`: the engine's and every paper's bench cases (`make bench`)."""

from __future__ import annotations

import importlib
import sys

from repro.benchkit import COMMANDS, run_case
from repro.papers import load_papers


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    importlib.import_module("repro.benchkit.engine")
    for paper in load_papers():
        if paper.bench:
            importlib.import_module(paper.bench)
    if argv[:1] == ["--worker"]:
        return run_case(argv[1:])
    if argv[:1] and argv[0] in COMMANDS:
        return COMMANDS[argv[0]](argv[1:])
    return COMMANDS[""](argv)


if __name__ == "__main__":
    sys.exit(main())
