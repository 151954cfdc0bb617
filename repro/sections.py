"""Recipe sections: the typed dataclasses a recipe's YAML maps onto, each numeric key with its range."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


def ranged(
    default: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> Any:
    """A field whose number (or each item of its list) must lie in [low, high]; open_* makes a bound strict."""
    return field(default=default, metadata={"check": range_check(low, high, open_low, open_high)})


def ranged_list(factory: Any, low: float | None = None, high: float | None = None) -> Any:
    return field(default_factory=factory, metadata={"check": range_check(low, high, False, False)})


def range_check(low: float | None, high: float | None, open_low: bool, open_high: bool) -> Any:
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if open_low else '>='} {low:g}")
    if high is not None:
        bounds.append(f"{'<' if open_high else '<='} {high:g}")
    wanted = "must be " + " and ".join(bounds)

    def check(value: Any) -> str | None:
        for v in value if isinstance(value, list) else [value]:
            if v is None:
                continue
            too_low = low is not None and (v <= low if open_low else v < low)
            too_high = high is not None and (v >= high if open_high else v > high)
            if too_low or too_high:
                return f"{wanted}, got {v!r}"
        return None

    return check


def _check_set_ranges(value: dict[int, list[int]]) -> str | None:
    for key, span in value.items():
        if key < 1 or len(span) != 2 or not 1 <= span[0] < span[1]:
            return f"each set needs [low, high] token counts with 1 <= low < high, got {key}: {span}"
    return None


@dataclass
class LoraSection:
    enabled: bool = True
    r: int = ranged(16, 1)
    alpha: int = ranged(32, 1)
    dropout: float = ranged(0.05, 0.0, 1.0, open_high=True)
    # "all-linear" = every linear layer but the LM head (peft's shortcut); else module name suffixes.
    target_modules: list[str] = field(default_factory=lambda: ["all-linear"])


@dataclass
class QuantSection:
    load_in_4bit: bool = False
    quant_type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = True
    compute_dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"


@dataclass
class ModelSection:
    source: str = "artifacts/smollm2-135m-instruct"
    revision: str | None = None
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    attention: Literal["auto", "sdpa", "eager", "flash_attention_2"] = "auto"
    device: str = "auto"
    trust_remote_code: bool = False
    gradient_checkpointing: bool = False
    lora: LoraSection = field(default_factory=LoraSection)
    quant: QuantSection = field(default_factory=QuantSection)


@dataclass
class SftSection:
    """Warm-up SFT's data: which records, and how long a sample may be."""

    data: str = "data/loong-mini/train.jsonl"
    sets: list[int] = ranged_list(list, 1)  # Loong length sets to train on (empty: all)
    tasks: list[str] = field(default_factory=list)  # tasks to train on (empty: all)
    limit: int | None = ranged(None, 1)
    max_seq_tokens: int = ranged(1024, 1)  # a sample's prompt documents are dropped whole until it fits


@dataclass
class TrainSection:
    """The loop and optimizer knobs every training stage shares."""

    micro_batch_tokens: int = ranged(4096, 1)  # token budget of one micro-batch (padded size, or packed length)
    micro_batch_size: int = ranged(4, 1)  # at most this many samples in a micro-batch
    grad_accum: int = ranged(1, 1)  # micro-batches per optimizer step and process
    epochs: int = ranged(1, 1)
    max_steps: int | None = ranged(None, 1)  # stop after this many optimizer steps (None: the epochs' worth)
    lr: float = ranged(2e-4, 0.0, open_low=True)
    weight_decay: float = ranged(0.0, 0.0)
    warmup_steps: int = ranged(0, 0)
    schedule: Literal["cosine", "constant"] = "cosine"
    min_lr_ratio: float = ranged(0.1, 0.0, 1.0)
    max_grad_norm: float = ranged(1.0, 0.0, open_low=True)
    checkpoint_every: int = ranged(50, 1)
    keep_last: int = ranged(2, 1)
    logprob_chunk: int = ranged(1024, 1)
    pack: bool = False  # one row per micro-batch, position_ids restart per sample (flash-attention's path)
    # groups and pairs that share a prompt run as one row, the prompt once (RL, PO); false: one row per response
    shared_prefix: bool = True
    tensorboard: bool = False


@dataclass
class LoongMiniSection:
    # token range per length set; CPU default (Loong's own: 10-50K, 50-100K, 100-200K, 200-250K)
    set_ranges: dict[int, list[int]] = field(
        default_factory=lambda: {1: [250, 500], 2: [500, 1000], 3: [1000, 2000], 4: [2000, 4000]},
        metadata={"check": _check_set_ranges},
    )
    # words: a word-count proxy (1.3 tokens a word); model: the recipe model's tokenizer
    count_tokens: Literal["words", "model"] = "words"
    distractors: int = ranged(0, 0)


@dataclass
class ServerSection:
    """An OpenAI-compatible server the user started (e.g. `vllm serve`), for generation.backend: server."""

    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = ""  # the served model's name; empty: model.source as the recipe writes it (vllm serve's name)
    api_key_env: str | None = None
    concurrency: int = ranged(16, 1)  # requests in flight (each one prompt with its n samples)
    timeout_s: float = ranged(600.0, 0.0, open_low=True)  # one request: a whole group of long samples
    max_retries: int = ranged(2, 0)


@dataclass
class GenerationSection:
    max_new_tokens: int = ranged(256, 1)
    do_sample: bool = False
    temperature: float = ranged(0.7, 0.0, open_low=True)
    top_p: float = ranged(0.95, 0.0, 1.0, open_low=True)
    batch_size: int = ranged(4, 1)
    # local: the kit's own model (HF generate); server: generation.server (docs/engine.md, "Generation on a server")
    backend: Literal["local", "server"] = "local"
    server: ServerSection = field(default_factory=ServerSection)


@dataclass
class LlmJudgeSection:
    # hf: a local HF model (model = folder or hub id); openai: an OpenAI-compatible chat endpoint
    backend: Literal["hf", "openai"] = "hf"
    model: str = ""
    base_url: str = ""
    api_key_env: str | None = None
    timeout_s: float = ranged(60.0, 0.0, open_low=True)
    max_retries: int = ranged(4, 0)
    concurrency: int = ranged(4, 1)
    max_new_tokens: int = ranged(256, 1)


@dataclass
class EvalSection:
    data: str = "data/loong-mini/test.jsonl"
    judge: Literal["rule", "llm"] = "rule"
    sets: list[int] = ranged_list(lambda: [1, 2, 3, 4], 1)
    tasks: list[str] = field(default_factory=list)  # empty: every task
    limit: int | None = ranged(None, 1)
    max_input_tokens: int = ranged(8192, 1)
    prompt_style: Literal["loong", "l1"] = "loong"
    shuffle_docs: bool = False
    generation: GenerationSection = field(default_factory=GenerationSection)
    llm_judge: LlmJudgeSection = field(default_factory=LlmJudgeSection)


@dataclass
class RewardSection:
    """The hybrid reward: rule verification, optionally max'ed with an LLM judge (eval.llm_judge's settings)."""

    partial_credit: bool = True  # Loong-mini lists/dicts: F1 credit in [0, 1] instead of all-or-nothing
    # the released grader (QwenLong-L1 verl/utils/reward_score/docqa.py): no "the answer is" after the last
    # </think>, reward 0; require_think: no </think> at all, reward 0 (for reasoning models)
    require_format: bool = True
    require_think: bool = False
    numeric_rel_tol: float = ranged(0.0015, 0.0)  # the paper's 0.15%
    overlong_buffer: int = ranged(0, 0)  # DAPO's overlong shaping (0: off)
    overlong_factor: float = ranged(1.0, 0.0)
    llm_judge: bool = False


@dataclass
class Recipe:
    name: str = ""
    seed: int = ranged(0, 0)
    output_dir: str = "runs"
    model: ModelSection = field(default_factory=ModelSection)
    train: TrainSection = field(default_factory=TrainSection)
    sft: SftSection = field(default_factory=SftSection)
    loong_mini: LoongMiniSection = field(default_factory=LoongMiniSection)
    eval: EvalSection = field(default_factory=EvalSection)
