"""A hostile judge endpoint on 127.0.0.1: echoed secrets, trickled replies, garbage, control bytes, partial failures."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from repro.cli import main
from repro.config import load_recipe
from repro.data.loong_mini import generate
from repro.data.schema import write_records
from repro.errors import ConfigError
from repro.loong import llm_client
from repro.loong.eval import run_eval
from repro.loong.llm_client import ChatClient, EndpointDown, EndpointError

SECRET = "sk-hostile-0123456789abcdef"
NASTY = b"\x00\x1b[2J\x1b]0;pwned\x07"  # NUL, clear-screen, set-window-title


class Handler(BaseHTTPRequestHandler):
    """Hands each POST to the endpoint's behaviour; helpers for the usual replies."""

    endpoint: Endpoint

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        with self.endpoint.lock:
            n = len(self.endpoint.requests)
            self.endpoint.requests.append(dict(self.headers))
        with contextlib.suppress(OSError):  # the client gave up first
            self.endpoint.behave(self, n)

    def body(self) -> dict:
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

    def send(self, code: int, data: bytes, length: int | None = None, **headers: str) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(data) if length is None else length))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def chat(self, content: str) -> None:
        self.send(200, json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode())

    def trickle(self, data: bytes, every_s: float = 0.2) -> None:
        for i in range(len(data)):
            if self.endpoint.stopping.wait(every_s):
                return
            self.wfile.write(data[i : i + 1])


class Endpoint:
    def __init__(self, behave: Callable[[Handler, int], None]) -> None:
        self.behave = behave
        self.requests: list[dict[str, str]] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        handler = type("BoundHandler", (Handler,), {"endpoint": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JUDGE_KEY", SECRET)
    endpoints: list[Endpoint] = []

    def start(behave: Callable[[Handler, int], None]) -> Endpoint:
        endpoints.append(Endpoint(behave))
        return endpoints[-1]

    yield start
    for endpoint in endpoints:
        endpoint.stop()


def client(endpoint: Endpoint, sleeps: list[float] | None = None, **kw) -> ChatClient:
    kw.setdefault("timeout_s", 2.0)
    kw.setdefault("api_key_env", "JUDGE_KEY")
    return ChatClient(
        kw.pop("base_url", endpoint.base_url), "judge", sleep=(sleeps if sleeps is not None else []).append, **kw
    )


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def assert_clean(message: str) -> None:
    assert SECRET not in message
    assert not any(ch in message for ch in "\n\r\x00\x1b\x07")


# Secrets echoed back are redacted; URL credentials are used, never shown


def test_a_reply_echoing_the_key_is_redacted(serve):
    endpoint = serve(lambda h, n: (h.body(), h.chat(f"you sent {h.headers['Authorization']}; Rating: [[70]]")))
    assert client(endpoint).complete(chat("x")) == "you sent Bearer ***; Rating: [[70]]"
    assert endpoint.requests[0]["Authorization"] == f"Bearer {SECRET}"


@pytest.mark.parametrize("code", [200, 503])
def test_an_error_echoing_the_key_is_redacted(serve, code):
    # 200: not a chat completion, 503: down (both retried); the key sits past the excerpt's cut too.
    def behave(h: Handler, n: int) -> None:
        h.body()
        h.send(code, f"key {h.headers['Authorization']} {'z' * 150} {SECRET}".encode())

    endpoint = serve(behave)
    with pytest.raises(EndpointError) as info:
        client(endpoint, max_retries=1).complete(chat("x"))
    assert_clean(str(info.value))
    assert len(endpoint.requests) == 2


def test_url_credentials_are_used_but_never_shown(serve):
    def behave(h: Handler, n: int) -> None:
        h.body()
        if n == 0:
            h.chat(f"auth {h.headers['Authorization']} pw p@ss/wd")
        else:
            h.send(400, b"you are alice:p%40ss%2Fwd, token YWxpY2U6cEBzcy93ZA==")

    endpoint = serve(behave)
    url = f"http://alice:p%40ss%2Fwd@127.0.0.1:{endpoint.port}/v1"
    judge = client(endpoint, base_url=url, api_key_env=None)
    assert judge.base_url == endpoint.base_url and "alice" not in repr(judge) and "p%40ss" not in repr(judge)
    assert judge.complete(chat("x")) == "auth Basic *** pw ***"
    assert endpoint.requests[0]["Authorization"] == "Basic YWxpY2U6cEBzcy93ZA=="  # base64 of alice:p@ss/wd
    with pytest.raises(EndpointError) as info:
        judge.complete(chat("y"))
    assert str(info.value) == f"{endpoint.base_url}/chat/completions answered HTTP 400: you are ***, token ***"
    with pytest.raises(ConfigError, match="keep only one") as info:
        client(endpoint, base_url=url)
    assert "p%40ss" not in str(info.value)


def test_a_redirect_is_not_followed(serve):
    elsewhere = serve(lambda h, n: (h.body(), h.chat("should not be asked")))
    endpoint = serve(lambda h, n: (h.body(), h.send(307, b"", Location=f"{elsewhere.base_url}/chat/completions")))
    with pytest.raises(EndpointError, match="HTTP 307 \\(redirects are not followed") as info:
        client(endpoint).complete(chat("x"))
    assert not isinstance(info.value, EndpointDown)
    assert (len(endpoint.requests), elsewhere.requests) == (1, [])


# One deadline per attempt: connect, send and the whole reply


@pytest.mark.parametrize(
    "behave, size",
    [
        pytest.param(lambda h, n: (h.body(), h.send(200, b"", length=1000), h.trickle(b"x" * 100)), 1, id="body"),
        pytest.param(
            lambda h, n: (h.body(), h.trickle(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")), 1, id="head"
        ),
        # the request body is never read, so the client's send blocks
        pytest.param(lambda h, n: h.endpoint.stopping.wait(5.0), 16 * 2**20, id="unread"),
    ],
)
def test_a_trickle_or_stall_ends_at_the_deadline(serve, behave, size):
    endpoint = serve(behave)
    started = time.monotonic()
    with pytest.raises(EndpointDown, match=r"failed 1 attempt \(last: timed out\)"):
        client(endpoint, timeout_s=1.0, max_retries=0).complete(chat("x" * size))
    assert 0.9 <= time.monotonic() - started < 1.5


def test_a_trickled_tls_handshake_ends_at_the_deadline(serve):
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5.0)

    def serve_tls_slowly() -> None:
        conn, _ = listener.accept()
        with conn, contextlib.suppress(OSError):  # until the client hangs up
            conn.recv(4096)  # the ClientHello
            conn.sendall(b"\x16\x03\x03\x00\x40")  # a handshake record of 64 bytes, then one byte at a time
            for _ in range(50):
                time.sleep(0.2)
                conn.sendall(b"\x00")

    thread = threading.Thread(target=serve_tls_slowly, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        judge = ChatClient(f"https://127.0.0.1:{listener.getsockname()[1]}/v1", "judge", timeout_s=1.0, max_retries=0)
        with pytest.raises(EndpointDown, match="timed out"):
            judge.complete(chat("x"))
        assert 0.9 <= time.monotonic() - started < 1.5
    finally:
        listener.close()
        thread.join(timeout=5)


def test_a_slow_reply_within_the_deadline_is_read_whole(serve):
    reply = json.dumps({"choices": [{"message": {"content": "ok"}}]}).encode()
    endpoint = serve(lambda h, n: (h.body(), h.send(200, b"", length=len(reply)), h.trickle(reply, 0.01)))
    assert client(endpoint, timeout_s=2.0, max_retries=0).complete(chat("x")) == "ok"


# Garbage is retried; raw bytes reach a message only escaped and cut


@pytest.mark.parametrize(
    "garbage",
    [
        b"<html>bad gateway</html>",
        b'{"error": "no choices"}',
        b'{"choices": []}',
        b"[" * 100_000,  # deeper than the JSON parser's recursion limit
        b"\xff\xfe\x00 not utf-8",
        b"",
        lambda h, n: h.send(200, b'{"choices": [', length=100),  # hangs up early
    ],
)
def test_garbage_then_a_valid_reply_is_retried(serve, garbage):
    def behave(h: Handler, n: int) -> None:
        h.body()
        if n > 0:
            h.chat("ok")
        elif callable(garbage):
            garbage(h, n)
        else:
            h.send(200, garbage)

    sleeps: list[float] = []
    endpoint = serve(behave)
    assert client(endpoint, sleeps, backoff_s=0.25).complete(chat("x")) == "ok"
    assert (len(endpoint.requests), sleeps) == (2, [0.25])


def test_garbage_on_every_attempt_is_endpoint_down_with_an_escaped_excerpt(serve):
    body = NASTY + f" Bearer {SECRET} ".encode() + b"y" * 300
    endpoint = serve(lambda h, n: (h.body(), h.send(200, body)))
    sleeps: list[float] = []
    with pytest.raises(EndpointDown) as info:
        client(endpoint, sleeps, backoff_s=0.1, max_retries=2).complete(chat("x"))
    message = str(info.value)
    shown = "\\x00\\x1b[2J\\x1b]0;pwned\\x07 Bearer *** "
    excerpt = shown + "y" * (199 - len(shown)) + "…"  # 200 characters at most, the last one the ellipsis
    assert message == (
        f"endpoint down: {endpoint.base_url}/chat/completions failed 3 attempts "
        f"(last: answered something that is not a chat completion: {excerpt})"
    )
    assert_clean(message)
    assert (len(endpoint.requests), sleeps) == (3, [0.1, 0.2])


def test_an_oversized_reply_is_not_held(serve, monkeypatch):
    monkeypatch.setattr(llm_client, "MAX_REPLY_BYTES", 1000)
    endpoint = serve(lambda h, n: (h.body(), h.chat("z" * 2000)))
    with pytest.raises(EndpointDown, match=r"last: answered more than 1000 bytes: \{"):
        client(endpoint, max_retries=0).complete(chat("x"))


def test_an_error_body_with_control_bytes_and_the_key_is_escaped_redacted_and_not_retried(serve):
    body = b'{"error":"bad' + NASTY + b"\n\nrequest from Bearer " + SECRET.encode() + b'"}'
    endpoint = serve(lambda h, n: (h.body(), h.send(400, body)))
    with pytest.raises(EndpointError) as info:
        client(endpoint).complete(chat("x"))
    assert not isinstance(info.value, EndpointDown)
    shown = '{"error":"bad\\x00\\x1b[2J\\x1b]0;pwned\\x07 request from Bearer ***"}'
    assert str(info.value) == f"{endpoint.base_url}/chat/completions answered HTTP 400: {shown}"
    assert len(endpoint.requests) == 1


def _by_content(h: Handler, n: int) -> None:
    """'bad' gets garbage every time, 'flaky' a 500 on its first request, the rest a rating after 50 ms."""
    text = h.body()["messages"][-1]["content"]
    with h.endpoint.lock:
        seen = sum(1 for r in h.endpoint.requests if r.get("X-Text") == text)
        h.endpoint.requests[n]["X-Text"] = text
    if "bad" in text:
        h.send(200, NASTY)
    elif "flaky" in text and seen == 0:
        h.send(500, b"oops")
    else:
        time.sleep(0.05)
        h.chat(f"{text}: Rating: [[70]]")


def test_complete_many_finishes_every_other_chat_when_one_fails(serve):
    endpoint = serve(_by_content)
    texts = ["bad", "a", "flaky", "b", "c", "d"]
    seen: list[int] = []
    results = client(endpoint, concurrency=2, max_retries=1).complete_many(
        [chat(t) for t in texts], on_result=lambda i, r: seen.append(i)
    )
    assert isinstance(results[0], EndpointDown) and "\\x1b[2J" in str(results[0])
    assert results[1:] == [f"{t}: Rating: [[70]]" for t in texts[1:]]
    assert sorted(seen) == list(range(6))
    assert len(endpoint.requests) == 2 + 2 + 4  # bad twice, flaky twice, the rest once


def test_complete_many_stops_sending_once_the_endpoint_looks_down(serve):
    endpoint = serve(lambda h, n: (h.body(), time.sleep(0.05), h.send(503, b"down")))
    results = client(endpoint, concurrency=2, max_retries=1).complete_many([chat(str(i)) for i in range(10)])
    assert all(isinstance(r, EndpointDown) for r in results)
    not_sent = sum("not sent: 3 chats in a row failed" in str(r) for r in results)
    assert not_sent >= 3
    assert len(endpoint.requests) == 2 * (10 - not_sent)


# Through `repro eval loong`


@pytest.fixture(scope="module")
def six_items(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("loong-mini") / "test.jsonl"
    write_records(path, generate(6, seed=5, split="test"))
    return path


def judge_files(tmp_path: Path, data: Path, base_url: str, poison: set[int], *judge: str) -> tuple[Path, Path]:
    """A recipe judged at `base_url` (no retries, 2 at a time), and predictions: "POISON" for the `poison` items."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"output_dir: {tmp_path / 'runs'}\neval:\n  data: {data}\n  judge: llm\n  llm_judge:\n    backend: openai\n"
        f"    model: judge\n    base_url: {base_url}\n    max_retries: 0\n    concurrency: 2\n"
        + "".join(f"    {line}\n" for line in judge)
    )
    ids = [json.loads(line)["id"] for line in data.read_text().splitlines()]
    preds = tmp_path / "p.jsonl"
    preds.write_text(
        "".join(
            json.dumps({"id": x, "prediction": "POISON" if i in poison else "fine"}) + "\n" for i, x in enumerate(ids)
        )
    )
    return recipe, preds


def test_eval_keeps_every_other_judgement_and_resumes_the_failed_one(serve, tmp_path, six_items):
    healthy = threading.Event()

    def behave(h: Handler, n: int) -> None:
        prompt = h.body()["messages"][-1]["content"]
        if "POISON" in prompt and not healthy.is_set():
            h.send(200, NASTY + h.headers["Authorization"].encode())
        else:
            time.sleep(0.05)  # the others are still in flight when the first one fails
            h.chat(f"Seen {h.headers['Authorization']}. Rating: [[70]]")

    endpoint = serve(behave)
    recipe_file, preds = judge_files(tmp_path, six_items, endpoint.base_url, {0}, "api_key_env: JUDGE_KEY")
    recipe, run = load_recipe(recipe_file), tmp_path / "run"
    with pytest.raises(EndpointDown) as info:
        run_eval(recipe, run, str(preds))
    message = str(info.value)
    assert message.startswith("1 of 6 judgements failed (first: endpoint down: ")
    assert message.endswith(
        f"; the 5 finished ones are kept in {run / 'judgements.jsonl'}; run again with --resume --out {run} "
        "to judge the rest"
    )
    assert_clean(message)
    text = (run / "judgements.jsonl").read_text()
    assert SECRET not in text
    judged = [json.loads(line) for line in text.splitlines()]
    assert sorted(j["id"] for j in judged) == [f"lm-test-5-00000{i}" for i in range(1, 6)]
    assert {(j["score"], j["rationale"]) for j in judged} == {(70, "Seen Bearer ***. Rating: [[70]]")}

    healthy.set()
    asked = len(endpoint.requests)
    metrics = run_eval(recipe, run, str(preds))
    assert (metrics["n"], metrics["avg_score"], len(endpoint.requests) - asked) == (6, 70.0, 1)


def test_cli_prints_one_clean_error_line_and_resume_finishes(serve, tmp_path, six_items, capsys):
    healthy = threading.Event()

    def behave(h: Handler, n: int) -> None:
        h.body()
        if healthy.is_set():
            h.chat("Rating: [[90]]")
        else:
            h.send(200, NASTY + f" {h.headers['Authorization']} p@ss/wd\n".encode())

    endpoint = serve(behave)
    url = f"http://alice:p%40ss%2Fwd@127.0.0.1:{endpoint.port}/v1"
    run = tmp_path / "run"
    recipe_file, preds = judge_files(tmp_path, six_items, url, set())
    args = ["eval", "loong", str(recipe_file), "--predictions", str(preds), "--out", str(run)]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    last = err.splitlines()[-1]
    assert (
        last.startswith("repro: error: 6 of 6 judgements failed (first: endpoint down: ")
        and err.count("repro: error:") == 1
    )
    assert "\\x1b[2J" in last and "--resume" in last
    assert_clean(last)
    for raw in ("p@ss/wd", "p%40ss", "YWxpY2U6cEBzcy93ZA==", "\x00", "\x1b[2J", "pwned\x07"):
        assert raw not in err  # nor in the log lines or the progress bar
    assert not (run / "judgements.jsonl").exists()

    healthy.set()
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--resume"])
    assert exit_info.value.code in (0, None)
    judged = [json.loads(line) for line in (run / "judgements.jsonl").read_text().splitlines()]
    assert len(judged) == 6 and {j["score"] for j in judged} == {90}
    assert endpoint.requests[-1]["Authorization"] == "Basic YWxpY2U6cEBzcy93ZA=="
