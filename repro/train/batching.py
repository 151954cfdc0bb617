"""Token-budget micro-batches for long, uneven samples; padding, packing and the per-rank share."""

from __future__ import annotations

import random

import torch

from repro.errors import DataError
from repro.train.logprobs import IGNORE_INDEX


def token_budget_batches(
    lengths: list[int],
    max_tokens: int,
    max_batch: int | None = None,
    shuffle_seed: int | None = None,
    group_by_length: bool = True,
    padded: bool = True,
) -> list[list[int]]:
    """Sample indices grouped into micro-batches whose token cost never exceeds `max_tokens`.

    Cost is len(batch) * longest sample when `padded`, the sum of lengths when packed. With `group_by_length`
    the samples are sorted by length (ties by index) and filled greedily, so each batch holds similar lengths;
    otherwise they are filled in their given order (shuffled first when a seed is given). A seed then
    shuffles the order of the batches; the same arguments always give the same batches. A sample longer than
    `max_tokens` raises DataError: the caller truncates before batching.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    if max_batch is not None and max_batch < 1:
        raise ValueError(f"max_batch must be >= 1 or None, got {max_batch}")
    for i, n in enumerate(lengths):
        if n < 0:
            raise DataError(f"sample {i}: negative length {n}")
        if n > max_tokens:
            raise DataError(f"sample {i}: {n} tokens exceed the micro-batch budget of {max_tokens}; truncate it first")

    order = list(range(len(lengths)))
    if group_by_length:
        order.sort(key=lambda i: (lengths[i], i))
    elif shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(order)

    batches: list[list[int]] = []
    current: list[int] = []
    longest = total = 0
    for i in order:
        n = lengths[i]
        cost = (len(current) + 1) * max(longest, n) if padded else total + n
        full = max_batch is not None and len(current) >= max_batch
        if current and (cost > max_tokens or full):
            batches.append(current)
            current, longest, total = [], 0, 0
        current.append(i)
        longest, total = max(longest, n), total + n
    if current:
        batches.append(current)

    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(batches)
    return batches


def pad_batch(
    seqs: list[list[int]],
    pad_id: int,
    labels: list[list[int]] | None = None,
    side: str = "right",
) -> dict[str, torch.Tensor]:
    """input_ids, attention_mask and labels [B, L] (labels default to the ids; IGNORE_INDEX at every pad)."""
    if not seqs:
        raise ValueError("pad_batch needs at least one sequence")
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    labels = _labels_for(seqs, labels)
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    lab = torch.full((len(seqs), width), IGNORE_INDEX, dtype=torch.long)
    for row, (seq, seq_labels) in enumerate(zip(seqs, labels, strict=True)):
        span = slice(0, len(seq)) if side == "right" else slice(width - len(seq), width)
        ids[row, span] = torch.tensor(seq, dtype=torch.long)
        mask[row, span] = 1
        lab[row, span] = torch.tensor(seq_labels, dtype=torch.long)
    return {"input_ids": ids, "attention_mask": mask, "labels": lab}


def pack_batch(seqs: list[list[int]], labels: list[list[int]] | None = None) -> dict[str, torch.Tensor]:
    """All sequences in one row [1, sum of lengths], with position_ids restarting at 0 for each sample.

    Labels carry IGNORE_INDEX at each sample's first position, so no position predicts the next sample's
    first token. Pass no attention_mask with it: the model then finds the sample boundaries from the
    position_ids. This is the flash_attention_2 packing path (varlen kernels, no padding) and is meant for
    GPUs with flash-attn; transformers also builds a block-diagonal mask from position_ids for sdpa/eager
    (attention_mask None, use_cache False), which is correct but materialises a [T x T] mask.
    """
    if not seqs or any(len(s) == 0 for s in seqs):
        raise ValueError("pack_batch needs at least one sequence and no empty ones")
    labels = _labels_for(seqs, labels)
    ids: list[int] = []
    positions: list[int] = []
    lab: list[int] = []
    for seq, seq_labels in zip(seqs, labels, strict=True):
        ids.extend(seq)
        positions.extend(range(len(seq)))
        lab.append(IGNORE_INDEX)
        lab.extend(seq_labels[1:])
    return {"input_ids": _row(ids), "position_ids": _row(positions), "labels": _row(lab)}


def _labels_for(seqs: list[list[int]], labels: list[list[int]] | None) -> list[list[int]]:
    if labels is None:
        return seqs
    if len(labels) != len(seqs) or any(len(a) != len(b) for a, b in zip(seqs, labels, strict=True)):
        raise ValueError("labels must have one list per sequence, each as long as its sequence")
    return labels


def _row(values: list[int]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.long).unsqueeze(0)


def shard_for_rank(batches: list, rank: int, world_size: int) -> list:
    """This rank's micro-batches: every world_size-th one from `rank`, the remainder dropped.

    Every rank gets exactly len(batches) // world_size micro-batches, so all ranks run the same number of
    steps (a rank with one more would hang in its next all-reduce); the dropped tail is at most
    world_size - 1 micro-batches, and a per-epoch shuffle seed drops different ones each epoch.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in a world of size {world_size}")
    per_rank = len(batches) // world_size
    if per_rank == 0:
        raise DataError(
            f"{len(batches)} micro-batches cannot give each of {world_size} processes one; "
            "use more data, a smaller token budget or fewer processes"
        )
    return batches[rank : per_rank * world_size : world_size]
