"""ChatClient on a local OpenAI-style server (retries, timeouts, 400, auth, ordering); redaction helpers; bad URLs."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from repro.errors import ConfigError, ReproError
from repro.loong.llm_client import ChatClient, EndpointDown, EndpointError
from repro.redact import printable_excerpt, redact_secrets, redact_url

SECRET = "sk-test-0123456789abcdef"


class FakeServer:
    """Answers each POST by the next scripted action, then with an echo of the last user message.

    Actions: ("status", code) replies with that HTTP status; ("hang",) waits (until stop) without answering;
    ("echo", delay_s) echoes after a delay.
    """

    def __init__(self, script=()):
        self.script = list(script)
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.active = 0
        self.max_active = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    action = server.script.pop(0) if server.script else ("echo", 0.0)
                    server.active += 1
                    server.max_active = max(server.max_active, server.active)
                try:
                    reply = self._act(action, body)
                finally:
                    # counted out before the reply is written: once the client has it, it may send the next
                    # request at once, and that one must not find this one still counted
                    with server.lock:
                        server.active -= 1
                if reply is not None:
                    self._send(*reply)

            def _act(self, action, body):
                if action[0] == "hang":
                    server.stopping.wait(5.0)
                    return None
                if action[0] == "status":
                    return action[1], {"error": {"message": f"scripted {action[1]}"}}
                time.sleep(action[1])
                content = body["messages"][-1]["content"]
                return 200, {"choices": [{"message": {"role": "assistant", "content": f"echo {content}"}}]}

            def _send(self, code, obj):
                data = json.dumps(obj).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (timeout) before the reply

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def serve(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    servers = []

    def start(script=()):
        servers.append(FakeServer(script))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def _client(server, sleeps=None, **kw):
    kw.setdefault("timeout_s", 2.0)
    sleep = sleeps.append if sleeps is not None else (lambda s: None)
    return ChatClient(server.base_url, "judge-model", sleep=sleep, **kw)


def _chat(text):
    return [{"role": "user", "content": text}]


def test_success_sends_openai_request(serve):
    server = serve()
    assert _client(server).complete(_chat("hi")) == "echo hi"
    (req,) = server.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["body"] == {"model": "judge-model", "messages": _chat("hi"), "temperature": 0.0, "max_tokens": 512}
    assert "Authorization" not in req["headers"]


def test_500_then_success_is_retried(serve):
    server = serve([("status", 500)])
    sleeps: list[float] = []
    assert _client(server, sleeps, backoff_s=0.5).complete(_chat("x")) == "echo x"
    assert len(server.requests) == 2
    assert sleeps == [0.5]


def test_429_is_retried_with_exponential_backoff(serve):
    server = serve([("status", 429), ("status", 503), ("status", 502)])
    sleeps: list[float] = []
    assert _client(server, sleeps, backoff_s=1.0).complete(_chat("x")) == "echo x"
    assert len(server.requests) == 4
    assert sleeps == [1.0, 2.0, 4.0]


def test_timeout_then_success(serve):
    server = serve([("hang",)])
    assert _client(server, timeout_s=0.2, max_retries=2).complete(_chat("x")) == "echo x"
    assert len(server.requests) == 2


def test_all_timeouts_raise_endpoint_down(serve):
    server = serve([("hang",)] * 3)
    client = _client(server, timeout_s=0.2, max_retries=2)
    with pytest.raises(EndpointDown) as info:
        client.complete(_chat("x"))
    message = str(info.value)
    assert "\n" not in message
    assert server.base_url in message and "3 attempts" in message and "timed out" in message
    assert len(server.requests) == 3
    assert isinstance(info.value, ReproError)


def test_all_5xx_raise_endpoint_down_with_status(serve):
    server = serve([("status", 503)] * 2)
    with pytest.raises(EndpointDown, match=r"2 attempts \(last: HTTP 503\)"):
        _client(server, max_retries=1).complete(_chat("x"))


def test_400_is_not_retried(serve):
    server = serve([("status", 400)])
    sleeps: list[float] = []
    with pytest.raises(EndpointError, match="HTTP 400") as info:
        _client(server, sleeps).complete(_chat("x"))
    assert not isinstance(info.value, EndpointDown)
    assert len(server.requests) == 1 and sleeps == []


def test_connection_refused_is_endpoint_down(serve):
    server = serve()
    server.stop()
    sleeps: list[float] = []
    with pytest.raises(EndpointDown, match="2 attempts"):
        _client(server, sleeps, max_retries=1).complete(_chat("x"))
    assert sleeps == [1.0]


def test_authorization_header_and_key_never_shown(serve, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", SECRET)
    server = serve([("status", 500), ("status", 500)])
    client = _client(server, api_key_env="JUDGE_KEY", max_retries=1)
    assert SECRET not in repr(client) and "JUDGE_KEY" in repr(client)
    with pytest.raises(EndpointDown) as info:
        client.complete(_chat("x"))
    assert SECRET not in str(info.value)
    assert all(req["headers"]["Authorization"] == f"Bearer {SECRET}" for req in server.requests)
    assert client.complete(_chat("ok")) == "echo ok"


def test_missing_key_names_the_variable(serve, monkeypatch):
    monkeypatch.delenv("JUDGE_KEY_UNSET", raising=False)
    server = serve()
    client = _client(server, api_key_env="JUDGE_KEY_UNSET")
    with pytest.raises(ReproError, match="JUDGE_KEY_UNSET"):
        client.complete(_chat("x"))
    with pytest.raises(ReproError, match="JUDGE_KEY_UNSET"):
        client.complete_many([_chat("x")])
    assert server.requests == []


def test_key_with_a_trailing_newline_works_and_a_bad_key_is_not_shown(serve, monkeypatch):
    server = serve()
    monkeypatch.setenv("JUDGE_KEY", SECRET + "\n")
    assert _client(server, api_key_env="JUDGE_KEY").complete(_chat("x")) == "echo x"
    assert server.requests[0]["headers"]["Authorization"] == f"Bearer {SECRET}"
    monkeypatch.setenv("JUDGE_KEY", "sk-\x1b[2J" + SECRET)
    with pytest.raises(ReproError, match="JUDGE_KEY holds spaces, control or non-ASCII characters") as info:
        _client(server, api_key_env="JUDGE_KEY").complete(_chat("x"))
    assert SECRET not in str(info.value) and len(server.requests) == 1


def test_complete_many_keeps_order_with_concurrency(serve):
    n = 8
    # Later inputs answer sooner, so completion order differs from input order.
    server = serve([("echo", 0.02 * (n - i)) for i in range(n)])
    client = _client(server, concurrency=4)
    seen: list[tuple[int, str]] = []
    batch = [_chat(str(i)) for i in range(n)]
    results = client.complete_many(batch, on_result=lambda i, r: seen.append((i, r)))
    # The server assigns actions in arrival order, so only the echoed text is checked against the input.
    assert results == [f"echo {i}" for i in range(n)]
    assert sorted(seen) == [(i, f"echo {i}") for i in range(n)]
    assert 1 < server.max_active <= 4


def test_complete_many_returns_exceptions_in_place(serve):
    server = serve([("status", 400)])
    results = _client(server, concurrency=1).complete_many([_chat("a"), _chat("b")])
    assert isinstance(results[0], EndpointError)
    assert results[1] == "echo b"


def test_redaction_helpers():
    assert redact_url("https://me:pw@example.org:8443/v1?q=a@b") == "https://example.org:8443/v1?q=a@b"
    assert redact_url("me:pw@example.org/v1") == "example.org/v1"
    assert redact_url("https://example.org/@team/v1") == "https://example.org/@team/v1"
    assert redact_secrets("k=abc, kk=abcabc", ["abc", "abcabc", ""]) == "k=***, kk=***"
    assert printable_excerpt(b"a\x00b\x1b[2J\n\n c\xff") == "a\\x00b\\x1b[2J c\ufffd"
    assert printable_excerpt("x\u202ey\ud800") == "x\\u202ey\\ud800"
    assert printable_excerpt("\x00" * 10, limit=9) == "\\x00\\x00…"
    assert printable_excerpt("abcdef", limit=6) == "abcdef" and printable_excerpt("abcdefg", limit=6) == "abcde…"


@pytest.mark.parametrize(
    "url, said",
    [
        ("http://judge:hunter/2@127.0.0.1:1/v1", "does not parse"),  # unencoded "/": "hunter" lands in the port
        ("ftp://judge:hunter2@127.0.0.1/v1", "'ftp://127.0.0.1/v1'"),
        ("http://judge:hunter2@127.0.0.1/v1\x1b[2J", "\\x1b[2J"),
    ],
)
def test_bad_base_urls_are_refused_without_their_credentials(url, said):
    with pytest.raises(ConfigError) as info:
        ChatClient(url, "judge")
    message = str(info.value)
    assert said in message and "hunter" not in message and not any(ch in message for ch in "\n\x00\x1b")
