"""The hub, offline-aware: what looks like a hub id, and a fast check that the hub can be reached at all."""

from __future__ import annotations

import os
import re
import socket
from urllib.parse import urlparse

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def looks_like_hub_id(source: str) -> bool:
    return bool(HUB_ID.match(source))


def hub_reachable(timeout_s: float = 3.0) -> bool:
    """False at once when HF_HUB_OFFLINE is set, else whether a TCP connection to the endpoint opens.

    The libraries' own attempts retry for half a minute before they give up; this answers in seconds.
    """
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=timeout_s):
            return True
    except OSError:
        return False
