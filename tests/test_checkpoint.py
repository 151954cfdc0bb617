"""Checkpoints: exact restore, pruning, atomic layout, and resumed training equal to uninterrupted training."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from repro.errors import ReproError
from repro.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from repro.train.schedule import make_scheduler


class Net(torch.nn.Module):
    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.frozen = torch.nn.Linear(4, 4)
        self.head = torch.nn.Linear(4, 2)
        self.frozen.requires_grad_(False)


def make(seed: int, optimizer: str = "adamw"):
    model = Net(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=0.1) if optimizer == "adamw" else torch.optim.SGD(params, lr=0.1, momentum=0.9)
    return model, opt, make_scheduler(opt, total_steps=10, warmup_steps=2)


def train_step(model, opt, sched) -> None:
    # draws its data from the global RNGs, so a resumed run matches only if they were restored too
    x = torch.randn(3, 4) + random.random() + float(np.random.rand())
    loss = model.head(torch.nn.functional.dropout(model.frozen(x), 0.5)).pow(2).sum()
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()


def test_save_then_load_restores_exactly(tmp_path):
    model, opt, sched = make(0)
    for _ in range(3):
        train_step(model, opt, sched)
    path = save_checkpoint(tmp_path, 3, model, opt, sched, {"epoch": 1, "cursor": 17, "metrics": {"loss": [1.5]}})
    assert path == tmp_path / "checkpoints" / "step-000003"
    assert {p.name for p in path.iterdir()} == {
        "adapter.safetensors", "optimizer.pt", "scheduler.pt", "state.json", "rng.pt", "COMPLETE"
    }  # fmt: skip
    next_values = (random.random(), float(np.random.rand()), torch.rand(3))

    fresh, fresh_opt, fresh_sched = make(1)
    random.seed(99), np.random.seed(99), torch.manual_seed(99)
    state = load_checkpoint(path, fresh, fresh_opt, fresh_sched)

    assert state == {"epoch": 1, "cursor": 17, "metrics": {"loss": [1.5]}, "step": 3}
    assert torch.equal(fresh.head.weight, model.head.weight) and torch.equal(fresh.head.bias, model.head.bias)
    assert not torch.equal(fresh.frozen.weight, model.frozen.weight), "frozen weights are not saved"
    for key in ("exp_avg", "exp_avg_sq", "step"):
        for p, q in zip(fresh.head.parameters(), model.head.parameters(), strict=True):
            assert torch.equal(fresh_opt.state[p][key], opt.state[q][key])
    assert fresh_sched.last_epoch == sched.last_epoch == 3
    assert fresh_opt.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    assert random.random() == next_values[0]
    assert float(np.random.rand()) == next_values[1]
    assert torch.equal(torch.rand(3), next_values[2])


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_resumed_training_equals_uninterrupted(tmp_path, optimizer):
    torch.manual_seed(5), random.seed(5), np.random.seed(5)
    model, opt, sched = make(0, optimizer)
    for _ in range(4):
        train_step(model, opt, sched)

    torch.manual_seed(5), random.seed(5), np.random.seed(5)
    first, opt1, sched1 = make(0, optimizer)
    for _ in range(2):
        train_step(first, opt1, sched1)
    path = save_checkpoint(tmp_path, 2, first, opt1, sched1, {})
    torch.manual_seed(123), random.seed(123), np.random.seed(123)  # a new process starts elsewhere
    resumed, opt2, sched2 = make(0, optimizer)
    load_checkpoint(path, resumed, opt2, sched2)
    for _ in range(2):
        train_step(resumed, opt2, sched2)

    assert torch.equal(resumed.head.weight, model.head.weight)
    assert torch.equal(resumed.head.bias, model.head.bias)


def test_keep_last_prunes_older_and_stale_temp_folders(tmp_path):
    model, opt, sched = make(0)
    stale = tmp_path / "checkpoints" / "step-000001.tmp-99999"
    stale.mkdir(parents=True)
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, step, model, opt, sched, {}, keep_last=2)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-000003", "step-000004"]
    save_checkpoint(tmp_path, 5, model, opt, sched, {}, keep_last=None)
    assert len(list((tmp_path / "checkpoints").iterdir())) == 3


def test_latest_ignores_temp_and_incomplete_folders(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    model, opt, sched = make(0)
    good = save_checkpoint(tmp_path, 7, model, opt, sched, {})
    root = tmp_path / "checkpoints"
    (root / "step-000009.tmp-4242").mkdir()
    (root / "step-000009.tmp-4242" / "COMPLETE").write_text("9\n")
    (root / "step-000008").mkdir()  # no COMPLETE marker
    assert latest_checkpoint(tmp_path) == good
    with pytest.raises(ReproError, match="incomplete"):
        load_checkpoint(root / "step-000008", model)


def test_saving_the_same_step_again_replaces_it(tmp_path):
    model, opt, sched = make(0)
    save_checkpoint(tmp_path, 4, model, opt, sched, {"cursor": 1})
    path = save_checkpoint(tmp_path, 4, model, opt, sched, {"cursor": 2})
    assert json.loads((path / "state.json").read_text())["cursor"] == 2
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-000004"]


def test_names_must_match(tmp_path):
    model, opt, sched = make(0)
    path = save_checkpoint(tmp_path, 1, model, opt, sched, {})
    other = torch.nn.Sequential(torch.nn.Linear(4, 2))
    with pytest.raises(ReproError, match=r"parameter 'head\.(weight|bias)' \(2 in all\) is not in the model"):
        load_checkpoint(path, other)
    wider = Net(0)
    wider.frozen.requires_grad_(True)  # trainable now, but not in the checkpoint
    with pytest.raises(ReproError, match="frozen"):
        load_checkpoint(path, wider)
