"""QwenLong-L1's length curriculum: phased prompt pools with difficulty-aware retrospective sampling."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

ExampleId = str | int  # str or int only: both survive a JSON round trip unchanged


@dataclass
class Phase:
    """One curriculum phase: prompts up to `max_input_tokens`, for `steps` optimizer steps."""

    max_input_tokens: int
    steps: int
    overrides: dict[str, Any] = field(default_factory=dict)  # per-phase recipe overrides, carried as is


def _check_phases(phases: Sequence[Phase]) -> None:
    if not phases:
        raise ValueError("the curriculum needs at least one phase")
    previous = 0
    for k, phase in enumerate(phases):
        if phase.max_input_tokens <= previous:
            raise ValueError(
                f"phase {k}: max_input_tokens={phase.max_input_tokens} must exceed the previous bound {previous}"
            )
        if phase.steps < 1:
            raise ValueError(f"phase {k}: steps must be >= 1, got {phase.steps}")
        previous = phase.max_input_tokens


def phase_pool(lengths: Sequence[int], phases: Sequence[Phase], k: int) -> list[int]:
    """Indices of the examples whose prompt length lies in (L_{k-1}, L_k], with L_{-1} = 0.

    Longer examples than the last phase's bound belong to no phase.
    """
    if not 0 <= k < len(phases):
        raise IndexError(f"phase {k} out of range for {len(phases)} phases")
    low = phases[k - 1].max_input_tokens if k > 0 else 0
    high = phases[k].max_input_tokens
    return [i for i, n in enumerate(lengths) if low < n <= high]


class DifficultyTable:
    """Running mean reward per example; difficulty = 1 / (mean + eps).

    Rewards are expected in [0, 1] (QwenLong-L1's hybrid reward is 0 or 1). eps = 0.1 bounds the difficulty
    of a never-solved example at 10; the ranking does not depend on eps, since difficulty falls as the mean rises.
    """

    def __init__(self, eps: float = 0.1) -> None:
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.eps = eps
        self._count: dict[ExampleId, int] = {}
        self._total: dict[ExampleId, float] = {}

    def __contains__(self, example_id: object) -> bool:
        return example_id in self._count

    def __len__(self) -> int:
        return len(self._count)

    def update(self, example_id: ExampleId, rewards: Sequence[float]) -> None:
        values = [float(r) for r in rewards]
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"example {example_id!r}: non-finite reward in {values}")
        if not values:
            return
        self._count[example_id] = self._count.get(example_id, 0) + len(values)
        self._total[example_id] = self._total.get(example_id, 0.0) + sum(values)

    def count(self, example_id: ExampleId) -> int:
        return self._count.get(example_id, 0)

    def mean(self, example_id: ExampleId) -> float | None:
        """The mean reward so far, or None for an example never scored."""
        n = self._count.get(example_id)
        return self._total[example_id] / n if n else None

    def difficulty(self, example_id: ExampleId) -> float:
        """1 / (mean reward + eps); KeyError for an example never scored."""
        mean = self.mean(example_id)
        if mean is None:
            raise KeyError(example_id)
        return 1.0 / (mean + self.eps)

    def hardest(self, ids: Sequence[ExampleId], count: int) -> list[ExampleId]:
        """The `count` hardest of `ids`, hardest first; ties keep the order of `ids`.

        Examples never scored rank after every scored one (nothing is known of them), in the order of `ids`.
        """
        if count <= 0:
            return []
        scored = [i for i in ids if i in self._count]
        unscored = [i for i in ids if i not in self._count]
        # sorted() is stable: equal means keep their order in `ids`
        ranked = sorted(scored, key=lambda i: self._total[i] / self._count[i])
        return (ranked + unscored)[:count]

    def state_dict(self) -> dict[str, Any]:
        return {"eps": self.eps, "entries": [[i, self._count[i], self._total[i]] for i in self._count]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.eps = float(state["eps"])
        self._count = {i: int(n) for i, n, _ in state["entries"]}
        self._total = {i: float(t) for i, _, t in state["entries"]}


class CurriculumSampler:
    """Prompts for each optimizer step: phase k (steps are consecutive per phase) draws from the examples of
    length in (L_{k-1}, L_k] plus, chosen once when entering the phase, the hardest examples of earlier phases.

    Within a phase, draws go without replacement through an epoch of the pool, shuffled from (seed, phase,
    epoch); an exhausted pool reshuffles into the next epoch. `retrospective_count` or `retrospective_fraction`
    (of the earlier phases' examples, rounded down) sets how many earlier examples join; the difficulty table
    (`table`, fed through `update`) ranks them. A sampler restored from `state_dict` continues exactly where
    the saved one would have.
    """

    def __init__(
        self,
        ids: Sequence[ExampleId],
        lengths: Sequence[int],
        phases: Sequence[Phase],
        retrospective_count: int = 0,
        retrospective_fraction: float = 0.0,
        seed: int = 0,
        difficulty_eps: float = 0.1,
    ) -> None:
        if len(ids) != len(lengths):
            raise ValueError(f"{len(ids)} ids for {len(lengths)} lengths")
        if len(set(ids)) != len(ids):
            raise ValueError("example ids must be unique")
        if retrospective_count < 0 or not 0.0 <= retrospective_fraction <= 1.0:
            raise ValueError("retrospective_count must be >= 0 and retrospective_fraction in [0, 1]")
        if retrospective_count and retrospective_fraction:
            raise ValueError("set retrospective_count or retrospective_fraction, not both")
        _check_phases(phases)
        self.ids = list(ids)
        self.lengths = [int(n) for n in lengths]
        self.phases = list(phases)
        self.retrospective_count = retrospective_count
        self.retrospective_fraction = retrospective_fraction
        self.seed = seed
        self.table = DifficultyTable(difficulty_eps)
        self._phase_ids = [[self.ids[i] for i in phase_pool(self.lengths, self.phases, k)] for k in range(len(phases))]
        for k, members in enumerate(self._phase_ids):
            if not members:
                low = phases[k - 1].max_input_tokens if k else 0
                raise ValueError(f"phase {k} has no example of length in ({low}, {phases[k].max_input_tokens}]")
        self._ends = list(itertools.accumulate(p.steps for p in self.phases))
        self.phase: int | None = None
        self.pool: list[ExampleId] = []
        self.epoch = 0
        self.position = 0
        self._order: list[ExampleId] = []

    @property
    def total_steps(self) -> int:
        return self._ends[-1]

    def phase_at(self, step: int) -> int:
        """The phase of optimizer step `step` (0-based); steps past the last phase stay in the last phase."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        for k, end in enumerate(self._ends):
            if step < end:
                return k
        return len(self.phases) - 1

    def update(self, example_id: ExampleId, rewards: Sequence[float]) -> None:
        """Record an example's rewards in the difficulty table."""
        self.table.update(example_id, rewards)

    def retrospective(self, k: int) -> list[ExampleId]:
        """The earlier phases' examples that join phase k's pool, hardest first, ranked by the table now."""
        earlier = [i for members in self._phase_ids[:k] for i in members]
        if self.retrospective_fraction:
            count = math.floor(self.retrospective_fraction * len(earlier))
        else:
            count = self.retrospective_count
        return self.table.hardest(earlier, count)

    def next_prompts(self, step: int, n: int) -> list[ExampleId]:
        """The next `n` example ids for optimizer step `step` (entering its phase first if needed)."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        k = self.phase_at(step)
        if k != self.phase:
            self._enter(k)
        out: list[ExampleId] = []
        while len(out) < n:
            if self.position >= len(self._order):
                self.epoch += 1
                self.position = 0
                self._order = self._shuffled()
            take = min(n - len(out), len(self._order) - self.position)
            out.extend(self._order[self.position : self.position + take])
            self.position += take
        return out

    def _enter(self, k: int) -> None:
        self.phase = k
        self.pool = self._phase_ids[k] + self.retrospective(k)
        self.epoch = 0
        self.position = 0
        self._order = self._shuffled()

    def _shuffled(self) -> list[ExampleId]:
        order = list(self.pool)
        # a str seed hashes through SHA-512: the same order in every process and Python run
        random.Random(f"curriculum/{self.seed}/{self.phase}/{self.epoch}").shuffle(order)
        return order

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable: the phase, its pool, the epoch and position in it, and the difficulty table."""
        return {
            "phase": self.phase,
            "pool": list(self.pool),
            "epoch": self.epoch,
            "position": self.position,
            "seed": self.seed,
            "table": self.table.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["seed"] != self.seed:
            raise ValueError(f"the saved sampler used seed {state['seed']}, this one {self.seed}")
        phase = state["phase"]
        if phase is not None and not 0 <= phase < len(self.phases):
            raise ValueError(f"the saved sampler was in phase {phase}; this curriculum has {len(self.phases)}")
        pool = list(state["pool"])
        unknown = set(pool) - set(self.ids)
        if unknown:
            raise ValueError(f"the saved pool holds {len(unknown)} example id(s) this sampler does not know")
        self.table.load_state_dict(state["table"])
        self.phase = phase
        self.pool = pool
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self._order = self._shuffled() if phase is not None else []
