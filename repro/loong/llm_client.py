"""The kit's one HTTP client (stdlib only): OpenAI-compatible endpoints, with deadlines, retries and a thread pool."""

from __future__ import annotations

import base64
import functools
import http.client
import io
import json
import os
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, TypeVar

from repro.errors import ConfigError, ReproError
from repro.redact import printable_excerpt, redact_secrets, redact_url

Messages = list[dict[str, str]]
T = TypeVar("T")

MAX_REPLY_BYTES = 16 * 2**20
# Of a reply that is shown only as an excerpt: enough to find and redact a secret near its start.
DETAIL_BYTES = 64 * 2**10


class EndpointError(ReproError):
    """The endpoint refused a request: a 4xx other than 429, or a redirect (not followed)."""


class EndpointDown(EndpointError):
    """Every attempt failed: connection error, timeout, HTTP 429 or 5xx, or a reply that is not a chat completion."""


class BadReply(Exception):
    """A 2xx reply that cannot be read as what was asked (a chat completion, a text completion); retried like a
    5xx."""

    def __init__(self, raw: bytes, what: str = "answered something that is not a chat completion") -> None:
        super().__init__(what)
        self.raw = raw
        self.what = what


# Transport: one deadline for connect, TLS handshake, sending the request and reading the whole reply.


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    return left


class _DeadlineReader(io.RawIOBase):
    """A socket's reading side: each read may wait only for the time left until the deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        # The socket's own file object keeps the socket open until this closes, as http.client expects.
        self._raw = sock.makefile("rb", buffering=0)
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        self._sock.settimeout(_remaining(self._deadline))
        return self._raw.readinto(buffer)

    def close(self) -> None:
        self._raw.close()
        super().close()


class _DeadlineSocket:
    """A connected socket whose sends and reads all end by one deadline (per-call timeouts alone let a trickle run)."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self._deadline = deadline

    def sendall(self, data: Any) -> None:
        view = memoryview(data).cast("B")
        while view:
            self._sock.settimeout(_remaining(self._deadline))
            view = view[self._sock.send(view) :]

    def makefile(self, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if mode != "rb":
            return self._sock.makefile(mode, *args, **kwargs)
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _DeadlineTLS:
    """An SSLContext whose handshakes get the time left until the deadline (CPython bounds a whole handshake)."""

    def __init__(self, context: ssl.SSLContext, deadline: float) -> None:
        self._context = context
        self._deadline = deadline

    def wrap_socket(self, sock: socket.socket, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        sock.settimeout(_remaining(self._deadline))
        return self._context.wrap_socket(sock, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


class _DeadlineHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: Any, deadline: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline = deadline

    def connect(self) -> None:
        self.timeout = _remaining(self._deadline)
        super().connect()
        self.sock = _DeadlineSocket(self.sock, self._deadline)


class _DeadlineHTTPSConnection(_DeadlineHTTPConnection, http.client.HTTPSConnection):
    def __init__(self, *args: Any, deadline: float, context: ssl.SSLContext, **kwargs: Any) -> None:
        super().__init__(*args, deadline=deadline, context=_DeadlineTLS(context, deadline), **kwargs)


class _DeadlineHandler(urllib.request.HTTPHandler, urllib.request.HTTPSHandler):
    """Opens http:// and https:// requests on connections that end by the deadline."""

    def __init__(self, deadline: float, tls: ssl.SSLContext | None) -> None:
        super().__init__()
        self._deadline = deadline
        self._tls = tls

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_DeadlineHTTPConnection, deadline=self._deadline), req)

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        tls = self._tls or ssl.create_default_context()
        return self.do_open(functools.partial(_DeadlineHTTPSConnection, deadline=self._deadline, context=tls), req)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect becomes an HTTPError: following it would resend the Authorization header to another address."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _read_capped(response: Any, cap: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := response.read(64 * 2**10):
        chunks.append(chunk)
        size += len(chunk)
        if size > cap:
            raise BadReply(b"".join(chunks)[:DETAIL_BYTES], f"answered more than {cap} bytes")
    return b"".join(chunks)


def _content(raw: bytes) -> str:
    try:
        content = json.loads(raw)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError, RecursionError):
        # ValueError covers bad JSON and bad UTF-8; RecursionError a hostile nesting depth.
        raise BadReply(raw[:DETAIL_BYTES]) from None
    return content if isinstance(content, str) else ""


def _describe(exc: BaseException) -> str:
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, TimeoutError):
        return "timed out"
    if isinstance(reason, str):
        return reason
    return f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__


class EndpointClient:
    """POSTs JSON to paths under base_url; the API key is read from `api_key_env` at call time and never stored.

    Each attempt must finish (connect, send, whole reply) within timeout_s. Attempts = 1 + max_retries. After
    failed attempt i (from 0) it sleeps backoff_s * 2**i, or longer when a 429 names a Retry-After of up to 60 s.
    `sleep` is injectable for tests. The key and any user:password@ of base_url (sent as Basic auth) are
    replaced by *** in replies and in error messages; error messages are one line with control bytes escaped.
    `label` names the recipe section in messages about the set-up (e.g. "judge", "generation.server").
    """

    def __init__(
        self,
        base_url: str,
        api_key_env: str | None = None,
        timeout_s: float = 60,
        max_retries: int = 4,
        backoff_s: float = 1.0,
        concurrency: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        label: str = "judge",
    ) -> None:
        parts = _split_base_url(base_url, label)
        if timeout_s <= 0 or max_retries < 0 or backoff_s < 0 or concurrency < 1:
            raise ConfigError(f"{label} client needs timeout_s > 0, max_retries >= 0, backoff_s >= 0, concurrency >= 1")
        self._basic: str | None = None
        self._url_secrets: list[str] = []
        if "@" in parts.netloc:
            if api_key_env:
                raise ConfigError(
                    f"{label} base_url has user:password@ and api_key_env is set; both would be the Authorization "
                    "header, so keep only one"
                )
            self._basic, self._url_secrets = _basic_auth(parts.netloc.rsplit("@", 1)[0])
        self.base_url = redact_url(base_url).rstrip("/")
        self.url = self.base_url
        self.api_key_env = api_key_env
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.concurrency = concurrency
        self._sleep = sleep
        self._tls: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self._tls = ssl.create_default_context()
            self._tls.set_alpn_protocols(["http/1.1"])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, api_key_env={self.api_key_env!r}, "
            f"concurrency={self.concurrency})"
        )

    def check_key(self) -> None:
        """Fail now, with one line, if the key variable is named but unset or unusable."""
        self._key()

    def _key(self) -> str | None:
        if not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env, "").strip()  # a trailing newline from a key file is an easy slip
        if not key:
            raise ReproError(
                f"environment variable {self.api_key_env} is not set or empty; set it to the API key for {self.url}"
            )
        if not (key.isascii() and key.isprintable()) or " " in key:
            # http.client would refuse the header with the key in its message, so stop here without showing it.
            raise ReproError(
                f"environment variable {self.api_key_env} holds spaces, control or non-ASCII characters; "
                "set it to the API key alone"
            )
        return key

    def _shown(self, raw: bytes | str, secrets: Iterable[str]) -> str:
        """An excerpt for a message: secrets redacted before cutting, so no part of one is left."""
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        return printable_excerpt(redact_secrets(text, secrets))

    def _fail(self, cls: type[EndpointError], message: str, secrets: Iterable[str]) -> EndpointError:
        return cls(printable_excerpt(redact_secrets(message, secrets), 1000))

    def redact(self, text: str) -> str:
        """`text` with the key and any URL credentials replaced by ***."""
        return redact_secrets(text, [self._key() or "", *self._url_secrets])

    def post(self, path: str, payload: Any, parse: Callable[[bytes], T]) -> T:
        """POST `payload` as JSON to {base_url}{path}; `parse(reply bytes)` (raising BadReply) makes the result.

        Raises EndpointError (a 4xx other than 429, or a redirect: not retried) or EndpointDown (every attempt
        failed). A parsed result's strings are the caller's to redact (see `redact`).
        """
        url = self.base_url + path
        key = self._key()
        secrets = [key or "", *self._url_secrets]
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        elif self._basic:
            headers["Authorization"] = f"Basic {self._basic}"
        body = json.dumps(payload).encode("utf-8")
        attempts = self.max_retries + 1
        last = ""
        for attempt in range(attempts):
            wait = self.backoff_s * 2**attempt
            try:
                return self._attempt(url, body, headers, time.monotonic() + self.timeout_s, parse)
            except urllib.error.HTTPError as exc:
                if exc.code != 429 and exc.code < 500:
                    detail = self._shown(_read_detail(exc), secrets)
                    hint = " (redirects are not followed: put the final address in base_url)" if exc.code < 400 else ""
                    message = f"{url} answered HTTP {exc.code}{hint}: {detail}"
                    raise self._fail(EndpointError, message, secrets) from None
                exc.close()
                last = f"HTTP {exc.code}"
                retry_after = exc.headers.get("Retry-After", "") if exc.headers else ""
                if exc.code == 429 and retry_after.strip().isdigit():
                    wait = max(wait, min(float(retry_after), 60.0))
            except BadReply as exc:
                last = f"{exc.what}: {self._shown(exc.raw, secrets)}"
            except (OSError, http.client.HTTPException) as exc:
                # URLError, timeouts, refused or reset connections, and a server that hangs up mid-answer.
                last = self._shown(_describe(exc), secrets)
            if attempt < attempts - 1:
                self._sleep(wait)
        tries = f"{attempts} attempt" + ("s" if attempts > 1 else "")
        raise self._fail(EndpointDown, f"endpoint down: {url} failed {tries} (last: {last})", secrets)

    def _attempt(
        self, url: str, body: bytes, headers: dict[str, str], deadline: float, parse: Callable[[bytes], T]
    ) -> T:
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        opener = urllib.request.build_opener(_DeadlineHandler(deadline, self._tls), _NoRedirects())
        with opener.open(request, timeout=_remaining(deadline)) as response:
            raw = _read_capped(response, MAX_REPLY_BYTES)
        return parse(raw)

    def map_concurrent(
        self,
        call: Callable[[Any], T],
        items: Sequence[Any],
        on_result: Callable[[int, T | Exception], None] | None = None,
        noun: str = "requests",
    ) -> list[T | Exception]:
        """call(item) for each item on `concurrency` threads; results (or the exception) in input order.

        `on_result(index, result)` runs in the calling thread once per item as each one finishes, so it may append
        to a file. A failed item does not stop the others. Only when max(concurrency, 3) items in a row have failed
        does the endpoint count as down: items not started yet are then not sent, and get an EndpointDown saying so.
        """
        if not items:
            return []
        self._key()  # a missing key fails once, here, rather than once per item
        give_up_after = max(self.concurrency, 3)
        results: list[T | Exception] = [ReproError("not run")] * len(items)
        failed_in_a_row = 0
        first_failure: Exception | None = None
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(items)), thread_name_prefix="endpoint")
        try:
            futures = {pool.submit(call, item): i for i, item in enumerate(items)}
            for future in as_completed(futures):
                i = futures[future]
                if future.cancelled():
                    result: T | Exception = EndpointDown(
                        f"not sent: {give_up_after} {noun} in a row failed before it (first: {first_failure})"
                    )
                else:
                    try:
                        result = future.result()
                    except Exception as exc:
                        result = exc
                    if isinstance(result, Exception):
                        first_failure = first_failure or result
                        failed_in_a_row += 1
                        if failed_in_a_row == give_up_after:
                            for pending in futures:
                                pending.cancel()
                    else:
                        failed_in_a_row = 0
                results[i] = result
                if on_result is not None:
                    on_result(i, result)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return results


class ChatClient(EndpointClient):
    """POSTs {base_url}/chat/completions at a fixed temperature and max_tokens (see EndpointClient)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str | None = None,
        timeout_s: float = 60,
        max_retries: int = 4,
        backoff_s: float = 1.0,
        concurrency: int = 4,
        temperature: float = 0.0,
        max_tokens: int = 512,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        _split_base_url(base_url, "judge")
        if timeout_s <= 0 or max_retries < 0 or backoff_s < 0 or concurrency < 1 or max_tokens < 1:
            raise ConfigError(
                "judge client needs timeout_s > 0, max_retries >= 0, backoff_s >= 0, concurrency >= 1, max_tokens >= 1"
            )
        super().__init__(base_url, api_key_env, timeout_s, max_retries, backoff_s, concurrency, sleep, "judge")
        self.url = self.base_url + "/chat/completions"
        self.model = model
        self.temperature = temperature
        self.max_tokens = max_tokens

    def __repr__(self) -> str:
        return (
            f"ChatClient(base_url={self.base_url!r}, model={self.model!r}, "
            f"api_key_env={self.api_key_env!r}, concurrency={self.concurrency})"
        )

    def complete(self, messages: Messages) -> str:
        """The assistant's reply text for one chat, secrets redacted; raises EndpointError / EndpointDown."""
        payload = {
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        return self.redact(self.post("/chat/completions", payload, _content))

    def complete_many(
        self,
        batch: Sequence[Messages],
        on_result: Callable[[int, str | Exception], None] | None = None,
    ) -> list[str | Exception]:
        """complete() for each chat on `concurrency` threads; results (or the exception) in input order.

        `on_result(index, result)` runs in the calling thread once per chat as each one finishes, so it may append
        to a file. A failed chat does not stop the others. Only when max(concurrency, 3) chats in a row have failed
        does the endpoint count as down: chats not started yet are then not sent, and get an EndpointDown saying so.
        """
        return self.map_concurrent(self.complete, batch, on_result, noun="chats")


def _split_base_url(base_url: str, label: str = "judge") -> urllib.parse.SplitResult:
    """The parsed base_url, or a ConfigError that shows no part of a user:password@."""
    shown = printable_excerpt(redact_url(base_url), 300)
    if any(ch.isspace() or not ch.isprintable() for ch in base_url):
        raise ConfigError(f"{label} base_url contains spaces or control characters: '{shown}'")
    try:
        parts = urllib.parse.urlsplit(base_url)
        _port = parts.port  # raises ValueError when the port is not a number
    except ValueError:
        # An unencoded "/" or "#" in a password leaves part of it where the host or port should be: show none of it.
        raise ConfigError(
            f"{label} base_url has a host or port that does not parse (percent-encode a password)"
        ) from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"{label} base_url must start with http:// or https://, got '{shown}'")
    if not parts.hostname:
        raise ConfigError(f"{label} base_url names no host: '{shown}'")
    return parts


def _basic_auth(userinfo: str) -> tuple[str, list[str]]:
    """The Basic auth token for a URL's user:password part, and every form of it a reply or message could echo."""
    user, _, password = userinfo.partition(":")
    plain_user, plain_password = urllib.parse.unquote(user), urllib.parse.unquote(password)
    token = base64.b64encode(f"{plain_user}:{plain_password}".encode()).decode("ascii")
    secrets = [userinfo, urllib.parse.unquote(userinfo), f"{plain_user}:{plain_password}", token]
    secrets += [password, plain_password] if password else [user, plain_user]
    return token, secrets


def _read_detail(exc: urllib.error.HTTPError) -> bytes:
    try:
        return exc.read(DETAIL_BYTES)
    except (OSError, http.client.HTTPException):
        return b""
    finally:
        exc.close()


def judge_client(cfg: Any) -> ChatClient:
    """The client a recipe's `eval.llm_judge` section describes (backend openai), at temperature 0."""
    return ChatClient(
        cfg.base_url,
        cfg.model,
        api_key_env=cfg.api_key_env,
        timeout_s=cfg.timeout_s,
        max_retries=cfg.max_retries,
        concurrency=cfg.concurrency,
        temperature=0.0,
        max_tokens=cfg.max_new_tokens,
    )
