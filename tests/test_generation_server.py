"""generation.backend server against a fake vLLM on 127.0.0.1: the requests, the parsed samples, eval loong, solopo
pairs, RL with the adapter loaded once per policy change, a server that dies mid-run, and --dump-prompts."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from repro.cli import main
from repro.config import GenerationSection, ServerSection, load_recipe
from repro.data.loong_mini import generate
from repro.data.schema import read_records, write_records
from repro.errors import ConfigError, ReproError
from repro.generation_server import CompletionsClient, ServedAdapters, adapter_tag, sample_groups, server_logprob_gap
from repro.l1 import rollout
from repro.l1.phased_rl import run_rl
from repro.l1.rollout import RlSource
from repro.loong.eval import run_eval
from repro.loong.llm_client import EndpointDown, EndpointError
from repro.modeling import load_model, load_tokenizer
from repro.runs import check_resume_plan
from repro.train.dist import DistInfo

REPO = Path(__file__).resolve().parent.parent
Answer = Callable[[list[int], int], tuple[list[int], str, str]]


def plain_answer(prompt: list[int], i: int) -> tuple[list[int], str, str]:
    """Choice i: i + 1 tokens, id 10 + i, text 'x' * (i + 1); even choices stopped on their own."""
    return [10 + i] * (i + 1), "x" * (i + 1), "stop" if i % 2 == 0 else "length"


class FakeVllm:
    """An OpenAI-compatible server shaped like vLLM. /v1/completions: n choices per prompt from `answer(prompt
    ids, i)`, listed in reverse order (the client sorts by index), each token as "token_id:N" with log-prob
    -0.5 - 0.25 * position (`token_ids=False`: tokens as text, as a server without return_tokens_as_token_ids).
    `edit(choices)` may spoil a reply. /v1/load_lora_adapter and /v1/unload_lora_adapter answer vLLM's plain-text
    line (`lora_status` 404: a server without runtime LoRA loading). Once `die_after`
    completions requests were answered, it hangs up on every request, as a server that died."""

    def __init__(self, answer: Answer = plain_answer, die_after: int | None = None, token_ids: bool = True) -> None:
        self.answer, self.die_after, self.token_ids = answer, die_after, token_ids
        self.lora_status = 200
        self.edit: Callable[[list[dict]], list[dict]] = lambda choices: choices
        self.requests: list[tuple[str, dict]] = []
        self.answered = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    dead = fake.die_after is not None and fake.answered >= fake.die_after
                    if not dead:
                        fake.requests.append((self.path, body))
                        fake.answered += self.path.endswith("/completions")
                if dead:
                    self.close_connection = True  # no reply at all
                    return
                if self.path.endswith("_lora_adapter"):
                    reply = f"Success: LoRA adapter '{body['lora_name']}' done" if fake.lora_status == 200 else "{}"
                    self._send(fake.lora_status, reply.encode(), "text/plain")
                    return
                choices = fake.edit([fake.choice(body["prompt"], i) for i in range(body["n"])])
                self._send(200, json.dumps({"object": "text_completion", "choices": choices[::-1]}).encode())

            def _send(self, code: int, data: bytes, kind: str = "application/json") -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def choice(self, prompt: list[int], i: int) -> dict:
        ids, text, finish = self.answer(prompt, i)
        tokens = [f"token_id:{t}" for t in ids] if self.token_ids else list(text)
        logprobs = [-0.5 - 0.25 * k for k in range(len(tokens))]
        return {
            "index": i,
            "text": text,
            "finish_reason": finish,
            "logprobs": {"tokens": tokens, "token_logprobs": logprobs, "text_offset": [0] * len(tokens)},
        }

    def paths(self) -> list[str]:
        return [path.removeprefix("/v1/") for path, _ in self.requests]

    def completions(self) -> list[dict]:
        return [body for path, body in self.requests if path.endswith("/completions")]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def vllm(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    servers: list[FakeVllm] = []

    def start(*args, **kwargs) -> FakeVllm:
        servers.append(FakeVllm(*args, **kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def sampling(base_url: str, **kw) -> GenerationSection:
    server = ServerSection(base_url=base_url, max_retries=0, concurrency=kw.pop("concurrency", 2))
    return GenerationSection(backend="server", server=server, **kw)


# The client: what a request carries, what a reply becomes


def test_a_request_carries_the_prompt_ids_n_sampling_and_the_model_and_the_ids_come_back(vllm):
    server = vllm()
    gen = sampling(server.base_url, max_new_tokens=5, do_sample=True, temperature=0.7, top_p=0.9)
    choices = CompletionsClient(gen.server).complete([1, 2, 3], 3, gen, "adapter-7", seed=42)
    ((path, body),) = server.requests
    assert path == "/v1/completions"
    assert body == {
        "model": "adapter-7",
        "prompt": [1, 2, 3],
        "n": 3,
        "max_tokens": 5,
        "temperature": 0.7,
        "top_p": 0.9,
        "logprobs": 1,
        "return_tokens_as_token_ids": True,
        "seed": 42,
    }
    # listed 2, 1, 0 by the server: read back in index order, ids from "token_id:N", finished = "stop"
    assert [(c.token_ids, c.text, c.finished) for c in choices] == [
        ([10], "x", True),
        ([11, 11], "xx", False),
        ([12, 12, 12], "xxx", True),
    ]
    assert choices[2].logprobs == [-0.5, -0.75, -1.0]


def test_greedy_generation_asks_for_temperature_0_and_top_p_1(vllm):
    server = vllm()
    gen = sampling(server.base_url, max_new_tokens=4, do_sample=False, temperature=0.7, top_p=0.9)
    CompletionsClient(gen.server).complete([5], 1, gen, "m")
    body = server.completions()[0]
    assert (body["temperature"], body["top_p"], body["n"]) == (0.0, 1.0, 1) and "seed" not in body


def test_a_reply_that_is_not_n_text_completions_is_endpoint_down_in_one_line(vllm):
    server = vllm()
    gen = sampling(server.base_url)
    server.edit = lambda choices: choices[:1]
    with pytest.raises(EndpointDown) as info:
        CompletionsClient(gen.server).complete([1], 2, gen, "m")
    assert str(info.value) == (
        f"endpoint down: {server.base_url}/completions failed 1 attempt (last: answered 1 choices where n=2 were "
        'asked: {"object": "text_completion", "choices": [{"index": 0, "text": "x", "finish_reason": "stop", '
        '"logprobs": {"tokens": ["token_id:10"], "token_logprobs": [-0.5], "text_offset": [0]}}]})'
    )
    server.edit = lambda choices: [{**c, "text": 5} for c in choices]
    with pytest.raises(EndpointDown, match="answered something that is not a text completion"):
        CompletionsClient(gen.server).complete([1], 2, gen, "m")


def test_sample_groups_on_the_server_sends_each_prompt_once_with_n_and_a_seed(vllm, tiny_model_dir):
    server = vllm()
    tokenizer = load_tokenizer(load_recipe(REPO / "recipes" / "tiny" / "base.yaml").model, tiny_model_dir)
    gen = sampling(server.base_url, max_new_tokens=6, do_sample=True, temperature=0.9, top_p=0.95)
    prompts = [torch.tensor([3, 4, 5]), torch.tensor([6, 7])]
    groups = sample_groups("policy", tokenizer, prompts, 2, gen, seed=5)
    bodies = sorted(server.completions(), key=lambda b: b["prompt"])
    assert [b["prompt"] for b in bodies] == [[3, 4, 5], [6, 7]]
    assert {(b["n"], b["model"], b["max_tokens"]) for b in bodies} == {(2, "policy", 6)}
    # one seed per prompt: (seed * 1000003 + place) mod 2^31
    assert [b["seed"] for b in bodies] == [5 * 1_000_003, 5 * 1_000_003 + 1]
    assert [[(s.token_ids, s.text, s.finished, s.logprobs) for s in g] for g in groups] == [
        [([10], "x", True, [-0.5]), ([11, 11], "xx", False, [-0.5, -0.75])]
    ] * 2


def test_a_server_without_token_ids_is_re_tokenised_and_says_so(vllm, tiny_model_dir, caplog):
    server = vllm(token_ids=False)
    tokenizer = load_tokenizer(load_recipe(REPO / "recipes" / "tiny" / "base.yaml").model, tiny_model_dir)
    gen = sampling(server.base_url, do_sample=True)
    with caplog.at_level(logging.WARNING, logger="repro.generation"):
        (group,) = sample_groups("m", tokenizer, [torch.tensor([3, 4])], 2, gen)
    x = tokenizer("x", add_special_tokens=False)["input_ids"]
    xx = tokenizer("xx", add_special_tokens=False)["input_ids"]
    # finished: the text's ids then the eos the text no longer shows; cut at the length limit: no eos
    assert [s.token_ids for s in group] == [x + [tokenizer.eos_token_id], xx]
    assert [s.logprobs for s in group] == [None, None]  # the server's tokens, not these ids: left out
    assert "gave no token ids for 2 samples" in caplog.text and "re-tokenised" in caplog.text


# eval loong on the server; --dump-prompts


@pytest.fixture(scope="module")
def eval_data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("loong-mini") / "test.jsonl"
    write_records(path, generate(6, seed=5, split="test"))
    return path


def eval_recipe_file(tmp_path: Path, data: Path, model_dir: str, base_url: str, *server: str) -> Path:
    path = tmp_path / "eval.yaml"
    path.write_text(
        f"output_dir: {tmp_path / 'runs'}\nmodel:\n  source: {model_dir}\n  lora:\n    enabled: false\n"
        f"eval:\n  data: {data}\n  max_input_tokens: 1500\n  generation:\n    max_new_tokens: 4\n"
        f"    backend: server\n    server:\n      base_url: {base_url}\n      max_retries: 0\n      concurrency: 1\n"
        + "".join(f"      {line}\n" for line in server)
    )
    return path


def counted_answer(prompt: list[int], i: int) -> tuple[list[int], str, str]:
    return [7], f"The answer is {len(prompt)}", "stop"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_eval_on_the_server_judges_what_it_answered_to_the_dumped_prompts(vllm, tiny_model_dir, tmp_path, eval_data):
    server = vllm(counted_answer)
    recipe_file = eval_recipe_file(tmp_path, eval_data, tiny_model_dir, server.base_url, "model: served-policy")
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "loong", str(recipe_file), "--dump-prompts", str(tmp_path / "prompts.jsonl")])
    assert exit_info.value.code in (0, None) and server.requests == []  # dumping generates nothing
    dumped = {row["id"]: row["prompt"] for row in read_jsonl(tmp_path / "prompts.jsonl")}
    # another generator's answers, one per dumped id, come back through --predictions
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"id": i, "prediction": "The answer is 0"}) + "\n" for i in dumped))
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "loong", str(recipe_file), "--predictions", str(answers), "--out", str(tmp_path / "read")])
    assert exit_info.value.code in (0, None) and server.requests == []
    assert json.loads((tmp_path / "read" / "metrics.json").read_text())["n"] == len(dumped) == 6
    run_eval(load_recipe(recipe_file), tmp_path / "run")
    tokenizer = load_tokenizer(load_recipe(recipe_file).model)
    ids = {i: tokenizer(p, add_special_tokens=False)["input_ids"] for i, p in dumped.items()}
    # each request is one dumped prompt's token ids, greedy, under the configured model name
    assert sorted(b["prompt"] for b in server.completions()) == sorted(ids.values())
    assert {(b["model"], b["n"], b["temperature"], b["max_tokens"]) for b in server.completions()} == {
        ("served-policy", 1, 0.0, 4)
    }
    predictions = {row["id"]: row["prediction"] for row in read_jsonl(tmp_path / "run" / "predictions.jsonl")}
    assert predictions == {i: f"The answer is {len(v)}" for i, v in ids.items()}
    assert "on the server http://127.0.0.1" in (tmp_path / "run" / "report.md").read_text()


def test_dumped_eval_prompts_are_what_the_local_model_is_fed(tiny_model_dir, tmp_path, eval_data, monkeypatch):
    import repro.generation as generation

    recipe_file = eval_recipe_file(tmp_path, eval_data, tiny_model_dir, "http://127.0.0.1:9/v1")
    local = ["eval.generation.backend=local", "eval.limit=4"]
    with pytest.raises(SystemExit):
        main(["eval", "loong", str(recipe_file), *local, "--dump-prompts", str(tmp_path / "prompts.jsonl")])
    fed: list[str] = []

    def record(model, tokenizer, prompts, gen):
        fed.extend(prompts)
        return [""] * len(prompts)

    monkeypatch.setattr(generation, "generate_texts", record)
    run_eval(load_recipe(recipe_file, local), tmp_path / "run")
    assert sorted(fed) == sorted(row["prompt"] for row in read_jsonl(tmp_path / "prompts.jsonl"))
    assert len(fed) == 4 and set(read_jsonl(tmp_path / "prompts.jsonl")[0]) == {"id", "prompt"}


def test_an_eval_server_that_dies_fails_in_one_line_and_resume_generates_the_rest(
    vllm, tiny_model_dir, tmp_path, eval_data, capsys
):
    server = vllm(counted_answer, die_after=2)
    recipe_file = eval_recipe_file(tmp_path, eval_data, tiny_model_dir, server.base_url)
    args = ["eval", "loong", str(recipe_file), "--out", str(tmp_path / "run")]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("repro: error:") == 1
    last = err.splitlines()[-1]
    assert last.startswith("repro: error: 4 of 6 generation requests failed (first: endpoint down: ")
    assert last.endswith(f"run again with --resume --out {tmp_path / 'run'} to generate the rest")
    assert len(read_jsonl(tmp_path / "run" / "predictions.jsonl")) == 2
    server.die_after = None
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--resume"])
    assert exit_info.value.code in (0, None)
    assert len(server.completions()) == 6  # 2 before the death, the 4 others after it
    assert len(read_jsonl(tmp_path / "run" / "predictions.jsonl")) == 6


# solopo pairs on the server; its --dump-prompts


@pytest.fixture(scope="module")
def solopo_data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("solopo-data") / "train.jsonl"
    write_records(path, generate(4, seed=5, sets=(1,), tasks=["spotlight", "comparison"], distractors=3))
    return path


def solopo_overrides(tmp_path: Path, model_dir: str, data: Path, base_url: str) -> list[str]:
    return [
        f"model.source={model_dir}",
        "model.device=cpu",
        f"solopo.data={data}",
        "solopo.samples=3",
        "solopo.generation.max_new_tokens=5",
        "solopo.generation.backend=server",
        f"solopo.generation.server.base_url={base_url}",
        f"output_dir={tmp_path}",
    ]


def test_pairs_on_the_server_sample_n_per_dumped_prompt(vllm, tiny_model_dir, tmp_path, solopo_data, monkeypatch):
    from repro.solopo import sample as sample_module

    monkeypatch.setattr(sample_module, "verify_answer", lambda text, record, cfg: len(text) % 3 / 2)
    server = vllm()
    recipe = str(REPO / "recipes" / "tiny" / "solopo.yaml")
    overrides = solopo_overrides(tmp_path, tiny_model_dir, solopo_data, server.base_url)
    with pytest.raises(SystemExit):
        main(["solopo", "pairs", recipe, *overrides, "--dump-prompts", str(tmp_path / "prompts.jsonl")])
    dumped = read_jsonl(tmp_path / "prompts.jsonl")
    assert len(dumped) == 4 and {(d["context"], d["n"]) for d in dumped} == {("short", 3)}
    with pytest.raises(SystemExit) as exit_info:
        main(["solopo", "pairs", recipe, *overrides, "--out", str(tmp_path / "run")])
    assert exit_info.value.code in (0, None)
    tokenizer = load_tokenizer(load_recipe(recipe, overrides).model)
    wanted = sorted(tokenizer(d["prompt"], add_special_tokens=False)["input_ids"] for d in dumped)
    assert sorted(b["prompt"] for b in server.completions()) == wanted
    assert {(b["n"], b["temperature"], b["top_p"], b["model"]) for b in server.completions()} == {
        (3, 0.85, 1.0, tiny_model_dir)  # the tiny recipe's sampling; the model: model.source
    }
    # "x", "xx", "xxx" score 0.5, 1 and 0: "xx" is chosen, "xxx" rejected, each with the ids the server sampled
    rows = read_jsonl(tmp_path / "run" / "pairs.jsonl")
    assert len(rows) == 4 and {tuple(r["scores"]) for r in rows} == {(0.5, 1.0, 0.0)}
    assert {(tuple(r["chosen"]["ids"]), tuple(r["rejected"]["ids"])) for r in rows} == {((11, 11), (12, 12, 12))}


def test_dumped_pair_prompts_are_what_the_local_model_is_fed(tiny_model_dir, tmp_path, solopo_data, monkeypatch):
    from repro.solopo import sample as sample_module

    recipe = str(REPO / "recipes" / "tiny" / "solopo.yaml")
    overrides = solopo_overrides(tmp_path, tiny_model_dir, solopo_data, "http://127.0.0.1:9/v1")
    overrides += ["solopo.generation.backend=local", "solopo.context=long"]
    with pytest.raises(SystemExit):
        main(["solopo", "pairs", recipe, *overrides, "--dump-prompts", str(tmp_path / "prompts.jsonl")])
    fed: list[tuple[list[int], int]] = []

    def record(model, tokenizer, ids, n, gen, seed=None):
        fed.extend((p.tolist(), n) for p in ids)
        raise KeyboardInterrupt  # what was fed is all this test needs

    monkeypatch.setattr(sample_module, "sample_groups", record)
    cfg = load_recipe(recipe, [*overrides, "solopo.generation.batch_size=4"])
    with pytest.raises(KeyboardInterrupt):
        sample_module.make_pairs(cfg, tmp_path / "run")
    tokenizer = load_tokenizer(cfg.model)
    dumped = read_jsonl(tmp_path / "prompts.jsonl")
    assert {d["context"] for d in dumped} == {"long"}
    assert sorted(fed) == sorted(
        (tokenizer(d["prompt"], add_special_tokens=False)["input_ids"], d["n"]) for d in dumped
    )


# RL on the server: the adapter swap, the mismatch metric, full fine-tuning refused, a death and the resume


@pytest.fixture(scope="module")
def rl_data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rl-data") / "train.jsonl"
    write_records(path, generate(8, seed=4, sets=(1,), tasks=["comparison", "chain_of_reasoning"]))
    return path


def rl_overrides(tmp_path: Path, model_dir: str, data: Path, base_url: str, *more: str) -> list[str]:
    return [
        f"model.source={model_dir}",
        "model.device=cpu",
        f"rl.data={data}",
        "rl.sets=[1]",
        "rl.group_size=4",
        "rl.prompts_per_round=2",
        "rl.generation.max_new_tokens=6",
        "rl.reward.overlong_buffer=0",
        "rl.dynamic_sampling=false",
        "rl.mini_batches=1",
        "rl.phases=[{max_input_tokens: 4000, steps: 3}]",
        "rl.generation.backend=server",
        f"rl.generation.server.base_url={base_url}",
        "rl.generation.server.max_retries=0",
        "train.lr=5.0e-2",
        "train.checkpoint_every=1",
        "train.keep_last=10",
        f"output_dir={tmp_path}",
        *more,
    ]


def reward_by_text_length(predictions, records, cfg, judge=None):
    """A reward spread the fake server's answers earn: (length of the text mod 3) / 2."""
    from repro.l1.rewards import RewardResult

    return [RewardResult(rule=len(p) % 3 / 2, judge=None, total=len(p) % 3 / 2) for p in predictions]


def rl_rows(run_dir: Path) -> list[dict]:
    return read_jsonl(run_dir / "metrics.jsonl")


def test_rl_samples_the_base_model_then_each_new_adapter_loaded_once_before_the_next_round(
    vllm, tiny_model_dir, rl_data, tmp_path, monkeypatch
):
    """Three rounds of one update each. Round 1 samples the base model (fresh adapters: B = 0); before round 2
    the step-1 adapter is written and loaded; before round 3 step 2's, and step 1's unloaded. Never within a
    round: every completions request of a round names the same model."""
    monkeypatch.setattr(rollout, "hybrid_rewards", reward_by_text_length)
    server = vllm()
    recipe = load_recipe(
        REPO / "recipes" / "tiny" / "l1_rl.yaml", rl_overrides(tmp_path, tiny_model_dir, rl_data, server.base_url)
    )
    run = tmp_path / "run"
    assert run_rl(recipe, run, DistInfo()).steps == 3
    tag = adapter_tag(run / "served-adapters")
    assert server.paths() == [
        "completions", "completions",
        "load_lora_adapter",
        "completions", "completions",
        "load_lora_adapter", "unload_lora_adapter",
        "completions", "completions",
    ]  # fmt: skip
    admin = [body for path, body in server.requests if "lora" in path]
    assert admin == [
        {"lora_name": f"{tag}-step-1", "lora_path": str((run / "served-adapters" / "step-1").resolve())},
        {"lora_name": f"{tag}-step-2", "lora_path": str((run / "served-adapters" / "step-2").resolve())},
        {"lora_name": f"{tag}-step-1"},
    ]
    models = [b["model"] for b in server.completions()]
    assert models == [tiny_model_dir] * 2 + [f"{tag}-step-1"] * 2 + [f"{tag}-step-2"] * 2
    assert {(b["n"], b["temperature"], b["top_p"], b["max_tokens"]) for b in server.completions()} == {
        (4, 0.9, 0.95, 6)
    }
    # the served step-2 adapter holds the weights the trainer checkpointed at step 2; step 1's folder is gone
    assert sorted(p.name for p in (run / "served-adapters").iterdir()) == ["step-2"]
    served = load_file(run / "served-adapters" / "step-2" / "adapter_model.safetensors")
    trained = load_file(run / "checkpoints" / "step-000002" / "adapter.safetensors")
    assert len(served) == len(trained) > 0
    assert sorted(float(t.abs().sum()) for t in served.values()) == pytest.approx(
        sorted(float(t.abs().sum()) for t in trained.values()), rel=1e-6
    )
    assert any(float(t.abs().max()) > 0 for k, t in served.items() if "lora_B" in k)
    rows = rl_rows(run)
    assert all(r["server_logprob_gap"] > 0 and r["units"] > 0 for r in rows)


def test_several_updates_a_round_still_swap_once_before_the_next_round(
    vllm, tiny_model_dir, rl_data, tmp_path, monkeypatch
):
    monkeypatch.setattr(rollout, "hybrid_rewards", reward_by_text_length)
    server = vllm()
    overrides = rl_overrides(tmp_path, tiny_model_dir, rl_data, server.base_url, "rl.mini_batches=2")
    overrides += ["rl.phases=[{max_input_tokens: 4000, steps: 2}]"]
    recipe = load_recipe(REPO / "recipes" / "tiny" / "l1_rl.yaml", overrides)
    assert run_rl(recipe, tmp_path / "run", DistInfo()).steps == 4  # 2 rounds x 2 updates
    assert server.paths() == ["completions"] * 2 + ["load_lora_adapter"] + ["completions"] * 2
    assert server.requests[2][1]["lora_name"].endswith("-step-2")


def test_the_server_logprob_gap_by_hand_and_never_in_the_loss(tiny_model_dir, rl_data, tmp_path):
    """Trainer log-probs (old) against the server's, over the tokens the server reported:
    row 0: |-1.5 - -1| + |-2 - -2| + |-2 - -3| = 0.5 + 0 + 1 = 1.5 (3 tokens); row 1: none reported;
    row 2: |-0.25 - -0.5| = 0.25 (1 token, the padding after it not counted). Mean: 1.75 / 4 = 0.4375."""
    old = torch.tensor([[-1.0, -2.0, -3.0], [-1.0, -1.0, -1.0], [-0.5, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True], [True, True, False], [True, False, False]])
    server = [torch.tensor([-1.5, -2.0, -2.0]), None, torch.tensor([-0.25])]
    assert server_logprob_gap(server, old, mask) == pytest.approx(0.4375)
    assert server_logprob_gap([None, None, None], old, mask) is None

    recipe = load_recipe(
        REPO / "recipes" / "tiny" / "l1_rl.yaml",
        rl_overrides(tmp_path, tiny_model_dir, rl_data, "http://127.0.0.1:9/v1", "rl.generation.backend=local"),
    )
    torch.manual_seed(0)
    loaded = load_model(recipe.model)
    source = RlSource(recipe, loaded.tokenizer, read_records(rl_data).records[:1], None)
    prompt = next(iter(source.prompts.values()))
    responses = [torch.tensor([5, 6, 7]), torch.tensor([8])]
    batch = {
        "prompt": prompt,
        "responses": responses,
        "advantages": torch.tensor([1.0, -1.0]),
        "old_logp": [torch.tensor([-7.0, -7.5, -8.0]), torch.tensor([-6.0])],
        "temperature": 0.9,
    }
    plain = source.loss(loaded.model, batch)
    with_server = source.loss(loaded.model, {**batch, "server_logp": [torch.tensor([-7.5, -7.5, -7.0]), None]})
    # the server's numbers never enter the loss
    assert float(with_server.loss_sum.detach()) == float(plain.loss_sum.detach())
    assert with_server.metrics["server_logprob_gap"] == pytest.approx((0.5 + 0.0 + 1.0) / 3)
    assert "server_logprob_gap" not in plain.metrics


def test_full_fine_tuning_with_a_server_is_refused_in_one_line(tiny_model_dir, rl_data, tmp_path, capsys):
    recipe = str(REPO / "recipes" / "tiny" / "l1_rl.yaml")
    overrides = rl_overrides(tmp_path, tiny_model_dir, rl_data, "http://127.0.0.1:9/v1", "model.lora.enabled=false")
    with pytest.raises(ConfigError, match="needs model.lora.enabled=true: the server samples from the policy's LoRA"):
        run_rl(load_recipe(recipe, overrides), tmp_path / "run", DistInfo())
    with pytest.raises(SystemExit) as exit_info:
        main(["l1", "rl", recipe, *overrides, "--out", str(tmp_path / "cli")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("repro: error:") == 1 and "full fine-tuning" in err
    assert not (tmp_path / "cli" / "checkpoints").exists()


def test_an_rl_server_that_dies_mid_round_fails_in_one_line_and_resume_continues_from_the_checkpoint(
    vllm, tiny_model_dir, rl_data, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(rollout, "hybrid_rewards", reward_by_text_length)
    server = vllm(die_after=3)  # round 1's two prompts, then round 2's first: its second never comes back
    recipe = str(REPO / "recipes" / "tiny" / "l1_rl.yaml")
    args = ["l1", "rl", recipe, *rl_overrides(tmp_path, tiny_model_dir, rl_data, server.base_url)]
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--out", str(run)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("repro: error:") == 1
    last = err.splitlines()[-1]
    assert last.startswith("repro: error: 1 of 2 generation requests failed (first: endpoint down: ")
    assert "/v1/completions failed 1 attempt" in last
    assert last.endswith(
        f"; RL round 2 stopped, the run keeps its last checkpoint: run again with --resume --out {run} to "
        "continue from it"
    )
    assert [r["step"] for r in rl_rows(run)] == [1]
    tag = adapter_tag(run / "served-adapters")

    server.die_after, before = None, len(server.requests)  # the server is back
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--out", str(run), "--resume"])
    assert exit_info.value.code in (0, None)
    assert [r["step"] for r in rl_rows(run)] == [1, 2, 3]
    after = server.requests[before:]
    # from the step-1 checkpoint: the name a dead server might still hold is unloaded first, then loaded again
    assert [(p.removeprefix("/v1/"), b.get("lora_name", b.get("model"))) for p, b in after] == [
        ("unload_lora_adapter", f"{tag}-step-1"),
        ("load_lora_adapter", f"{tag}-step-1"),
        ("completions", f"{tag}-step-1"),
        ("completions", f"{tag}-step-1"),
        ("load_lora_adapter", f"{tag}-step-2"),
        ("unload_lora_adapter", f"{tag}-step-1"),
        ("completions", f"{tag}-step-2"),
        ("completions", f"{tag}-step-2"),
    ]


def test_a_server_without_runtime_lora_says_how_to_start_it(vllm, tmp_path, tiny_model_dir):
    server = vllm()
    server.lora_status = 404
    loaded = load_model(load_recipe(REPO / "recipes" / "tiny" / "base.yaml", [f"model.source={tiny_model_dir}"]).model)
    with torch.no_grad():  # adapters that moved: there is something to load
        next(p for n, p in loaded.model.named_parameters() if "lora_B" in n).fill_(0.01)
    adapters = ServedAdapters(CompletionsClient(ServerSection(base_url=server.base_url)), "base", tmp_path / "served")
    with pytest.raises(EndpointError) as info:
        adapters.serving(loaded.model, 1)
    message = str(info.value)
    assert "load_lora_adapter answered HTTP 404" in message and "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True" in message
    assert not isinstance(info.value, EndpointDown)
    assert (tmp_path / "served" / "step-1" / "adapter_config.json").is_file()  # written whole before the ask


def test_resuming_may_reach_the_server_elsewhere_but_not_sample_another_model(tmp_path):
    from repro.config import recipe_to_yaml

    recipe_file = REPO / "recipes" / "tiny" / "l1_rl.yaml"
    first = load_recipe(recipe_file, ["rl.generation.server.base_url=http://a:1/v1", "rl.generation.server.model=m"])
    (tmp_path / "recipe.yaml").write_text(recipe_to_yaml(first))
    elsewhere = ["rl.generation.server.base_url=http://b:2/v1", "rl.generation.server.concurrency=3"]
    check_resume_plan(tmp_path, load_recipe(recipe_file, [*elsewhere, "rl.generation.server.model=m"]), ("rl",))
    with pytest.raises(ReproError) as info:
        check_resume_plan(tmp_path, load_recipe(recipe_file, elsewhere), ("rl",))
    assert "the recipe changes the run's plan: rl.generation.server.model ('m' -> '')" in str(info.value)
    assert "base_url" not in str(info.value)


def test_dump_prompts_to_a_folder_or_with_predictions_is_one_line(tmp_path, eval_data, tiny_model_dir, capsys):
    recipe_file = eval_recipe_file(tmp_path, eval_data, tiny_model_dir, "http://127.0.0.1:9/v1")
    for extra, said in (
        (["--dump-prompts", str(tmp_path)], f"--dump-prompts {tmp_path}: is a folder; name a file"),
        (["--dump-prompts", str(tmp_path / "p.jsonl"), "--predictions", "x.jsonl"], "give it without --predictions"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(["eval", "loong", str(recipe_file), *extra])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and err.count("\n") == 1 and said in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "p.jsonl").exists()


def test_run_folders_keep_no_server_credentials():
    from repro.config import recipe_to_yaml

    url = "http://alice:s3cret@127.0.0.1:8000/v1"
    overrides = [f"{stage}.generation.server.base_url={url}" for stage in ("eval", "rl", "solopo")]
    text = recipe_to_yaml(load_recipe(REPO / "recipes" / "tiny" / "solopo.yaml", overrides[::2]))
    text += recipe_to_yaml(load_recipe(REPO / "recipes" / "tiny" / "l1_rl.yaml", overrides[1:2]))
    assert "s3cret" not in text and "alice" not in text
    assert text.count("base_url: http://127.0.0.1:8000/v1") == 6  # eval, rl, solopo in each recipe
