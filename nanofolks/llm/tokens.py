"""Real token counts (tiktoken, offline encodings) to keep prompts inside the model's context window."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from nanofolks.llm.env import import_litellm, prepare_offline_env
from nanofolks.text import truncate_middle

DEFAULT_CONTEXT_WINDOW = 8192
LOCAL_CONTEXT_WINDOW = 4096
_PER_MESSAGE_OVERHEAD = 4  # role and separators, as OpenAI's chat format counts them


@lru_cache(maxsize=4)
def _encoding(name: str) -> Any:
    prepare_offline_env()
    import tiktoken

    return tiktoken.get_encoding(name)


def encoding_for(model: str) -> str:
    bare = model.split("/")[-1]
    return "o200k_base" if bare.startswith(("gpt-4o", "gpt-4.1", "gpt-5", "o1", "o3", "o4")) else "cl100k_base"


def count_text(text: str, model: str = "") -> int:
    encoding = encoding_for(model)
    # A room's history is counted again at every turn: remember the counts of short texts.
    return _count_cached(text, encoding) if len(text) <= 16_000 else _count(text, encoding)


def _count(text: str, encoding: str) -> int:
    return len(_encoding(encoding).encode(text, disallowed_special=()))


_count_cached = lru_cache(maxsize=2048)(_count)  # at most ~32 MB of keys


def count_messages(messages: list[dict[str, Any]], model: str = "") -> int:
    total = 3  # every reply is primed with <|start|>assistant<|message|>
    for msg in messages:
        total += _PER_MESSAGE_OVERHEAD + count_text(str(msg.get("content") or ""), model)
        if msg.get("tool_calls"):
            total += count_text(str(msg["tool_calls"]), model)
    return total


def context_window(model: str, configured: int | None = None) -> int:
    return configured or _known_window(model)


@lru_cache(maxsize=64)
def _known_window(model: str) -> int:
    if model.startswith("local/") or model.endswith(".gguf"):
        return LOCAL_CONTEXT_WINDOW
    litellm = import_litellm()
    try:
        info = litellm.get_model_info(model)
        return int(info.get("max_input_tokens") or info.get("max_tokens") or DEFAULT_CONTEXT_WINDOW)
    except Exception:  # unknown to litellm's price map (self-hosted models): a safe default
        return DEFAULT_CONTEXT_WINDOW


def fit_history(
    system: list[dict[str, Any]], history: list[dict[str, Any]], tail: list[dict[str, Any]], budget: int, model: str
) -> list[dict[str, Any]]:
    """Keep the system prompt and the newest messages: drop the oldest history until it all fits `budget`.
    The newest message (the question) is always kept: cut in the middle when it alone is too long."""
    fixed = count_messages(system + tail, model)
    kept: list[dict[str, Any]] = []
    used = fixed
    for n, msg in enumerate(reversed(history)):
        cost = _PER_MESSAGE_OVERHEAD + count_text(str(msg.get("content") or ""), model)
        if used + cost > budget:
            if n == 0:
                kept.append({**msg, "content": clip_to_tokens(str(msg.get("content") or ""),
                                                              budget - used - _PER_MESSAGE_OVERHEAD, model)})
            break
        kept.append(msg)
        used += cost
    return system + list(reversed(kept)) + tail


def clip_to_tokens(text: str, tokens: int, model: str) -> str:
    """The head and the tail of `text` within `tokens` (at least a few hundred characters of each)."""
    limit = len(text)
    while limit > 400:
        limit = max(400, int(limit * max(tokens, 1) / max(count_text(truncate_middle(text, limit), model), 1) * 0.95))
        clipped = truncate_middle(text, limit)
        if count_text(clipped, model) <= tokens:
            return clipped
    return truncate_middle(text, 400)
