"""Recipe sections: the typed dataclasses a recipe's YAML maps onto, each numeric key with its range."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


def _ranged(
    default: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> Any:
    """A field whose number (or each item of its list) must lie in [low, high]; open_* makes a bound strict."""
    return field(default=default, metadata={"check": _range_check(low, high, open_low, open_high)})


def _ranged_list(factory: Any, low: float | None = None, high: float | None = None) -> Any:
    return field(default_factory=factory, metadata={"check": _range_check(low, high, False, False)})


def _range_check(low: float | None, high: float | None, open_low: bool, open_high: bool) -> Any:
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
    r: int = _ranged(16, 1)
    alpha: int = _ranged(32, 1)
    dropout: float = _ranged(0.05, 0.0, 1.0, open_high=True)
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
    sets: list[int] = _ranged_list(list, 1)  # Loong length sets to train on (empty: all)
    tasks: list[str] = field(default_factory=list)  # tasks to train on (empty: all)
    limit: int | None = _ranged(None, 1)
    max_seq_tokens: int = _ranged(1024, 1)  # a sample's prompt documents are dropped whole until it fits


@dataclass
class TrainSection:
    """The loop and optimizer knobs every training stage shares."""

    micro_batch_tokens: int = _ranged(4096, 1)  # token budget of one micro-batch (padded size, or packed length)
    micro_batch_size: int = _ranged(4, 1)  # at most this many samples in a micro-batch
    grad_accum: int = _ranged(1, 1)  # micro-batches per optimizer step and process
    epochs: int = _ranged(1, 1)
    max_steps: int | None = _ranged(None, 1)  # stop after this many optimizer steps (None: the epochs' worth)
    lr: float = _ranged(2e-4, 0.0, open_low=True)
    weight_decay: float = _ranged(0.0, 0.0)
    warmup_steps: int = _ranged(0, 0)
    schedule: Literal["cosine", "constant"] = "cosine"
    min_lr_ratio: float = _ranged(0.1, 0.0, 1.0)
    max_grad_norm: float = _ranged(1.0, 0.0, open_low=True)
    checkpoint_every: int = _ranged(50, 1)
    keep_last: int = _ranged(2, 1)
    logprob_chunk: int = _ranged(1024, 1)
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
    distractors: int = _ranged(0, 0)


@dataclass
class GenerationSection:
    max_new_tokens: int = _ranged(256, 1)
    do_sample: bool = False
    temperature: float = _ranged(0.7, 0.0, open_low=True)
    top_p: float = _ranged(0.95, 0.0, 1.0, open_low=True)
    batch_size: int = _ranged(4, 1)


@dataclass
class LlmJudgeSection:
    # hf: a local HF model (model = folder or hub id); openai: an OpenAI-compatible chat endpoint
    backend: Literal["hf", "openai"] = "hf"
    model: str = ""
    base_url: str = ""
    api_key_env: str | None = None
    timeout_s: float = _ranged(60.0, 0.0, open_low=True)
    max_retries: int = _ranged(4, 0)
    concurrency: int = _ranged(4, 1)
    max_new_tokens: int = _ranged(256, 1)


@dataclass
class EvalSection:
    data: str = "data/loong-mini/test.jsonl"
    judge: Literal["rule", "llm"] = "rule"
    sets: list[int] = _ranged_list(lambda: [1, 2, 3, 4], 1)
    tasks: list[str] = field(default_factory=list)  # empty: every task
    limit: int | None = _ranged(None, 1)
    max_input_tokens: int = _ranged(8192, 1)
    prompt_style: Literal["loong", "l1"] = "loong"
    shuffle_docs: bool = False
    generation: GenerationSection = field(default_factory=GenerationSection)
    llm_judge: LlmJudgeSection = field(default_factory=LlmJudgeSection)


@dataclass
class PhaseSection:
    """One phase of QwenLong-L1's length curriculum: prompts up to `max_input_tokens`, for `steps` updates."""

    max_input_tokens: int = _ranged(1024, 1)
    steps: int = _ranged(1, 1)
    temperature: float | None = _ranged(None, 0.0, open_low=True)  # None: rl.generation.temperature


@dataclass
class RewardSection:
    """The hybrid reward: rule verification, optionally max'ed with an LLM judge (eval.llm_judge's settings)."""

    partial_credit: bool = True  # Loong-mini lists/dicts: F1 credit in [0, 1] instead of all-or-nothing
    # the released grader (QwenLong-L1 verl/utils/reward_score/docqa.py): no "the answer is" after the last
    # </think>, reward 0; require_think: no </think> at all, reward 0 (for reasoning models)
    require_format: bool = True
    require_think: bool = False
    numeric_rel_tol: float = _ranged(0.0015, 0.0)  # the paper's 0.15%
    overlong_buffer: int = _ranged(0, 0)  # DAPO's overlong shaping (0: off)
    overlong_factor: float = _ranged(1.0, 0.0)
    llm_judge: bool = False


def _default_phases() -> list[PhaseSection]:
    return [PhaseSection(max_input_tokens=1024, steps=8)]


def _check_phases(phases: list[PhaseSection]) -> str | None:
    if not phases:
        return "give at least one phase (- max_input_tokens: N, steps: S)"
    bounds = [p.max_input_tokens for p in phases]
    if any(b >= c for b, c in zip(bounds, bounds[1:], strict=False)):
        return f"phases' max_input_tokens must increase, got {bounds}"
    return None


@dataclass
class RlSection:
    """QwenLong-L1's phased RL: the data, the algorithm (GRPO or DAPO), rollouts, reward and curriculum."""

    data: str = "data/loong-mini/train.jsonl"
    sets: list[int] = _ranged_list(list, 1)
    tasks: list[str] = field(default_factory=list)
    limit: int | None = _ranged(None, 1)
    prompt_style: Literal["l1", "loong"] = "l1"
    algorithm: Literal["dapo", "grpo"] = "dapo"  # dapo: token-level loss; grpo: sequence-level
    group_size: int = _ranged(8, 1)  # G rollouts per prompt
    prompts_per_round: int = _ranged(4, 1)  # groups kept per round (the batch)
    mini_batches: int = _ranged(1, 1)  # optimizer updates per round and PPO epoch
    ppo_epochs: int = _ranged(1, 1)
    eps_low: float = _ranged(0.2, 0.0, 1.0)
    eps_high: float = _ranged(0.28, 0.0)  # DAPO's clip-higher
    kl_coef: float = _ranged(0.0, 0.0)
    scale_std: bool = True  # false: Dr. GRPO's advantages without the std
    dynamic_sampling: bool = True  # drop groups whose rewards are all equal, sample more prompts
    # what dynamic sampling looks at, before overlong shaping: acc (correct or not, reward == 1, the released
    # demo's filter_groups.metric=acc) or score (the rule/judge reward, partial credit included)
    filter_metric: Literal["acc", "score"] = "acc"
    max_gen_batches: int = _ranged(3, 1)
    entropy_coef: float = _ranged(0.0, 0.0)  # entropy bonus (the paper: 0.001); entropy is logged either way
    generation: GenerationSection = field(
        default_factory=lambda: GenerationSection(max_new_tokens=256, do_sample=True, temperature=0.7, top_p=0.95)
    )
    reward: RewardSection = field(default_factory=RewardSection)
    phases: list[PhaseSection] = field(default_factory=_default_phases, metadata={"check": _check_phases})
    # entering a phase carries the hardest earlier examples in: a share (< 1) or a count (>= 1)
    retrospective: float = _ranged(0.25, 0.0)


@dataclass
class SoloPoSection:
    """SoLoPO: preference pairs sampled on the short context, PO on short + SoLo-RA, or plain long-context PO.

    Short context = the documents the answer needs (Record.short_docs); long = all of them.
    """

    data: str = "data/loong-mini-solopo/train.jsonl"
    sets: list[int] = _ranged_list(list, 1)
    tasks: list[str] = field(default_factory=list)
    limit: int | None = _ranged(None, 1)
    prompt_style: Literal["l1", "loong"] = "l1"
    # the long prompt's budget (chat template included): distractors are dropped whole to fit, never a needed
    # document; an example whose needed documents alone exceed it is skipped and counted
    max_input_tokens: int = _ranged(4096, 1)
    # pairs (`repro solopo pairs`)
    context: Literal["short", "long"] = "short"  # where the K responses are sampled
    samples: int = _ranged(8, 2)  # K responses per example (paper: 32)
    generation: GenerationSection = field(
        default_factory=lambda: GenerationSection(max_new_tokens=160, do_sample=True, temperature=0.85, top_p=1.0)
    )
    # the format gate on: a response that never says "the answer is" is wrong, whatever it names
    reward: RewardSection = field(default_factory=lambda: RewardSection(numeric_rel_tol=0.0, require_format=True))
    # chosen = the first correct response (reward >= this), rejected = the first wrong one (reward 0); a partly
    # right list/dict answer (0 < reward < this) is neither, as it holds both items to raise and items to lower
    correct_reward: float = _ranged(1.0, 0.0, 1.0, open_low=True)
    # training (`repro solopo train`)
    pairs: str = ""  # the pairs.jsonl to train on
    algorithm: Literal["dpo", "simpo", "orpo"] = "dpo"
    mode: Literal["solopo", "long", "expand_long", "short"] = "solopo"
    # each algorithm reads its own scale (SoLo-RA's reward r uses the same beta as the PO term)
    dpo_beta: float = _ranged(0.1, 0.0, open_low=True)  # DPO's common default
    # SimPO: github.com/princeton-nlp/SimPO README, hyper-parameter table, row Llama3-Instruct (beta 2.5, gamma/beta
    # 0.55); the margin is gamma = beta * ratio, as the released trainer's gamma_beta_ratio
    simpo_beta: float = _ranged(2.5, 0.0, open_low=True)
    simpo_gamma_beta_ratio: float = _ranged(0.55, 0.0)
    # ORPO's lambda: github.com/xfactlab/orpo scripts/run_mistral_orpo_beta.sh (--alpha 0.1), TRL ORPOConfig's 0.1
    orpo_lambda: float = _ranged(0.1, 0.0)
    alpha: float | None = _ranged(None, 0.0)  # SoLo-RA's weight; None: the paper's 3 (DPO) or 1 (SimPO, ORPO)
    shaping: Literal["abs", "square"] = "abs"  # the paper leaves SoLo-RA's shaping function unconfirmed
    align_rejected: bool = False  # SoLo-RA on the rejected response too (the paper aligns the chosen only)


def _check_class_weights(value: list[float]) -> str | None:
    if len(value) != 4 or any(w <= 0 for w in value):
        return f"must be four weights > 0, one per tag B, I, O, E (BIO uses the first three), got {value}"
    return None


@dataclass
class CprsSection:
    """QwenLong-CPRS: the compressor's training data and labels, and window-parallel compression."""

    data: str = "data/loong-mini/train.jsonl"
    sets: list[int] = _ranged_list(list, 1)
    tasks: list[str] = field(default_factory=list)
    limit: int | None = _ranged(None, 1)
    granularities: list[Literal["keyword", "sentence", "paragraph"]] = field(
        default_factory=lambda: ["keyword", "sentence", "paragraph"]
    )
    # more distinct contexts for the same compute: each record trains one seeded granularity, not all of them
    one_granularity_per_record: bool = False
    query_agnostic_share: float = _ranged(0.25, 0.0, 1.0)  # training examples without the question
    bidirectional_layers: int | None = _ranged(None, 0)  # None: the top 25% (the paper's 7 of 28)
    scheme: Literal["BIOE", "BIO"] = "BIOE"
    focal_gamma: float | None = _ranged(2.0, 0.0)  # None: cross-entropy for the boundary head
    # Boundary-loss class weights in the order B, I, O, E (a BIO head takes B, I, O). The released code passes a
    # class-weight vector (`bi_loss_weight`, modeling_qwen2.py) whose checkpoint is named `bi_weight_10`; the
    # vector itself is not released: read as 10 for the span tags B, I, E against 1 for O.
    boundary_class_weights: list[float] = field(
        default_factory=lambda: [10.0, 10.0, 1.0, 10.0], metadata={"check": _check_class_weights}
    )
    # weight of the word "outside" in the label-word loss (released checkpoint name: `outside_weight_0.5`)
    outside_weight: float = _ranged(0.5, 0.0)
    mask_fraction: float = _ranged(0.5, 0.0, 1.0)  # non-critical positions masked from the gradient per step
    max_tokens: int = _ranged(2048, 16)  # training window (prompt prefix included)
    # compression
    compressor: str = ""  # a trained compressor (RUN/final of `repro cprs train`)
    window_tokens: int = _ranged(2048, 16)  # w, prompt prefix included
    window_batch: int = _ranged(4, 1)  # windows per forward
    fill_gaps: int = _ranged(20, 0)  # gaps shorter than this inside a span are kept
    # spans shorter than this (after gap filling) are dropped; 2 = the released demo's min_keyword_len 1 (its
    # decoder keeps spans longer than min_keyword_len tokens): a lone tagged token is mostly noise, a name or a
    # value is rarely one token
    min_span_tokens: int = _ranged(2, 1)
    budget_tokens: int | None = _ranged(None, 1)  # keep the best spans up to this many tokens
    threshold: float | None = _ranged(None, 0.0, 1.0)  # keep tokens whose keep probability reaches it
    granularity: Literal["keyword", "sentence", "paragraph"] = "sentence"
    instruction: str = ""  # what to keep when no query is given (default: the key information)


@dataclass
class Recipe:
    name: str = ""
    seed: int = _ranged(0, 0)
    output_dir: str = "runs"
    model: ModelSection = field(default_factory=ModelSection)
    train: TrainSection = field(default_factory=TrainSection)
    sft: SftSection = field(default_factory=SftSection)
    rl: RlSection = field(default_factory=RlSection)
    solopo: SoloPoSection = field(default_factory=SoloPoSection)
    cprs: CprsSection = field(default_factory=CprsSection)
    loong_mini: LoongMiniSection = field(default_factory=LoongMiniSection)
    eval: EvalSection = field(default_factory=EvalSection)
