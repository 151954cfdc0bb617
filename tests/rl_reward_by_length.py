"""Test helper: the `repro` command with RL's reward replaced by one the tiny random model can earn.

Run as `python tests/rl_reward_by_length.py rl RECIPE ...` or under torchrun; the reward is a function of
the response text alone (its length mod 3), so one process and several give the same rewards.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's repro, whatever is installed
from repro.cli import main  # noqa: E402
from repro.l1 import rollout  # noqa: E402
from repro.l1.rewards import RewardResult  # noqa: E402


def reward_by_text_length(predictions, records, cfg, judge=None):
    return [RewardResult(rule=len(p) % 3 / 2, judge=None, total=len(p) % 3 / 2) for p in predictions]


if __name__ == "__main__":
    rollout.hybrid_rewards = reward_by_text_length
    main()
