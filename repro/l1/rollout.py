"""QwenLong-L1's RL rounds: curriculum prompts, prefill-once rollouts, hybrid rewards, dynamic sampling, the loss."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from repro.config import Recipe
from repro.data.prompts import apply_chat, build_prompt, token_counter
from repro.data.schema import Record
from repro.errors import ConfigError, ReproError
from repro.generation import Sample
from repro.generation_server import sample_groups, served_adapters, server_logprob_gap
from repro.l1.curriculum import CurriculumSampler, Phase
from repro.l1.rewards import hybrid_rewards, overlong_penalty
from repro.l1.rl import FillStats, Group, fill_batch, group_advantages, policy_loss, policy_loss_metrics
from repro.loong.verify import reward_config
from repro.modeling import reference_policy
from repro.train.dist import DistInfo, all_gather_object, unwrap
from repro.train.engine import LossOutput
from repro.train.loop import OnlineRound
from repro.train.prefix import grouped_logprobs, per_sample_logprobs, response_stats

log = logging.getLogger("repro.rl")


@dataclass
class Rollout:
    """One prompt's group: the example, its place in the batch's draw, its prompt ids, the G samples, their
    shaped rewards (for the advantages), what dynamic sampling filters on, and the sampling temperature."""

    example: str
    order: int
    prompt: torch.Tensor
    samples: list[Sample]
    rewards: torch.Tensor
    filter_values: torch.Tensor
    temperature: float


@dataclass
class Scored:
    """What every process learns of a group made anywhere: for the difficulty table and the round's metrics."""

    order: int
    example: str
    rule: list[float]
    rewards: list[float]
    lengths: list[int]


def tokenized_prompts(records: list[Record], recipe: Recipe, tokenizer: Any) -> dict[str, torch.Tensor]:
    """Each record's chat prompt as token ids, documents dropped whole past the last phase's length.

    A record left without any of its documents (one long document, as in DocQA-RL) is no question to
    learn from: it is left out and counted."""
    count = token_counter(tokenizer)
    budget = recipe.rl.phases[-1].max_input_tokens - count(apply_chat(tokenizer, ""))
    prompts, emptied = {}, 0
    for record in records:
        text, dropped = build_prompt(record, style=recipe.rl.prompt_style, budget_tokens=budget, count_tokens=count)
        if record.docs and dropped == len(record.docs):
            emptied += 1
            continue
        ids = tokenizer(apply_chat(tokenizer, text), add_special_tokens=False)["input_ids"]
        prompts[record.id] = torch.tensor(ids, dtype=torch.long)
    if emptied:
        log.info(
            "%d of %d records left out: none of their documents fits rl.phases' last max_input_tokens",
            emptied,
            len(records),
        )
    if not prompts:
        raise ConfigError(
            f"rl.phases: no record's documents fit in max_input_tokens={recipe.rl.phases[-1].max_input_tokens}; "
            "raise the last phase's max_input_tokens"
        )
    return prompts


class RlSource:
    """The online driver's step source for QwenLong-L1's phased RL (see docs/l1.md, "Phased RL").

    A round = `prompts_per_round` groups of `group_size` rollouts (more generation batches while dynamic
    sampling filters groups, up to `max_gen_batches`), split into `mini_batches` optimizer updates, repeated
    for `ppo_epochs`. Phases count rounds. Old log-probs come from one no-grad pass when a round makes more
    than one update (before that, the policy is the one that sampled), so from the second update on the ratio
    moves and the clip can bind. Log-probs, old, new and reference, use the logits divided by the temperature the
    group was sampled at. Dynamic sampling looks at accuracy (`filter_metric: acc`) or the rule/judge score
    (`score`), never at the overlong penalty; the advantages use the shaped reward.

    Several processes: all draw the same prompts from one curriculum; process r makes the groups of prompts
    r, r + world, ... Every process records every group's rewards in its difficulty table (gathered), and
    dynamic sampling decides on the groups of all of them, so the sampler state is the same everywhere.
    Each generation chunk is sampled under a seed of (recipe seed, round, batch, first prompt's place): with
    `rl.generation.batch_size=1` a group's samples do not depend on how many processes there are.

    With `rl.generation.backend: server` the rollouts come from the server (one request per prompt, n = G,
    each seeded by the prompt's place), sampled from the policy's LoRA adapter as ServedAdapters keeps it on the
    server (written into `run_dir`/served-adapters). Old log-probs and the loss are still the training model's;
    the server's log-probs only feed the `server_logprob_gap` metric.
    """

    def __init__(
        self,
        recipe: Recipe,
        tokenizer: Any,
        records: list[Record],
        judge: Any = None,
        dist: DistInfo | None = None,
        run_dir: Path | None = None,
    ) -> None:
        self.recipe, self.cfg, self.tokenizer, self.judge = recipe, recipe.rl, tokenizer, judge
        self.dist = dist or DistInfo()
        self.served = None
        if recipe.rl.generation.backend == "server":
            if run_dir is None:
                raise ValueError("RlSource with rl.generation.backend=server needs the run folder (for the adapters)")
            self.served = served_adapters(recipe.model, recipe.rl.generation, "rl", run_dir, self.dist.is_main)
        self.records = {r.id: r for r in records}
        self.prompts = tokenized_prompts(records, recipe, tokenizer)
        ids = list(self.prompts)
        phases = [Phase(p.max_input_tokens, p.steps) for p in self.cfg.phases]
        share = self.cfg.retrospective if self.cfg.retrospective < 1 else 0.0
        count = int(self.cfg.retrospective) if self.cfg.retrospective >= 1 else 0
        try:
            self.sampler = CurriculumSampler(
                ids, [len(self.prompts[i]) for i in ids], phases, count, share, seed=recipe.seed
            )
        except ValueError as exc:  # e.g. a phase that no prompt's length falls into
            raise ConfigError(f"rl.phases: {exc} (prompt lengths here: {_spread(self.prompts)})") from None
        self.rewards = reward_config(recipe.rl.reward)
        self.level = "token" if self.cfg.algorithm == "dapo" else "sequence"
        self.updates_per_round = self.cfg.mini_batches * self.cfg.ppo_epochs

    def total_steps(self) -> int:
        return self.sampler.total_steps * self.updates_per_round

    def state_dict(self) -> dict[str, Any]:
        return {"sampler": self.sampler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            self.sampler.load_state_dict(state["sampler"])

    # --- a round -------------------------------------------------------------------------------

    def next_round(self, policy: Any, step: int) -> OnlineRound:
        round_no = step // self.updates_per_round
        phase = self.sampler.phase_at(round_no)
        started = time.perf_counter()
        if self.served is not None:  # the policy after `step` updates, on the server before any of this round
            self.served.serving(policy, step)
        timing = {"generate": 0.0, "reward": 0.0}
        scored: list[Scored] = []

        def make_groups(batch_no: int) -> list[Group]:
            rollouts = self._rollouts(policy, round_no, batch_no, phase, timing, scored)
            return [Group(r.filter_values, r, order=r.order) for r in rollouts]

        if self.cfg.dynamic_sampling:
            want, tries = self.cfg.prompts_per_round, self.cfg.max_gen_batches
            kept, stats = fill_batch(make_groups, want, tries, gather=all_gather_object)
        else:
            kept = make_groups(0)
            for g in kept:
                g.rank = g.order
            n = len(scored)
            stats = FillStats(n, n, n, 1, False)
        groups = [g.data for g in kept]
        ranks = [g.rank for g in kept]
        if stats.gave_up:
            log.info(
                "round %d: %d of %d groups with a reward spread after %d generation batches; training on those",
                round_no, stats.used, self.cfg.prompts_per_round, stats.batches,
            )  # fmt: skip
        old_started = time.perf_counter()
        batches = [self._batch(g) for g in groups]
        if self.updates_per_round > 1:
            self._old_logprobs(policy, batches)
        old_s = time.perf_counter() - old_started
        all_rewards = torch.tensor([r for s in scored for r in s.rewards], dtype=torch.float32)
        correct = [float(r >= 1.0) for s in scored for r in s.rule]
        lengths = [n for s in scored for n in s.lengths]
        metrics = {
            "phase": float(phase),
            "reward_mean": float(all_rewards.mean()) if len(all_rewards) else 0.0,
            "acc_mean": sum(correct) / len(correct) if correct else 0.0,
            "reward_std": float(all_rewards.std()) if len(all_rewards) > 1 else 0.0,
            "groups_generated": float(stats.generated),
            "groups_used": float(stats.used),
            "filtered_share": 1.0 - stats.kept / stats.generated if stats.generated else 0.0,
            "gen_batches": float(stats.batches),
            "response_len": sum(lengths) / len(lengths) if lengths else 0.0,
            "seconds_generate": timing["generate"],
            "seconds_reward": timing["reward"],
            "seconds_old_logprobs": old_s,
            "seconds_round_prep": time.perf_counter() - started,
        }
        updates = split_into_updates(batches, ranks, self.cfg.mini_batches, self.cfg.ppo_epochs, all_gather_object)
        return OnlineRound(updates=updates, metrics=metrics)

    def _rollouts(
        self, policy: Any, round_no: int, batch_no: int, phase: int, timing: dict[str, float], scored: list[Scored]
    ) -> list[Rollout]:
        """This process's share of one generation batch, scored; every process's scores land in `scored`."""
        ids = self.sampler.next_prompts(round_no, self.cfg.prompts_per_round)
        mine = list(range(self.dist.rank, len(ids), self.dist.world_size))
        gen = self.cfg.generation
        temperature = self.cfg.phases[phase].temperature
        if temperature is not None:
            gen = type(gen)(**{**gen.__dict__, "temperature": temperature})
        t0 = time.perf_counter()
        groups: list[list[Sample]] = []
        if self.served is not None:  # every prompt at once (the server batches), each under its own seed
            seeds = [_sampling_seed(self.recipe.seed, round_no, batch_no, i) % 2**31 for i in mine]
            prompts = [self.prompts[ids[i]] for i in mine]
            try:
                groups = sample_groups(self.served.name, self.tokenizer, prompts, self.cfg.group_size, gen, seeds=seeds)
            except ReproError as exc:
                raise type(exc)(
                    f"{exc}; RL round {round_no + 1} stopped, the run keeps its last checkpoint: run again with "
                    f"--resume --out {self.served.folder.parent} to continue from it"
                ) from exc
        else:
            for start in range(0, len(mine), gen.batch_size):
                chunk = mine[start : start + gen.batch_size]
                seed = _sampling_seed(self.recipe.seed, round_no, batch_no, chunk[0])
                groups += sample_groups(
                    policy, self.tokenizer, [self.prompts[ids[i]] for i in chunk], self.cfg.group_size, gen, seed=seed
                )
        t1 = time.perf_counter()
        out, local = [], []
        for order, samples in zip(mine, groups, strict=True):
            example = ids[order]
            record = self.records[example]
            results = hybrid_rewards([s.text for s in samples], [record] * len(samples), self.rewards, self.judge)
            rewards = [
                r.total
                + overlong_penalty(
                    len(s.token_ids), gen.max_new_tokens, self.rewards.overlong_buffer, self.rewards.overlong_factor
                )
                for r, s in zip(results, samples, strict=True)
            ]
            lengths = [len(s.token_ids) for s in samples]
            scores = [r.total for r in results]
            # accuracy (or the score) before overlong shaping: a length penalty alone is no reason to keep a group
            kept_on = [float(x >= 1.0) for x in scores] if self.cfg.filter_metric == "acc" else scores
            local.append(Scored(order, example, scores, rewards, lengths))
            temperature = gen.temperature if gen.do_sample else 1.0
            out.append(
                Rollout(
                    example, order, self.prompts[example], samples, torch.tensor(rewards), torch.tensor(kept_on),
                    temperature,
                )
            )  # fmt: skip
        everyone = sorted((s for part in all_gather_object(local) for s in part), key=lambda s: s.order)
        for s in everyone:
            self.sampler.update(s.example, s.rule)
        scored.extend(everyone)
        timing["generate"] += t1 - t0
        timing["reward"] += time.perf_counter() - t1
        return out

    def _batch(self, rollout: Rollout) -> dict[str, Any]:
        advantages = group_advantages(rollout.rewards.unsqueeze(0), scale_std=self.cfg.scale_std)[0]
        responses = [torch.tensor(s.token_ids, dtype=torch.long) for s in rollout.samples]
        batch = {
            "prompt": rollout.prompt,
            "responses": responses,
            "advantages": advantages,
            "old_logp": None,
            "temperature": rollout.temperature,
            "num_tokens": len(rollout.prompt) + sum(len(r) for r in responses),
        }
        if any(s.logprobs is not None for s in rollout.samples):  # the server's, for the mismatch metric only
            batch["server_logp"] = [None if s.logprobs is None else torch.tensor(s.logprobs) for s in rollout.samples]
        return batch

    @torch.no_grad()
    def _old_logprobs(self, policy: Any, batches: list[dict[str, Any]]) -> None:
        for batch in batches:
            batch["old_logp"] = [lp.detach() for lp in self._logprobs(policy, batch)]

    def _logprobs(self, model: Any, batch: dict[str, Any]) -> list[torch.Tensor]:
        """The responses' log-probs at the temperature they were sampled with (as verl): old and reference."""
        forward = grouped_logprobs if self.recipe.train.shared_prefix else per_sample_logprobs
        prompt, responses = self._on_device(model, batch)
        return forward(model, prompt, responses, self.recipe.train.logprob_chunk, batch.get("temperature", 1.0))

    def _on_device(self, model: Any, batch: dict[str, Any]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        device = next(unwrap(model).parameters()).device
        return batch["prompt"].to(device), [r.to(device) for r in batch["responses"]]

    # --- the loss ------------------------------------------------------------------------------

    def loss(self, model: Any, batch: dict[str, Any]) -> LossOutput:
        if batch.get("idle"):
            return self._idle_loss(model)
        prompt, responses = self._on_device(model, batch)
        temperature = batch.get("temperature", 1.0)
        shared, chunk = self.recipe.train.shared_prefix, self.recipe.train.logprob_chunk
        logps, entropies = response_stats(model, prompt, responses, shared, chunk, temperature)
        logp, mask = _pad(logps)
        entropy = _pad(entropies)[0]
        old = _pad(batch["old_logp"])[0] if batch["old_logp"] is not None else logp.detach()
        ref = None
        if self.cfg.kl_coef > 0:
            with torch.no_grad(), reference_policy(model) as reference:
                ref = _pad(self._logprobs(reference, batch))[0]
        advantages = batch["advantages"].to(logp.device)
        args = (logp, old, advantages, mask, self.cfg.eps_low, self.cfg.eps_high, self.level)
        loss_sum, units = policy_loss(
            *args, ref_logp=ref, kl_coef=self.cfg.kl_coef, entropy=entropy, entropy_coef=self.cfg.entropy_coef
        )
        metrics = policy_loss_metrics(*args, ref_logp=ref, entropy=entropy)
        if batch.get("server_logp"):
            gap = server_logprob_gap(batch["server_logp"], old, mask)
            if gap is not None:
                metrics["server_logprob_gap"] = gap
        return LossOutput(loss_sum, units, metrics)

    def _idle_loss(self, model: Any) -> LossOutput:
        """A zero loss through the model, for a process with no group in this update (DDP needs its backward)."""
        device = next(unwrap(model).parameters()).device
        pad = self.tokenizer.pad_token_id or 0
        out = model(input_ids=torch.tensor([[pad]], device=device)).logits
        return LossOutput(out.float().sum() * 0.0, 0)


def split_into_updates(
    batches: list[dict[str, Any]],
    ranks: list[int],
    mini_batches: int,
    ppo_epochs: int,
    gather: Callable[[Any], list[Any]] = lambda x: [x],
) -> list[list[dict[str, Any]]]:
    """A round's groups as `mini_batches` optimizer updates per epoch, repeated for `ppo_epochs` epochs.

    The group of rank i (its place among the round's kept groups over all processes) goes to update
    i mod mini_batches, one micro-batch a group, so the updates are the same on one process or several, and
    differ in size by one group at most. Idle micro-batches pad each update to the busiest process's count
    there (at least one), so that every process runs the same number of backward passes (DDP syncs on each
    process's last one). `gather` is an all-gather of one object per process.
    """
    mine = [[b for b, r in zip(batches, ranks, strict=True) if r % mini_batches == u] for u in range(mini_batches)]
    counts = gather([len(chunk) for chunk in mine])
    widest = [max(1, *(c[u] for c in counts)) for u in range(mini_batches)]
    updates = [chunk + [{"idle": True}] * (widest[u] - len(chunk)) for u, chunk in enumerate(mine)]
    return [list(update) for _ in range(ppo_epochs) for update in updates]


def _sampling_seed(seed: int, round_no: int, batch_no: int, order: int) -> int:
    """A generation chunk's seed: fixed by where it falls in the run, not by the process that samples it."""
    return (seed * 1_000_003 + round_no * 10_007 + batch_no * 101 + order) % 2**63


def _spread(prompts: dict[str, torch.Tensor]) -> str:
    lengths = sorted(len(p) for p in prompts.values())
    return f"{lengths[0]}-{lengths[-1]} tokens, median {lengths[len(lengths) // 2]}"


def _pad(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """[N, T] from N 1-D tensors of different lengths, and the mask of real positions."""
    width = max((len(r) for r in rows), default=0)
    values = rows[0].new_zeros((len(rows), width)) if rows else torch.zeros(0, 0)
    mask = torch.zeros((len(rows), width), dtype=torch.bool, device=values.device)
    padded = []
    for i, r in enumerate(rows):
        mask[i, : len(r)] = True
        padded.append(torch.cat([r, values.new_zeros(width - len(r))]) if len(r) < width else r)
    return (torch.stack(padded) if padded else values), mask
