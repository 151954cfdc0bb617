"""Generation on an OpenAI-compatible server (vLLM): the kit's own prompt token ids in, sampled token ids out."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from repro.config import GenerationSection, ModelSection, ServerSection
from repro.errors import ConfigError, ReproError
from repro.fsio import swap_folder
from repro.generation import Sample
from repro.generation import generate_texts as local_texts
from repro.generation import sample_groups as local_groups
from repro.loong.llm_client import DETAIL_BYTES, BadReply, EndpointClient, EndpointDown, EndpointError
from repro.train.dist import barrier

log = logging.getLogger("repro.generation")

TOKEN_PREFIX = "token_id:"  # vLLM's form of a logprobs token under return_tokens_as_token_ids


@dataclass
class Completion:
    """One choice a server returned: its text, the sampled token ids (None when it gave none), whether it stopped
    on its own (finish_reason "stop", not "length"), and the sampled tokens' log-probs when it gave them."""

    text: str
    token_ids: list[int] | None
    finished: bool
    logprobs: list[float] | None = None


def _token_ids(choice: dict) -> list[int] | None:
    ids = choice.get("token_ids")  # newer vLLM with return_token_ids
    if isinstance(ids, list) and all(type(i) is int for i in ids):
        return ids
    tokens = (choice.get("logprobs") or {}).get("tokens")
    if not isinstance(tokens, list):
        return None
    out = []
    for token in tokens:
        digits = token[len(TOKEN_PREFIX) :] if isinstance(token, str) and token.startswith(TOKEN_PREFIX) else ""
        if not digits.isdigit():
            return None  # tokens as text: their ids cannot be read back exactly
        out.append(int(digits))
    return out


def _logprobs(choice: dict, length: int | None) -> list[float] | None:
    values = (choice.get("logprobs") or {}).get("token_logprobs")
    if not isinstance(values, list) or (length is not None and len(values) != length):
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        return None
    return [float(v) for v in values]


def parse_completions(raw: bytes, n: int) -> list[Completion]:
    """The n choices of a /completions reply, in their `index` order; BadReply (retried) when it is not one."""
    try:
        choices = sorted(json.loads(raw)["choices"], key=lambda c: c.get("index", 0))
        out = []
        for choice in choices:
            if not isinstance(choice["text"], str):
                raise TypeError("text is not a string")
            ids = _token_ids(choice)
            finished = choice.get("finish_reason") == "stop"
            out.append(Completion(choice["text"], ids, finished, _logprobs(choice, None if ids is None else len(ids))))
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError):
        raise BadReply(raw[:DETAIL_BYTES], "answered something that is not a text completion") from None
    if len(out) != n:
        raise BadReply(raw[:DETAIL_BYTES], f"answered {len(out)} choices where n={n} were asked")
    return out


def _any_reply(raw: bytes) -> bytes:
    return raw


class CompletionsClient(EndpointClient):
    """POSTs {base_url}/completions with the prompt as token ids (the kit applied the chat template, so the server
    sees the exact prompt the local model would), and vLLM's runtime LoRA endpoints (load/unload_lora_adapter)."""

    def __init__(self, cfg: ServerSection, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(
            cfg.base_url,
            cfg.api_key_env,
            cfg.timeout_s,
            cfg.max_retries,
            concurrency=cfg.concurrency,
            sleep=sleep,
            label="generation.server",
        )
        self.url = self.base_url + "/completions"

    def complete(
        self,
        prompt_ids: Sequence[int],
        n: int,
        gen: GenerationSection,
        model: str,
        seed: int | None = None,
        min_tokens: int = 0,
    ) -> list[Completion]:
        """n samples of one prompt: greedy (temperature 0) unless gen.do_sample."""
        payload: dict[str, Any] = {
            "model": model,
            "prompt": [int(i) for i in prompt_ids],
            "n": n,
            "max_tokens": gen.max_new_tokens,
            "temperature": gen.temperature if gen.do_sample else 0.0,
            "top_p": gen.top_p if gen.do_sample else 1.0,
            # vLLM: each logprobs token as "token_id:N", so the sampled ids come back exactly
            "logprobs": 1,
            "return_tokens_as_token_ids": True,
        }
        if seed is not None:
            payload["seed"] = seed
        if min_tokens:
            payload["min_tokens"] = min_tokens
        choices = self.post("/completions", payload, functools.partial(parse_completions, n=n))
        for choice in choices:
            choice.text = self.redact(choice.text)
        return choices

    def complete_many(
        self,
        prompts: Sequence[Sequence[int]],
        n: int,
        gen: GenerationSection,
        model: str,
        seeds: Sequence[int | None] | None = None,
        on_result: Callable[[int, list[Completion] | Exception], None] | None = None,
        min_tokens: int = 0,
    ) -> list[list[Completion]]:
        """complete() for every prompt, `concurrency` in flight; raises once all have finished when any failed."""
        seeds = list(seeds) if seeds is not None else [None] * len(prompts)
        jobs = list(zip(prompts, seeds, strict=True))
        results = self.map_concurrent(
            lambda job: self.complete(job[0], n, gen, model, job[1], min_tokens), jobs, on_result, noun="requests"
        )
        failures = [r for r in results if isinstance(r, Exception)]
        if failures:
            bug = next((f for f in failures if not isinstance(f, ReproError)), None)
            if bug is not None:
                raise bug
            first = failures[0]
            raise type(first)(f"{len(failures)} of {len(jobs)} generation requests failed (first: {first})") from first
        return results  # type: ignore[return-value]

    def load_adapter(self, name: str, path: str) -> None:
        """vLLM's runtime LoRA loading: the server reads the adapter folder at `path` and serves it as `name`."""
        self.post("/load_lora_adapter", {"lora_name": name, "lora_path": path}, _any_reply)

    def unload_adapter(self, name: str) -> None:
        self.post("/unload_lora_adapter", {"lora_name": name}, _any_reply)


def served_model(model: ModelSection, gen: GenerationSection) -> str:
    """The name the server serves the recipe's model under: generation.server.model, else model.source."""
    return gen.server.model or model.source


def _seeds(seed: int | None, count: int) -> list[int | None]:
    if seed is None:
        return [None] * count
    return [(seed * 1_000_003 + i) % 2**31 for i in range(count)]


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def generate_texts(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    gen: GenerationSection,
    on_result: Callable[[int, str], None] | None = None,
) -> list[str]:
    """Completions of chat-formatted `prompts`, as repro.generation.generate_texts; with gen.backend server,
    `model` is the served model's name and `on_result(index, text)` hears each one as it arrives."""
    if gen.backend != "server":
        texts = local_texts(model, tokenizer, prompts, gen)
        if on_result is not None:
            for i, text in enumerate(texts):
                on_result(i, text)
        return texts
    client = CompletionsClient(gen.server)

    def heard(i: int, result: list[Completion] | Exception) -> None:
        if on_result is not None and not isinstance(result, Exception):
            on_result(i, result[0].text)

    ids = [_encode(tokenizer, p) for p in prompts]
    return [c[0].text for c in client.complete_many(ids, 1, gen, model, on_result=heard)]


def sample_groups(
    model: Any,
    tokenizer: Any,
    prompt_ids: list[torch.Tensor],
    group_size: int,
    gen: GenerationSection,
    seed: int | None = None,
    full_length: bool = False,
    seeds: Sequence[int] | None = None,
) -> list[list[Sample]]:
    """`group_size` samples per tokenised prompt, as repro.generation.sample_groups; with gen.backend server,
    `model` is the served model's (or adapter's) name, one request per prompt asks for n = group_size, and
    `seeds` (one per prompt) or `seed` seed them. Samples carry the server's log-probs when it gave them."""
    if gen.backend != "server":
        return local_groups(model, tokenizer, prompt_ids, group_size, gen, seed=seed, full_length=full_length)
    client = CompletionsClient(gen.server)
    ids = [[int(i) for i in p.tolist()] for p in prompt_ids]
    seeds = list(seeds) if seeds is not None else _seeds(seed, len(ids))
    minimum = gen.max_new_tokens if full_length else 0
    replies = client.complete_many(ids, group_size, gen, model, seeds, min_tokens=minimum)
    eos = tokenizer.eos_token_id
    groups, retokenised = [], 0
    for choices in replies:
        group = []
        for c in choices:
            if c.token_ids is not None:
                group.append(Sample(c.token_ids, c.text, c.finished, c.logprobs))
                continue
            # the server's log-probs belong to its own tokens, which these ids may not match: left out
            retokenised += 1
            token_ids = _encode(tokenizer, c.text) + ([eos] if c.finished and eos is not None else [])
            group.append(Sample(token_ids, c.text, c.finished, None))
        groups.append(group)
    if retokenised:
        log.warning(
            "%s gave no token ids for %d samples (no 'token_id:N' logprobs); their texts were re-tokenised with the "
            "kit's tokenizer, which may split them otherwise than the server sampled",
            client.url, retokenised,
        )  # fmt: skip
    return groups


def server_logprob_gap(server: list[torch.Tensor | None], old: torch.Tensor, mask: torch.Tensor) -> float | None:
    """Mean |server - trainer| log-prob over the sampled tokens the server reported: how far the server's policy
    (its weights, precision and kernels) is from the one the loss uses. `old` [N, T] holds the trainer's log-probs
    of the sampling policy (the round's old log-probs, or this update's own before any step of the round)."""
    total, count = 0.0, 0
    for row, values in enumerate(server):
        if values is None:
            continue
        n = min(len(values), int(mask[row].sum()))
        total += float((values[:n].to(old.device, old.dtype) - old[row, :n].detach()).abs().sum())
        count += n
    return total / count if count else None


def served_adapters(
    model: ModelSection, gen: GenerationSection, stage: str, run_dir: Path, is_main: bool
) -> ServedAdapters:
    """The adapter a training stage's server samples from (RUN/served-adapters); full fine-tuning is refused."""
    if not model.lora.enabled:
        raise ConfigError(
            f"{stage}.generation.backend=server needs model.lora.enabled=true: the server samples from the policy's "
            "LoRA adapter, reloaded after each update; with full fine-tuning it would need all the weights after "
            "every update (use backend local)"
        )
    client = CompletionsClient(gen.server)
    client.check_key()
    return ServedAdapters(client, served_model(model, gen), run_dir / "served-adapters", is_main)


def _adapters_moved(policy: Any) -> bool:
    """Whether any LoRA B matrix is non-zero: fresh adapters (B = 0) leave the policy the base model itself."""
    return any("lora_B" in name and bool(p.detach().abs().max() > 0) for name, p in policy.named_parameters())


def adapter_tag(folder: Path) -> str:
    """The prefix of a run's adapter names: one server may serve several runs, the folder's hash keeps them apart."""
    return "repro-" + hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:8]


class ServedAdapters:
    """The training policy's LoRA adapter on the server, for RL rollouts.

    `serving(policy, step)` names what to sample the policy from after `step` optimizer updates: the base model
    while the adapters are fresh (B = 0), else the adapter saved at that step (peft save_pretrained into
    folder/step-N, atomically) and loaded by the server under a new name (vLLM's runtime LoRA loading), the
    previous one unloaded. It is called before each round's generation, so the swap happens once per policy
    change and never within a round. Only the main process writes and asks; the others wait at a barrier.
    """

    def __init__(self, client: CompletionsClient, base_model: str, folder: Path, is_main: bool = True) -> None:
        self.client, self.base_model, self.folder, self.is_main = client, base_model, folder, is_main
        self.tag = adapter_tag(folder)
        self.step: int | None = None
        self.name = base_model

    def serving(self, policy: Any, step: int) -> str:
        if step == self.step:
            return self.name
        if self.step is None and not _adapters_moved(policy):
            self.step = step
            return self.name
        name, path = f"{self.tag}-step-{step}", self.folder / f"step-{step}"
        if self.is_main:
            build = path.with_name(path.name + ".tmp")
            shutil.rmtree(build, ignore_errors=True)
            policy.save_pretrained(build, safe_serialization=True)
            swap_folder(build, path)
            if self.step is None:
                self._unload_quietly(name)  # a resumed run's server may still hold this name from before the cut
            self._load(name, path)
            if self.name != self.base_model:
                self.client.unload_adapter(self.name)
                shutil.rmtree(self.folder / f"step-{self.step}", ignore_errors=True)
        barrier()
        self.step, self.name = step, name
        return name

    def _load(self, name: str, path: Path) -> None:
        try:
            self.client.load_adapter(name, str(path.resolve()))
        except EndpointDown:
            raise
        except EndpointError as exc:
            raise EndpointError(
                f"{exc} (the server must run with --enable-lora, a --max-lora-rank of at least model.lora.r, and "
                "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True in its environment; docs/engine.md, 'Generation on a server')"
            ) from None

    def _unload_quietly(self, name: str) -> None:
        try:
            self.client.unload_adapter(name)
        except EndpointDown:
            raise
        except EndpointError:
            pass  # not loaded: the usual case
