"""`repro cprs train` and `repro cprs compress` on the tiny model: training, batched windows, budget, CLI shape."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from repro.config import load_recipe
from repro.cprs.calibrate import THRESHOLD_GRID, best_threshold
from repro.cprs.compress import compress, load_compressor, score_windows, window_prefix
from repro.cprs.labels import IGNORE, TAG_WORDS, context_text, critical_spans
from repro.cprs.metrics import micro_prf
from repro.cprs.reproduce import choose_threshold
from repro.cprs.train import cprs_examples, cprs_task, label_words, run_cprs, select_cprs_records
from repro.data.loong_mini import generate
from repro.data.schema import read_records, write_records
from repro.modeling import load_tokenizer
from repro.train.dist import DistInfo

REPO = Path(__file__).resolve().parent.parent
RECIPE = REPO / "recipes" / "tiny" / "cprs.yaml"


@pytest.fixture(scope="module")
def cprs_data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cprs-data") / "train.jsonl"
    write_records(path, generate(6, seed=2, sets=(1,)))
    return path


def recipe_for(tmp_path: Path, model_dir: str, data: Path, *overrides: str):
    return load_recipe(
        RECIPE,
        [
            f"model.source={model_dir}",
            "model.device=cpu",
            f"cprs.data={data}",
            "cprs.limit=4",
            "cprs.max_tokens=512",
            "cprs.window_tokens=384",
            f"output_dir={tmp_path}",
            *overrides,
        ],
    )


@pytest.fixture(scope="module")
def trained(tiny_model_dir, cprs_data, tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("cprs-run")
    recipe = recipe_for(tmp, tiny_model_dir, cprs_data, "train.max_steps=2")
    result = run_cprs(recipe, tmp / "run", DistInfo())
    assert result.steps == 2
    return tmp, tmp / "run" / "final"


def test_examples_label_every_granularity_with_its_tag_word(tiny_model_dir, cprs_data, tmp_path):
    recipe = recipe_for(tmp_path, tiny_model_dir, cprs_data)
    records = select_cprs_records(recipe)
    examples = cprs_examples(records, recipe, load_tokenizer(recipe.model))
    words = label_words(recipe.cprs.granularities)
    assert words == ["outside", "key", "fact", "paragraph"]
    assert len(examples) == 4 * 3
    for example in examples:
        targets = [t for t in example["word_targets"] if t != IGNORE]
        # a context token is "outside" (0) or the example's own tag word, never another granularity's
        assert set(targets) <= {0, words.index(example["tag_word"])}
        assert example["tag_word"] in TAG_WORDS.values()
    # paragraphs hold sentences, which hold keywords: tagged tokens can only grow with the granularity (a record
    # whose evidence lies past the window has none at the finer ones)
    counts = []
    for record_no in range(4):
        key, sentence, paragraph = (
            sum(t != 0 and t != IGNORE for t in e["word_targets"]) for e in examples[3 * record_no : 3 * record_no + 3]
        )
        assert key <= sentence <= paragraph
        counts.append(key)
    assert any(counts)


def test_one_granularity_per_record_gives_each_record_one_example_of_its_seeded_granularity(
    tiny_model_dir, cprs_data, tmp_path
):
    both = recipe_for(tmp_path, tiny_model_dir, cprs_data)
    one = recipe_for(tmp_path, tiny_model_dir, cprs_data, "cprs.one_granularity_per_record=true")
    tokenizer = load_tokenizer(one.model)
    every = cprs_examples(select_cprs_records(both), both, tokenizer)
    single = cprs_examples(select_cprs_records(one), one, tokenizer)
    assert len(single) == 4  # one per record, not 4 x 3
    for record_no, example in enumerate(single):
        # the same example as the all-granularities run's for that record and granularity
        twin = next(e for e in every[3 * record_no : 3 * record_no + 3] if e["tag_word"] == example["tag_word"])
        assert example["input_ids"] == twin["input_ids"] and example["tags"] == twin["tags"]
    assert single == cprs_examples(select_cprs_records(one), one, tokenizer)  # seeded


def test_label_masking_is_the_same_for_the_same_step_and_never_drops_a_critical_position(
    tiny_model_dir, cprs_data, tmp_path
):
    recipe = recipe_for(tmp_path, tiny_model_dir, cprs_data)
    examples = cprs_examples(select_cprs_records(recipe), recipe, load_tokenizer(recipe.model))
    task = cprs_task(examples, recipe, pad_id=0)
    a, b, c = task.collate([0, 1], 3, 7), task.collate([0, 1], 3, 7), task.collate([0, 1], 4, 7)
    assert torch.equal(a["words"], b["words"]) and not torch.equal(a["words"], c["words"])
    for batch in (a, c):
        inside = batch["tags"] > 0  # B, I, E: critical positions keep their targets
        critical = torch.zeros_like(inside)
        for row, i in enumerate((0, 1)):
            mask = torch.tensor(examples[i]["critical_mask"], dtype=torch.bool)
            critical[row, : len(mask)] = mask
        assert torch.equal(inside, critical)
        kept_outside = int((batch["words"] == 0).sum())
        all_outside = sum(sum(1 for t in examples[i]["word_targets"] if t == 0) for i in (0, 1))
        assert kept_outside == all_outside - round(0.5 * all_outside)  # half the non-critical positions leave


def test_batched_windows_tag_like_one_window_at_a_time(trained, tiny_model_dir, cprs_data):
    tmp, final = trained
    recipe = recipe_for(tmp, tiny_model_dir, cprs_data, f"cprs.compressor={final}")
    critic, tokenizer = load_compressor(recipe)
    text = "Zürich – 東京. " + " ".join(f"The value of item {i} is {i * 7}." for i in range(60))
    prefix = window_prefix(tokenizer, recipe.cprs, "fact", "What is the value of item 3?")
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    windows = [(s, min(s + 100, len(ids))) for s in range(0, len(ids), 100)]
    assert len(windows) >= 3
    one = score_windows(critic, prefix, ids, windows, 1, 2)
    many = score_windows(critic, prefix, ids, windows, 4, 2)
    torch.testing.assert_close(torch.tensor(one[0]), torch.tensor(many[0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.tensor(one[1]), torch.tensor(many[1]), atol=1e-5, rtol=0)
    assert [max(range(4), key=r.__getitem__) for r in one[0]] == [max(range(4), key=r.__getitem__) for r in many[0]]


def read_as_held(path: Path) -> str:
    """The file's characters as it holds them: CRLF stays CRLF (read_text() would turn it into LF)."""
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.read()


CRLF_TEXT = "Zürich – 東京 ist groß.\r\n" + "\r\n".join(f"Fact {i}: the rate is {i}% in Köln." for i in range(80))


def test_compression_keeps_exact_source_text_and_meets_a_budget_and_a_threshold(
    trained, tiny_model_dir, cprs_data, tmp_path
):
    tmp, final = trained
    source = tmp_path / "crlf.txt"
    source.write_bytes(CRLF_TEXT.encode("utf-8"))
    text = read_as_held(source)
    assert text.count("\r\n") == 80 and len(text) == len(CRLF_TEXT)
    recipe = recipe_for(tmp, tiny_model_dir, cprs_data, f"cprs.compressor={final}")
    critic, tokenizer = load_compressor(recipe)
    query = "What is the rate?"
    prefix = window_prefix(tokenizer, recipe.cprs, "fact", query)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = encoded["input_ids"], [tuple(o) for o in encoded["offset_mapping"]]
    windows = [(s, min(s + 384 - len(prefix), len(ids))) for s in range(0, len(ids), 384 - len(prefix))]
    _, keep = score_windows(critic, prefix, ids, windows, 4, 2)
    median = sorted(keep)[len(keep) // 2]  # about half the tokens reach it: spans there must be
    for override, check in (
        # gaps unfilled: a filled gap under 20 tokens would join every other token into one span
        (f"cprs.threshold={median!r} cprs.fill_gaps=0", lambda r: 0 < r.kept_tokens < r.input_tokens),
        (f"cprs.threshold={median!r} cprs.fill_gaps=0 cprs.budget_tokens=40", lambda r: 0 < r.kept_tokens <= 40),
        ("cprs.threshold=0.0", lambda r: r.kept_tokens == r.input_tokens),  # every token reaches probability 0
    ):
        recipe = recipe_for(tmp, tiny_model_dir, cprs_data, f"cprs.compressor={final}", *override.split())
        result = compress(critic, tokenizer, text, recipe.cprs, query)
        assert check(result), override
        assert result.spans, override
        assert result.text == result.separator.join(text[s:e] for s, e in result.spans)
        assert all(a[1] < b[0] for a, b in zip(result.spans, result.spans[1:], strict=False))
        # every span starts where a token starts and ends where a token ends, in the file's own characters
        starts, ends = {a for a, b in offsets if b > a}, {b for a, b in offsets if b > a}
        assert all(s in starts and e in ends for s, e in result.spans), override
        assert result.windows == len(windows)
    assert result.spans == [(0, len(text))] and result.text == text  # CRLF kept, not turned into LF
    nothing = recipe_for(tmp, tiny_model_dir, cprs_data, f"cprs.compressor={final}", "cprs.threshold=1.0")
    none = compress(critic, tokenizer, text, nothing.cprs, query)  # no softmax probability reaches 1 here
    assert (none.kept_tokens, none.spans, none.text) == (0, [], "")
    empty = compress(critic, tokenizer, "", recipe.cprs)
    assert (empty.text, empty.spans, empty.input_tokens) == ("", [], 0)


class MarkingCritic(torch.nn.Module):
    """A stand-in critic: the context tokens at `marked` get the row O 0.4, B 0.3, I 0.2, E 0.1 (argmax O, but
    B+I+E = 0.6 beats it), every other token O 0.9; the keep probability is 0.9 at marked tokens, else 0.1."""

    label_words = ["outside", "key", "fact", "paragraph"]
    word_ids = [0, 1, 2, 3]
    scheme = "BIOE"

    def __init__(self, prefix_len: int, marked: set[int]):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.prefix_len, self.marked = prefix_len, marked

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        at = torch.zeros(ids.shape, dtype=torch.bool)
        for i in self.marked:
            at[:, self.prefix_len + i] = True
        inside = torch.tensor([0.4, 0.3, 0.2, 0.1]).log()
        outside = torch.tensor([0.9, 0.04, 0.03, 0.03]).log()
        return at.float().unsqueeze(-1), torch.where(at.unsqueeze(-1), inside, outside)

    def label_word_logits(self, hidden: torch.Tensor, word_ids: list[int]) -> torch.Tensor:
        # softmax over (0, x) gives the tag word sigmoid(x): 0.9 at x = ln 9, 0.1 at -ln 9
        return torch.cat([torch.zeros_like(hidden), math.log(9) * (2 * hidden - 1)], dim=-1)


HAND_CRLF = "Line one says hello.\r\nZürich – 東京 hält 42 Äpfel.\r\nMore filler text here.\r\nA naïve café opened.\r\n"


def test_compress_returns_offsets_into_crlf_unicode_text_as_the_file_holds_it(tmp_path):
    """One window over a CRLF file; the stand-in critic marks the tokens of "Zürich – 東京", of "naïve café" and the
    lone token "2". Characters: "Line one says hello." is 0-20 and CRLF 20-22, so "Zürich – 東京" is 22-33;
    " hält 42 Äpfel." 33-48, CRLF 48-50, "More filler text here." 50-72, CRLF 72-74, "A" 74, and the token " n"
    carries its space: " naïve café" is 75-86. With LF line ends each would sit 1-3 characters earlier."""
    from repro.cprs.sections import CprsSection
    from repro.tiny import build_tokenizer

    path = tmp_path / "crlf.txt"
    path.write_bytes(HAND_CRLF.encode())
    text = read_as_held(path)
    tokenizer = build_tokenizer()
    cfg = CprsSection(window_tokens=4096, fill_gaps=0, min_span_tokens=2)
    prefix = window_prefix(tokenizer, cfg, "fact", "Where?")
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]

    def overlapping(start: int, end: int) -> set[int]:
        return {i for i, (a, b) in enumerate(offsets) if a < end and start < b}

    marked = overlapping(22, 33) | overlapping(76, 86) | overlapping(40, 41)  # "2" is one token: dropped
    assert overlapping(40, 41) == {max(overlapping(40, 41))} and len(overlapping(22, 33)) == 17
    critic = MarkingCritic(len(prefix), marked)
    result = compress(critic, tokenizer, text, cfg, "Where?")
    assert result.spans == [(22, 33), (75, 86)]
    assert [text[s:e] for s, e in result.spans] == ["Zürich – 東京", " naïve café"]
    assert result.text == "Zürich – 東京\n...\n naïve café"
    assert result.kept_tokens == len(overlapping(22, 33)) + len(overlapping(76, 86)) and result.windows == 1
    # a keep-probability threshold marks the same tokens (0.9 against 0.1)
    kept = compress(critic, tokenizer, text, CprsSection(window_tokens=4096, fill_gaps=0, threshold=0.5), "Where?")
    assert kept.spans == result.spans


def test_compress_command_prints_one_json_object_and_refuses_binary_input(trained, tiny_model_dir, cprs_data):
    tmp, final = trained
    context = tmp / "context.txt"
    context.write_bytes(("Ünïcode first.\r\n" + "Some filler words here.\r\n" * 30).encode())
    binary = tmp / "blob.bin"
    binary.write_bytes(b"\x00\x01\x02abc")
    cmd = [sys.executable, "-m", "repro", "cprs", "compress", str(RECIPE), f"model.source={tiny_model_dir}"]
    cmd += ["model.device=cpu", f"cprs.compressor={final}", "cprs.window_tokens=384", "--json"]
    keep_all = ["cprs.threshold=0.0"]  # every token reaches probability 0: one span, the whole file
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    res = subprocess.run(
        [*cmd, *keep_all, "--input", str(context)], capture_output=True, text=True, env=env, cwd=REPO
    )
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(out) == {"text", "spans", "separator", "input_tokens", "kept_tokens", "ratio", "windows", "seconds"}
    source = read_as_held(context)
    assert len(source) == len("Ünïcode first.\r\n") + 30 * len("Some filler words here.\r\n") == 766
    assert out["spans"] == [[0, 766]] and out["text"] == source  # CRLF as the file holds it
    assert out["text"] == out["separator"].join(source[s:e] for s, e in out["spans"])
    res = subprocess.run([*cmd, "--input", "-"], input="", capture_output=True, text=True, env=env, cwd=REPO)
    assert res.returncode == 0 and json.loads(res.stdout.strip().splitlines()[-1])["input_tokens"] == 0
    res = subprocess.run([*cmd, "--input", str(binary)], capture_output=True, text=True, env=env, cwd=REPO)
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0 and "binary" in res.stderr


def test_the_threshold_stage_matches_compress_and_reuses_its_choice(trained, tiny_model_dir, cprs_data, tmp_path):
    tmp, final = trained
    recipe = recipe_for(tmp, tiny_model_dir, cprs_data, f"cprs.compressor={final}")
    records = read_records(cprs_data).records[4:6]  # past the 4 the compressor trained on
    path = tmp_path / "threshold.json"
    chosen = choose_threshold(recipe, records, path)
    saved = json.loads(path.read_text())
    assert saved["records"] == 2 and [row["threshold"] for row in saved["grid"]] == list(THRESHOLD_GRID)
    assert chosen == saved["threshold"] == best_threshold(saved["grid"])["threshold"]
    # the chosen row is what `compress` keeps at that threshold, scored against the gold sentences
    at_choice = recipe_for(tmp, tiny_model_dir, cprs_data, f"cprs.compressor={final}", f"cprs.threshold={chosen!r}")
    critic, tokenizer = load_compressor(at_choice)
    kept = [compress(critic, tokenizer, context_text(r)[0], at_choice.cprs, r.question).spans for r in records]
    pairs = [(spans, critical_spans(r, "sentence")) for spans, r in zip(kept, records, strict=True)]
    assert saved["f1"] == pytest.approx(micro_prf(pairs)[2])
    saved["threshold"] = 0.33
    path.write_text(json.dumps(saved))
    assert choose_threshold(recipe, records, path) == 0.33  # the stage's file is reused, nothing scored again
