"""Convert a paper's data set (loong, docqa-rl, longbench, musique, hotpotqa) into the kit's record JSONL."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import repro  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from repro.data.converters import FORMATS, convert
from repro.data.schema import write_records
from repro.errors import ReproError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("format", choices=FORMATS, help="layout of SRC")
    parser.add_argument("src", help="a .jsonl/.json/.parquet file, a folder of them, or a hub dataset id org/name")
    parser.add_argument("--docs", default=None, help="Loong docs folder (default: doc/ or docs/ beside SRC)")
    parser.add_argument("--split", default=None, help="split of a hub dataset (default: train)")
    parser.add_argument("--out", required=True, help="records JSONL to write")
    args = parser.parse_args(argv)
    try:
        records = convert(args.format, args.src, docs_dir=args.docs, split=args.split)
        n = write_records(args.out, records)
    except ReproError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {n} records to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
