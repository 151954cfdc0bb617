"""SoLoPO's recipe section `solopo`: pairs on the short context, then PO with SoLo-RA or plain long-context PO."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from repro.sections import GenerationSection, RewardSection, ranged, ranged_list


@dataclass
class SoloPoSection:
    """SoLoPO: preference pairs sampled on the short context, PO on short + SoLo-RA, or plain long-context PO.

    Short context = the documents the answer needs (Record.short_docs); long = all of them.
    """

    data: str = "data/loong-mini-solopo/train.jsonl"
    sets: list[int] = ranged_list(list, 1)
    tasks: list[str] = field(default_factory=list)
    limit: int | None = ranged(None, 1)
    prompt_style: Literal["l1", "loong"] = "l1"
    # the long prompt's budget (chat template included): distractors are dropped whole to fit, never a needed
    # document; an example whose needed documents alone exceed it is skipped and counted
    max_input_tokens: int = ranged(4096, 1)
    # pairs (`repro solopo pairs`)
    context: Literal["short", "long"] = "short"  # where the K responses are sampled
    samples: int = ranged(8, 2)  # K responses per example (paper: 32)
    generation: GenerationSection = field(
        default_factory=lambda: GenerationSection(max_new_tokens=160, do_sample=True, temperature=0.85, top_p=1.0)
    )
    # the format gate on: a response that never says "the answer is" is wrong, whatever it names
    reward: RewardSection = field(default_factory=lambda: RewardSection(numeric_rel_tol=0.0, require_format=True))
    # chosen = the first correct response (reward >= this), rejected = the first wrong one (reward 0); a partly
    # right list/dict answer (0 < reward < this) is neither, as it holds both items to raise and items to lower
    correct_reward: float = ranged(1.0, 0.0, 1.0, open_low=True)
    # training (`repro solopo train`)
    pairs: str = ""  # the pairs.jsonl to train on
    algorithm: Literal["dpo", "simpo", "orpo"] = "dpo"
    mode: Literal["solopo", "long", "expand_long", "short"] = "solopo"
    # each algorithm reads its own scale (SoLo-RA's reward r uses the same beta as the PO term)
    dpo_beta: float = ranged(0.1, 0.0, open_low=True)  # DPO's common default
    # SimPO: github.com/princeton-nlp/SimPO README, hyper-parameter table, row Llama3-Instruct (beta 2.5, gamma/beta
    # 0.55); the margin is gamma = beta * ratio, as the released trainer's gamma_beta_ratio
    simpo_beta: float = ranged(2.5, 0.0, open_low=True)
    simpo_gamma_beta_ratio: float = ranged(0.55, 0.0)
    # ORPO's lambda: github.com/xfactlab/orpo scripts/run_mistral_orpo_beta.sh (--alpha 0.1), TRL ORPOConfig's 0.1
    orpo_lambda: float = ranged(0.1, 0.0)
    alpha: float | None = ranged(None, 0.0)  # SoLo-RA's weight; None: the paper's 3 (DPO) or 1 (SimPO, ORPO)
    shaping: Literal["abs", "square"] = "abs"  # the paper leaves SoLo-RA's shaping function unconfirmed
    align_rejected: bool = False  # SoLo-RA on the rejected response too (the paper aligns the chosen only)
