"""The one place that says "the Hugging Face Hub could not be reached".

Downloads (datasets here, checkpoints and tokenizers elsewhere) fail deep inside
huggingface_hub with many exception types. Callers turn those into a
`HubUnreachableError` whose message names what was wanted and how to run offline, so a
pipeline user sees one readable line instead of a library stack trace.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

_TRUE = {"1", "on", "yes", "true"}

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def is_path_like(name: str) -> bool:
    """A name meant as a local path, never a hub id: ./x, ../x, /x, ~/x, a/b/c, a\\b."""
    return (name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name
            or (name.count("/") == 1 and not HUB_ID.fullmatch(name)))


class HubUnreachableError(RuntimeError):
    """Something needed from the Hugging Face Hub is neither reachable nor cached."""


def hub_error_message(what: str, reason: str | None = None) -> str:
    """A readable message: what could not be reached, why (if known), and the offline way."""
    why = f" ({reason})" if reason else ""
    return (f"Could not reach the Hugging Face Hub for {what}{why}, and it is not in the local cache. "
            "Check the network (or HF_ENDPOINT / HF_HUB_OFFLINE / HF_HUB_CACHE), or run "
            "the offline demo study, which needs no network: `make demo`.")


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as set now (huggingface_hub only reads it at import time)."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().lower() in _TRUE


def hub_cache_dir() -> Path | None:
    """HF_HUB_CACHE (or HF_HOME/hub) as set now; None means huggingface_hub's own default."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return None


def unreachable_reason(exc: BaseException) -> str:
    """A short why for hub_error_message: offline mode, or the connection error's first line."""
    if hub_offline():
        return "HF_HUB_OFFLINE=1 is set"
    cause = exc.__cause__ or exc
    first = (str(cause).strip().splitlines() or [""])[0][:160]
    return f"{type(cause).__name__}: {first}" if first else type(cause).__name__


def is_unreachable_error(exc: BaseException) -> bool:
    """True for huggingface_hub / httpx errors that mean "offline or not cached"."""
    try:
        from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled
    except ImportError:  # very old huggingface_hub
        LocalEntryNotFoundError = OfflineModeIsEnabled = ()  # type: ignore[assignment]
    if isinstance(exc, (LocalEntryNotFoundError, OfflineModeIsEnabled, ConnectionError, TimeoutError)):
        return True
    # httpx / requests connection failures, without importing either
    return type(exc).__name__ in {"ConnectError", "ConnectTimeout", "ReadTimeout", "TimeoutException",
                                  "ConnectionError", "ProxyError", "NetworkError"}


def hub_reachable(timeout: float = 3.0) -> bool:
    """One TCP connect to the hub's endpoint, so a machine without network is told at once
    instead of after a minute of download retries (behind a proxy: assumed reachable)."""
    import socket
    from urllib.parse import urlsplit

    from huggingface_hub import constants
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY",
                                       "http_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlsplit(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                 timeout=timeout).close()
        return True
    except OSError:
        return False
