"""The data every reproduction starts from: the default model and Loong-mini, offline or at workstation lengths."""

from __future__ import annotations

import logging
from pathlib import Path

from repro.config import Recipe

log = logging.getLogger("repro.reproduce")

TRAIN_DATA = "data/loong-mini/train.jsonl"
TEST_DATA = "data/loong-mini/test.jsonl"
WS_TRAIN_DATA = "data/loong-mini-ws/train.jsonl"
WS_TEST_DATA = "data/loong-mini-ws/test.jsonl"


def model_and_data(model_source: str) -> None:
    """The embedded default model (when `model_source` is it) and Loong-mini train (2,000) and test (200)."""
    from repro.data.loong_mini import generate
    from repro.data.schema import write_records
    from repro.init_model import init_model

    init_model(model_source)
    for path, kwargs in ((TRAIN_DATA, {"n": 2000}), (TEST_DATA, {"n": 200, "split": "test", "seed": 1})):
        if not Path(path).is_file():
            write_records(path, generate(**kwargs))
            log.info("Loong-mini -> %s", path)


def workstation_loong_mini(recipe: Recipe) -> None:
    """Loong-mini train and test at `recipe`'s set ranges, lengths counted with its model's tokenizer."""
    from repro.data.loong_mini import generate
    from repro.data.schema import write_records
    from repro.modeling import load_tokenizer

    if Path(WS_TRAIN_DATA).is_file() and Path(WS_TEST_DATA).is_file():
        return
    tokenizer = load_tokenizer(recipe.model)

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    ranges = {k: (v[0], v[1]) for k, v in recipe.loong_mini.set_ranges.items()}
    for path, kwargs in ((WS_TRAIN_DATA, {"n": 2000}), (WS_TEST_DATA, {"n": 200, "split": "test", "seed": 1})):
        if not Path(path).is_file():
            write_records(path, generate(**kwargs, set_ranges=ranges, count_tokens=count))
            log.info("Loong-mini (workstation lengths) -> %s", path)
