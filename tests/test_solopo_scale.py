"""Each algorithm on its own scale: the recipes' published defaults, old keys refused, SimPO's loss at its scale."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from repro.config import load_recipe
from repro.errors import ConfigError
from repro.solopo.sample import Pair
from repro.solopo.sections import SoloPoSection
from repro.solopo.train import PAPER_ALPHA, forwards, loss_scale, preference_task

REPO = Path(__file__).resolve().parent.parent
RECIPES = [REPO / "recipes" / "tiny" / "solopo.yaml", REPO / "recipes" / "qwen2.5-1.5b" / "solopo.yaml"]


@pytest.mark.parametrize("recipe", [None, *RECIPES], ids=["section", "tiny", "qwen2.5-1.5b"])
def test_defaults_are_the_published_ones(recipe):
    """DPO beta 0.1; SimPO beta 2.5 and gamma/beta 0.55 (SimPO README, row Llama3-Instruct); ORPO lambda 0.1
    (ORPO's released Mistral-ORPO-beta script, TRL's default); SoLo-RA's alpha the paper's 3 / 1 / 1."""
    cfg = SoloPoSection() if recipe is None else load_recipe(recipe).solopo
    assert (cfg.dpo_beta, cfg.simpo_beta, cfg.simpo_gamma_beta_ratio, cfg.orpo_lambda) == (0.1, 2.5, 0.55, 0.1)
    assert cfg.alpha is None and PAPER_ALPHA == {"dpo": 3.0, "simpo": 1.0, "orpo": 1.0}
    assert cfg.reward.require_format is True and cfg.correct_reward == 1.0


def test_each_algorithm_reads_its_own_keys():
    cfg = SoloPoSection(dpo_beta=0.2, simpo_beta=4.0, simpo_gamma_beta_ratio=0.25, orpo_lambda=0.3)
    assert loss_scale(replace(cfg, algorithm="dpo")) == {"beta": 0.2}
    assert loss_scale(replace(cfg, algorithm="simpo")) == {"beta": 4.0, "gamma": 1.0}  # gamma = 4 * 0.25
    assert loss_scale(replace(cfg, algorithm="orpo"))["lam"] == 0.3


@pytest.mark.parametrize(
    ("override", "names"),
    [
        ("solopo.beta=2.0", "solopo.dpo_beta.*solopo.simpo_beta"),
        ("solopo.gamma=0.5", "solopo.simpo_gamma_beta_ratio"),
        ("solopo.lam=0.1", "solopo.orpo_lambda"),
    ],
)
def test_an_old_key_fails_loudly_naming_the_new_ones(override, names):
    with pytest.raises(ConfigError, match=f"key '{override.split('=')[0]}' is gone: .*{names}"):
        load_recipe(RECIPES[0], [override])


def test_an_old_key_in_a_recipe_file_fails_too(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text(f"extends: {RECIPES[0]}\nsolopo:\n  algorithm: simpo\n  beta: 2.0\n")
    with pytest.raises(ConfigError, match="'solopo.beta' is gone"):
        load_recipe(path)


class HandLogprobs:
    """Summed log-probs fixed by hand, in place of the model's forwards."""

    def __init__(self, values: dict[tuple[str, str], float]) -> None:
        self.plan = forwards("solopo")
        self.values = values

    def __call__(self, model, pair):
        return {k: torch.tensor(v, dtype=torch.float64) for k, v in self.values.items()}


def test_solo_simpo_loss_at_the_recipe_scale_by_hand():
    """The tiny recipe's SimPO in solopo mode on one pair: chosen 2 tokens, rejected 3 tokens.

    log pi, summed: chosen | short -1.0, rejected | short -4.5, chosen | long -1.8.
    SimPO reward r = beta / |y| * log pi with beta 2.5:
      r_w = 2.5 * -1.0 / 2 = -1.25, r_l = 2.5 * -4.5 / 3 = -3.75, margin r_w - r_l = 2.5
      gamma = 2.5 * 0.55 = 1.375, PO = -logsigmoid(2.5 - 1.375) = log(1 + e^-1.125) = 0.28115...
    SoLo-RA, alpha 1 (the paper's for SimPO): r_long = 2.5 * -1.8 / 2 = -2.25, |-1.25 - -2.25| = 1.0
    (At the old shared scale, beta 0.1 and gamma 0.5: PO = log(1 + e^0.4) = 0.913 and RA = 0.04.)"""
    recipe = load_recipe(RECIPES[0], ["solopo.algorithm=simpo", "solopo.mode=solopo"])
    pair = Pair(
        "p", torch.zeros(4, dtype=torch.long), torch.zeros(9, dtype=torch.long),
        torch.tensor([5, 6]), torch.tensor([7, 8, 9]), "short",
    )  # fmt: skip
    logprobs = HandLogprobs({("short", "chosen"): -1.0, ("short", "rejected"): -4.5, ("long", "chosen"): -1.8})
    task = preference_task(recipe, [pair], logprobs, ref=None)
    out = task.loss(None, task.collate([0], 0, 0))
    po, ra = math.log1p(math.exp(-1.125)), 1.0
    assert po == pytest.approx(0.281150, abs=1e-6)
    assert float(out.loss_sum) == pytest.approx(po + ra, rel=1e-6)
    assert out.metrics["po_loss"] == pytest.approx(po, rel=1e-6)
    assert out.metrics["ra_loss"] == pytest.approx(ra, rel=1e-6)
    assert out.metrics["margin"] == pytest.approx(2.5, rel=1e-6) and out.metrics["accuracy"] == 1.0
