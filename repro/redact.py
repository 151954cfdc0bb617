"""Keep secrets and raw bytes out of what the kit writes or prints: URL credentials, keys, control characters."""

from __future__ import annotations

import re
from collections.abc import Iterable

# An optional scheme and "//", then a user:password part that runs to the last "@" before the path, query or fragment.
_USERINFO = re.compile(r"^((?:[A-Za-z][A-Za-z0-9+.\-]*:)?//)?[^/?#]*@")


def redact_url(url: str) -> str:
    """The URL without its user:password@ part (also when the scheme is missing); other URLs unchanged."""
    return _USERINFO.sub(lambda m: m.group(1) or "", url, count=1)


def redact_secrets(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of each non-empty secret replaced by '***' (longer secrets first)."""
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable_excerpt(raw: bytes | str, limit: int = 200) -> str:
    """One safe line for a message: UTF-8 decoded with replacement, whitespace runs collapsed to one space,
    every other non-printable character (NUL, ESC, DEL, C1 controls, bidi overrides, lone surrogates) written
    as a visible escape such as \\x1b, and at most `limit` characters, ending in '…' when cut."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes | bytearray) else raw
    pieces: list[str] = []
    size = 0
    for ch in " ".join(text.split()):
        piece = ch if ch.isprintable() else _escape(ch)
        pieces.append(piece)
        size += len(piece)
        if size > limit:
            break
    else:
        return "".join(pieces)
    # Cut whole pieces so that no escape is left half-written, keeping room for the ellipsis.
    while pieces and size > limit - 1:
        size -= len(pieces.pop())
    return "".join(pieces) + "…"
