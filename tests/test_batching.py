"""Token-budget micro-batches, padding, packing and the per-rank share."""

from __future__ import annotations

import random

import pytest
import torch

from repro.errors import DataError
from repro.train.batching import pack_batch, pad_batch, shard_for_rank, token_budget_batches


def cost(batch, lengths, padded):
    sizes = [lengths[i] for i in batch]
    return len(sizes) * max(sizes) if padded else sum(sizes)


def test_hand_example_padded():
    # sorted by length: #3 (2), #1 (3), #0 (5), #2 (8)
    # [#3, #1] costs 2 * 3 = 6; adding #0 would cost 3 * 5 = 15 > 10; [#0, #2] would cost 2 * 8 = 16 > 10
    assert token_budget_batches([5, 3, 8, 2], max_tokens=10) == [[3, 1], [0], [2]]


def test_hand_example_packed_and_max_batch():
    # packed: 2 + 3 + 5 = 10 fits; adding 8 does not
    assert token_budget_batches([5, 3, 8, 2], max_tokens=10, padded=False) == [[3, 1, 0], [2]]
    assert token_budget_batches([5, 3, 8, 2], max_tokens=10, padded=False, max_batch=2) == [[3, 1], [0], [2]]


def test_without_grouping_keeps_the_given_order():
    # in order: [5, 3] costs 2 * 5 = 10; [8] alone; [2]
    assert token_budget_batches([5, 3, 8, 2], max_tokens=10, group_by_length=False) == [[0, 1], [2], [3]]


@pytest.mark.parametrize("padded", [True, False])
@pytest.mark.parametrize("group_by_length", [True, False])
def test_budget_never_exceeded_and_every_sample_used_once(padded, group_by_length):
    rng = random.Random(1234)
    for trial in range(50):
        budget = rng.randint(1, 400)
        lengths = [rng.randint(0, budget) for _ in range(rng.randint(1, 60))]
        max_batch = rng.choice([None, 1, 3, 8])
        batches = token_budget_batches(lengths, budget, max_batch, trial, group_by_length, padded)
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
        for b in batches:
            assert b, "no empty batches"
            assert cost(b, lengths, padded) <= budget
            assert max_batch is None or len(b) <= max_batch


def test_outlier_raises_naming_index_length_and_budget():
    with pytest.raises(DataError) as info:
        token_budget_batches([10, 4097, 30], max_tokens=4096)
    message = str(info.value)
    assert "sample 1" in message and "4097" in message and "4096" in message
    assert "\n" not in message


def test_deterministic_for_a_seed_and_shuffled_by_it():
    lengths = [random.Random(7).randint(1, 100) for _ in range(200)]
    first = token_budget_batches(lengths, 300, shuffle_seed=3)
    assert token_budget_batches(lengths, 300, shuffle_seed=3) == first
    other = token_budget_batches(lengths, 300, shuffle_seed=4)
    assert other != first
    assert sorted(map(sorted, other)) == sorted(map(sorted, first)), "the seed reorders batches, not their content"
    unshuffled = token_budget_batches(lengths, 300)
    assert [max(lengths[i] for i in b) for b in unshuffled] == sorted(max(lengths[i] for i in b) for b in unshuffled)


def test_pad_batch_right_and_left():
    out = pad_batch([[5, 6, 7], [8]], pad_id=0, labels=[[-100, 6, 7], [8]])
    assert out["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert out["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert out["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert all(t.dtype == torch.long for t in out.values())
    left = pad_batch([[5, 6, 7], [8]], pad_id=9, side="left")
    assert left["input_ids"].tolist() == [[5, 6, 7], [9, 9, 8]]
    assert left["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]
    assert left["labels"].tolist() == [[5, 6, 7], [-100, -100, 8]]
    with pytest.raises(ValueError):
        pad_batch([[1, 2]], pad_id=0, labels=[[1]])


def test_pack_batch():
    out = pack_batch([[5, 6, 7], [8, 9]], labels=[[-100, 6, 7], [8, 9]])
    assert set(out) == {"input_ids", "position_ids", "labels"}
    assert out["input_ids"].tolist() == [[5, 6, 7, 8, 9]]
    assert out["position_ids"].tolist() == [[0, 1, 2, 0, 1]]
    # the second sample's first label (8) would be the target of the first sample's last token: masked
    assert out["labels"].tolist() == [[-100, 6, 7, -100, 9]]
    assert pack_batch([[1, 2], [3]])["labels"].tolist() == [[-100, 2, -100]]


def test_shard_for_rank_drops_the_remainder_evenly():
    batches = [[i] for i in range(7)]
    shares = [shard_for_rank(batches, r, 3) for r in range(3)]
    assert shares == [[[0], [3]], [[1], [4]], [[2], [5]]]  # 7 // 3 = 2 each; [6] dropped
    assert shard_for_rank(batches, 0, 1) == batches
    with pytest.raises(DataError):
        shard_for_rank(batches[:2], 0, 3)
    with pytest.raises(ValueError):
        shard_for_rank(batches, 3, 3)
