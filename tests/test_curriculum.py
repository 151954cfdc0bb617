"""The length curriculum: phase pools at their bounds, the difficulty table, retrospective pools, exact resume."""

from __future__ import annotations

import json

import pytest

from repro.l1.curriculum import CurriculumSampler, DifficultyTable, Phase, phase_pool

PHASES = [Phase(100, steps=2), Phase(200, steps=3, overrides={"max_new_tokens": 64}), Phase(400, steps=2)]
# index:    0    1    2    3    4    5    6   7
LENGTHS = [1, 100, 101, 200, 201, 400, 401, 50]
IDS = [f"e{i}" for i in range(len(LENGTHS))]


def test_phase_pool_bounds():
    assert phase_pool(LENGTHS, PHASES, 0) == [0, 1, 7]  # (0, 100]: 100 stays in phase 0
    assert phase_pool(LENGTHS, PHASES, 1) == [2, 3]  # (100, 200]: 101 moves on, 200 stays
    assert phase_pool(LENGTHS, PHASES, 2) == [4, 5]  # (200, 400]; 401 fits no phase
    with pytest.raises(IndexError):
        phase_pool(LENGTHS, PHASES, 3)


def test_phase_at_consecutive_step_ranges():
    sampler = CurriculumSampler(IDS, LENGTHS, PHASES)
    assert [sampler.phase_at(s) for s in range(9)] == [0, 0, 1, 1, 1, 2, 2, 2, 2]  # past the end: last phase
    assert sampler.total_steps == 7
    with pytest.raises(ValueError):
        sampler.phase_at(-1)


def test_difficulty_table_math():
    table = DifficultyTable()  # eps 0.1
    table.update("a", [1.0, 0.0, 0.0])
    assert table.mean("a") == pytest.approx(1 / 3)
    assert table.difficulty("a") == pytest.approx(1 / (1 / 3 + 0.1))  # 2.307692
    assert table.difficulty("a") == pytest.approx(2.307692, abs=1e-6)
    table.update("a", [1.0])
    assert (table.count("a"), table.mean("a")) == (4, 0.5)  # (1 + 0 + 0 + 1) / 4
    table.update("b", [0.0, 0.0])
    assert table.difficulty("b") == pytest.approx(10.0)  # 1 / (0 + 0.1)
    custom = DifficultyTable(eps=0.05)
    custom.update("a", [1.0, 0.0, 0.0])
    assert custom.difficulty("a") == pytest.approx(1 / (1 / 3 + 0.05))  # 2.608696
    with pytest.raises(KeyError):
        table.difficulty("never-seen")
    assert table.mean("never-seen") is None


def test_hardest_ranks_by_difficulty_ties_in_id_order_unscored_last():
    table = DifficultyTable()
    table.update("a", [1.0, 0.0])  # 0.5
    table.update("b", [0.0])  # 0.0, the hardest
    table.update("c", [0.0, 1.0, 1.0, 0.0])  # 0.5, ties with a
    table.update("e", [1.0])  # 1.0, the easiest
    ids = ["a", "b", "c", "d", "e"]
    assert table.hardest(ids, 3) == ["b", "a", "c"]
    assert table.hardest(["c", "a", "b"], 2) == ["b", "c"]  # the tie follows the order given
    assert table.hardest(ids, 10) == ["b", "a", "c", "e", "d"]
    assert table.hardest(ids, 0) == []


def test_difficulty_table_state_round_trips_through_json_with_int_ids():
    table = DifficultyTable(eps=0.2)
    table.update(3, [1.0, 0.0, 0.0])
    table.update(7, [0.25])
    restored = DifficultyTable()
    restored.load_state_dict(json.loads(json.dumps(table.state_dict())))
    assert restored.eps == 0.2
    assert (restored.count(3), restored.mean(3), restored.mean(7)) == (3, table.mean(3), 0.25)
    assert restored.hardest([3, 7], 2) == [7, 3]


def test_retrospective_pool_adds_the_hardest_earlier_examples():
    sampler = CurriculumSampler(IDS, LENGTHS, PHASES, retrospective_count=2, seed=3)
    first = sampler.next_prompts(0, 3)
    assert sorted(first) == ["e0", "e1", "e7"]  # one epoch of phase 0, without replacement
    sampler.update("e0", [1.0, 1.0])  # mean 1.0
    sampler.update("e1", [0.0, 0.0, 1.0])  # mean 1/3, the hardest
    sampler.update("e7", [1.0, 0.0])  # mean 0.5
    sampler.next_prompts(2, 1)  # step 2 enters phase 1
    assert sampler.phase == 1
    assert sampler.pool == ["e2", "e3", "e1", "e7"]

    frac = CurriculumSampler(IDS, LENGTHS, PHASES, retrospective_fraction=0.5, seed=3)
    for i, r in {"e0": 0.0, "e1": 1.0, "e7": 1.0, "e2": 0.5, "e3": 1.0}.items():
        frac.update(i, [r])
    frac.next_prompts(5, 1)  # straight to phase 2: floor(0.5 * 5 earlier examples) = 2 join
    assert frac.pool == ["e4", "e5", "e0", "e2"]


def test_draws_cover_each_epoch_then_reshuffle():
    sampler = CurriculumSampler(IDS, LENGTHS, PHASES, seed=11)
    draws = sampler.next_prompts(0, 9)  # three epochs of the 3-example phase-0 pool
    for epoch in range(3):
        assert sorted(draws[3 * epoch : 3 * epoch + 3]) == ["e0", "e1", "e7"]
    assert sampler.epoch == 2
    again = CurriculumSampler(IDS, LENGTHS, PHASES, seed=11)
    assert [again.next_prompts(0, 1)[0] for _ in range(9)] == draws  # same seed, same order, any draw size


def _run(sampler: CurriculumSampler, steps: range, reward: dict[str, float]) -> list[list[str]]:
    out = []
    for step in steps:
        prompts = sampler.next_prompts(step, 3)
        for p in prompts:
            sampler.update(p, [reward[p], 0.0])
        out.append(prompts)
    return out


def test_resume_from_state_dict_continues_the_same_sequence():
    reward = {"e0": 1.0, "e1": 0.0, "e2": 1.0, "e3": 0.5, "e4": 0.0, "e5": 1.0, "e6": 0.0, "e7": 0.25}

    def make() -> CurriculumSampler:
        return CurriculumSampler(IDS, LENGTHS, PHASES, retrospective_count=2, seed=5)

    uninterrupted = make()
    whole = _run(uninterrupted, range(10), reward)

    first = make()
    head = _run(first, range(4), reward)
    state = json.loads(json.dumps(first.state_dict()))
    resumed = make()
    resumed.load_state_dict(state)
    tail = _run(resumed, range(4, 10), reward)
    assert state["phase"] == 1 and state["position"] not in (0, len(state["pool"]))  # saved mid-epoch
    assert head + tail == whole
    assert resumed.state_dict() == uninterrupted.state_dict()


def test_bad_curricula_fail_at_construction():
    with pytest.raises(ValueError, match="phase 1 has no example"):
        CurriculumSampler(["a", "b"], [10, 500], [Phase(100, 1), Phase(200, 1), Phase(600, 1)])
    with pytest.raises(ValueError, match="must exceed"):
        CurriculumSampler(["a"], [10], [Phase(100, 1), Phase(100, 1)])
    with pytest.raises(ValueError, match="not both"):
        CurriculumSampler(IDS, LENGTHS, PHASES, retrospective_count=1, retrospective_fraction=0.5)
