"""`repro reproduce cprs` helpers: the workstation training file and the compression ratio by set."""

from __future__ import annotations

import dataclasses

import pytest

from repro.cprs.reproduce import CprsProfile, fixed_budget, ratios_by_set, reduced_contexts, training_file
from repro.data.schema import Doc, Record, read_records, write_records
from repro.errors import ReproError
from repro.pipeline.profiles import load_profile, profile_table


def cprs_profile(name: str) -> CprsProfile:
    return load_profile("cprs", name, CprsProfile)


def record(rid: str, length_set: int | None = None) -> Record:
    return Record(rid, "test", "qa", [Doc("d", "text")], "q?", "a", length_set=length_set)


def test_several_training_files_are_interleaved_record_by_record(tmp_path):
    hotpot, musique, missing = tmp_path / "hotpot.jsonl", tmp_path / "musique.jsonl", tmp_path / "none.jsonl"
    write_records(hotpot, [record("h1"), record("h2"), record("h3")])
    write_records(musique, [record("m1")])
    profile = dataclasses.replace(cprs_profile("workstation"), train_data=[str(hotpot), str(missing), str(musique)])
    joined = training_file(profile, tmp_path / "out")
    assert [r.id for r in read_records(joined).records] == ["h1", "m1", "h2", "h3"]


def test_one_training_file_is_used_as_it_is(tmp_path):
    assert training_file(cprs_profile("cpu"), tmp_path) == "data/loong-mini/train.jsonl"
    assert not (tmp_path / "train.jsonl").exists()


def test_no_training_file_present_names_them_all(tmp_path):
    profile = dataclasses.replace(cprs_profile("workstation"), train_data=["a.jsonl", "b.jsonl"])
    with pytest.raises(ReproError, match="a.jsonl and b.jsonl are missing: convert HotpotQA or MuSiQue"):
        training_file(profile, tmp_path)


def test_ratio_by_set_is_total_input_over_total_kept():
    records = [record("a", 1), record("b", 1), record("c", 2)]
    compressed = {
        "a": {"sentence": {"input_tokens": 100, "kept_tokens": 10}},
        "b": {"sentence": {"input_tokens": 300, "kept_tokens": 20}},
        "c": {"sentence": {"input_tokens": 50, "kept_tokens": 0}},
    }
    ratios = ratios_by_set(records, compressed)
    assert ratios[1] == {"input_tokens": 200, "kept_tokens": 15, "ratio": 400 / 30}
    assert ratios[2]["ratio"] == 50  # nothing kept: divided by 1, not by 0


def test_the_cpu_note_gives_the_compressor_training_that_ran(tmp_path):
    from repro.cprs.reproduce import cpu_note
    from repro.pipeline.stages import load_stage_recipe

    batch = ["train.micro_batch_size=4", "train.grad_accum=2"]
    run = tmp_path / "compressor"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.0}\n{"step": 3, "loss": 0.5}\n')
    recipe = load_stage_recipe("recipes/tiny/cprs.yaml", {}, "cprs", [*batch, "cprs.sets=[1]"])
    recipe.cprs.one_granularity_per_record = True
    assert "trained for 3 steps of 8 Loong-mini records (set 1, one granularity each)" in cpu_note(recipe, run)
    recipe = load_stage_recipe("recipes/tiny/cprs.yaml", {}, "cprs", [*batch, "cprs.sets=[1, 2]"])
    recipe.cprs.one_granularity_per_record = False
    assert "trained for 3 steps of 8 Loong-mini records (sets 1, 2, every granularity)" in cpu_note(recipe, run)


def test_every_profile_has_a_fixed_bm25_budget_per_set_at_an_eighth_of_its_longest_context():
    for name in profile_table("cprs"):
        profile = cprs_profile(name)
        assert set(profile.sets) <= set(profile.bm25_budgets), name
    # tiny sets end at 500, 1,000, 2,000 and 4,000 tokens: / 8 (the paper's 16K of 128K), rounded down
    assert cprs_profile("cpu").bm25_budgets == {1: 62, 2: 125, 3: 250, 4: 500}
    # workstation sets 1-2 end at 50K and 100K tokens
    assert cprs_profile("workstation").bm25_budgets == {1: 6250, 2: 12500}
    with pytest.raises(ReproError, match="set 9 has no fixed BM25 budget"):
        fixed_budget(cprs_profile("cpu"), record("x", 9))


def test_reduced_contexts_give_each_method_its_own_budget_and_the_oracle_the_gold_sentences():
    from repro.cprs.baselines import truncate_to_budget
    from repro.cprs.labels import context_text
    from repro.data.schema import Evidence
    from repro.tiny import build_tokenizer

    tokenizer = build_tokenizer()
    item = Record(
        "r1",
        "hand",
        "qa",
        [Doc("Alpha", "It rose. Sales hit 5.2 m!\nEnd"), Doc("Beta", "Zürich – 東京 is far. Tea.")],
        "What did sales hit?",
        "5.2 m",
        length_set=1,
        evidence=[Evidence(0, 19, 22), Evidence(1, 0, 6)],
    )
    context, _ = context_text(item)
    kept = {"text": "Sales hit 5.2 m!", "kept_tokens": 7}
    made = reduced_contexts(item, kept, 12, tokenizer)
    assert set(made) == {"cprs", "bm25", "bm25-fixed", "truncate", "oracle"}
    assert made["cprs"] == "Sales hit 5.2 m!"
    # the gold sentences around the evidence, joined as CPRS joins its spans
    assert made["oracle"] == "Sales hit 5.2 m!\n...\nZürich – 東京 is far."
    # the context is far under one 600-token chunk: BM25 keeps its beginning, cut to the budget, as truncation
    (cut7,) = truncate_to_budget(context, 7, tokenizer)
    (cut12,) = truncate_to_budget(context, 12, tokenizer)
    assert made["bm25"] == made["truncate"] == context[: cut7[1]]
    assert made["bm25-fixed"] == context[: cut12[1]] and len(made["bm25-fixed"]) > len(made["bm25"])
    # a fixed budget over the whole context keeps it all, whatever CPRS kept
    assert reduced_contexts(item, kept, 10_000, tokenizer)["bm25-fixed"] == context
