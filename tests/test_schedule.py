"""Learning-rate schedules against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from repro.errors import ConfigError
from repro.train.schedule import lr_at, make_scheduler


def test_warmup_is_linear_from_zero():
    assert lr_at(0, 100, 1e-3, 10, "cosine") == 0.0
    assert lr_at(5, 100, 1e-3, 10, "cosine") == pytest.approx(5e-4)
    assert lr_at(10, 100, 1e-3, 10, "cosine") == pytest.approx(1e-3)  # end of warmup: the full rate
    assert lr_at(3, 100, 2.0, 4, "constant") == pytest.approx(1.5)


def test_cosine_points():
    # warmup 10, total 110: decay over 100 steps
    assert lr_at(60, 110, 1.0, 10, "cosine") == pytest.approx(0.5)  # midpoint, floor 0: (1 + 0) / 2
    assert lr_at(60, 110, 1.0, 10, "cosine", min_lr_ratio=0.1) == pytest.approx(0.55)  # (1 + 0.1) / 2
    assert lr_at(35, 110, 1.0, 10, "cosine") == pytest.approx((1 + math.cos(math.pi / 4)) / 2)  # a quarter
    assert lr_at(110, 110, 3.0, 10, "cosine", 0.2) == pytest.approx(0.6)  # the floor at total_steps
    assert lr_at(500, 110, 3.0, 10, "cosine", 0.2) == pytest.approx(0.6)  # and after it
    assert lr_at(0, 8, 1.0, 0, "cosine") == pytest.approx(1.0)  # no warmup starts at the full rate


def test_constant_after_warmup():
    assert [lr_at(s, 10, 0.5, 2, "constant") for s in (0, 1, 2, 9, 20)] == [0.0, 0.25, 0.5, 0.5, 0.5]


def test_bad_settings_raise():
    with pytest.raises(ConfigError, match="linear"):
        lr_at(0, 10, 1.0, 0, "linear")
    with pytest.raises(ConfigError, match="warmup_steps"):
        lr_at(0, 10, 1.0, 11, "cosine")
    with pytest.raises(ConfigError, match="min_lr_ratio"):
        lr_at(0, 10, 1.0, 1, "cosine", min_lr_ratio=1.5)


def test_scheduler_follows_lr_at_through_optimizer_steps():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.4)
    sched = make_scheduler(opt, total_steps=12, warmup_steps=2, kind="cosine", min_lr_ratio=0.25)
    seen = []
    for _ in range(14):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([lr_at(s, 12, 0.4, 2, "cosine", 0.25) for s in range(14)])
    assert seen[:3] == pytest.approx([0.0, 0.2, 0.4])
    assert seen[7] == pytest.approx(0.4 * (0.25 + 0.75 * 0.5))  # midpoint of the decay from step 2 to 12
    assert seen[12] == pytest.approx(0.1)
