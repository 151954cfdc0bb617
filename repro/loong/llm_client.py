"""An OpenAI-compatible chat-completions client (stdlib only) with retries, backoff and a thread pool."""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed

from repro.errors import ConfigError, ReproError

Messages = list[dict[str, str]]


class EndpointError(ReproError):
    """The endpoint refused a request (a 4xx other than 429) or answered something that is not a chat completion."""


class EndpointDown(EndpointError):
    """Every attempt failed with a connection error, a timeout, HTTP 429 or a 5xx."""


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _safe_url(url: str) -> str:
    """The URL without any user:password@ part."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _describe(exc: BaseException) -> str:
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, TimeoutError):
        return "timed out"
    return _one_line(f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__)


class ChatClient:
    """POSTs {base_url}/chat/completions; the API key is read from `api_key_env` at call time and never stored.

    Attempts = 1 + max_retries. After failed attempt i (from 0) it sleeps backoff_s * 2**i, or longer when a
    429 names a Retry-After of up to 60 s. `sleep` is injectable for tests.
    """

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
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"judge base_url must start with http:// or https://, got {_safe_url(base_url)!r}")
        if timeout_s <= 0 or max_retries < 0 or backoff_s < 0 or concurrency < 1 or max_tokens < 1:
            raise ConfigError(
                "judge client needs timeout_s > 0, max_retries >= 0, backoff_s >= 0, concurrency >= 1, max_tokens >= 1"
            )
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self.model = model
        self.api_key_env = api_key_env
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.concurrency = concurrency
        self.temperature = temperature
        self.max_tokens = max_tokens
        self._sleep = sleep

    def __repr__(self) -> str:
        return (
            f"ChatClient(base_url={_safe_url(self.base_url)!r}, model={self.model!r}, "
            f"api_key_env={self.api_key_env!r}, concurrency={self.concurrency})"
        )

    def _key(self) -> str | None:
        if not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ReproError(
                f"environment variable {self.api_key_env} is not set or empty; "
                f"set it to the API key for {_safe_url(self.url)}"
            )
        return key

    def _fail(self, cls: type[EndpointError], message: str, key: str | None) -> EndpointError:
        if key:
            message = message.replace(key, "***")
        return cls(_one_line(message, 400))

    def complete(self, messages: Messages) -> str:
        """The assistant's reply text for one chat; raises EndpointError / EndpointDown (one-line messages)."""
        key = self._key()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        payload = {
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        body = json.dumps(payload).encode("utf-8")
        url = _safe_url(self.url)
        attempts = self.max_retries + 1
        last = ""
        for attempt in range(attempts):
            wait = self.backoff_s * 2**attempt
            try:
                request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    raw = response.read()
                return self._content(raw, key)
            except urllib.error.HTTPError as exc:
                try:
                    detail = exc.read().decode("utf-8", "replace")
                except (OSError, http.client.HTTPException):
                    detail = ""
                finally:
                    exc.close()
                if exc.code != 429 and exc.code < 500:
                    raise self._fail(EndpointError, f"{url} answered HTTP {exc.code}: {detail}", key) from None
                last = f"HTTP {exc.code}"
                retry_after = exc.headers.get("Retry-After", "") if exc.headers else ""
                if exc.code == 429 and retry_after.strip().isdigit():
                    wait = max(wait, min(float(retry_after), 60.0))
            except (OSError, http.client.HTTPException) as exc:
                # URLError, timeouts, refused or reset connections, and a server that hangs up mid-answer.
                last = _describe(exc)
            if attempt < attempts - 1:
                self._sleep(wait)
        raise self._fail(EndpointDown, f"endpoint down: {url} failed {attempts} attempts (last: {last})", key)

    def _content(self, raw: bytes, key: str | None) -> str:
        try:
            content = json.loads(raw.decode("utf-8"))["choices"][0]["message"]["content"]
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, IndexError, TypeError):
            shown = raw[:200].decode("utf-8", "replace")
            raise self._fail(
                EndpointError, f"{_safe_url(self.url)} answered something that is not a chat completion: {shown}", key
            ) from None
        return content if isinstance(content, str) else ""

    def complete_many(
        self,
        batch: Sequence[Messages],
        on_result: Callable[[int, str | Exception], None] | None = None,
    ) -> list[str | Exception]:
        """complete() for each chat on `concurrency` threads; results (or the exception) in input order.

        `on_result(index, result)` runs in the calling thread as each one finishes, so it may append to a file.
        """
        if not batch:
            return []
        self._key()  # a missing key fails once, here, rather than once per chat
        results: list[str | Exception] = [ReproError("not run")] * len(batch)
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(batch)), thread_name_prefix="chat")
        try:
            futures = {pool.submit(self.complete, messages): i for i, messages in enumerate(batch)}
            for future in as_completed(futures):
                i = futures[future]
                try:
                    result: str | Exception = future.result()
                except Exception as exc:
                    result = exc
                results[i] = result
                if on_result is not None:
                    on_result(i, result)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return results
