"""Real token counts (tiktoken, offline encodings) to keep prompts inside the model's context window."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from nanofolks.config.schema import Config
from nanofolks.llm.env import import_litellm, prepare_offline_env

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


def truncate_tokens(text: str, limit: int, model: str = "") -> str:
    """`text` cut in the middle to about `limit` tokens, its head and tail kept."""
    tokens = _encoding(encoding_for(model)).encode(text, disallowed_special=())
    if len(tokens) <= limit:
        return text
    half = max(1, limit // 2)
    decode = _encoding(encoding_for(model)).decode
    return f"{decode(tokens[:half])} [... {len(tokens) - 2 * half} tokens cut ...] {decode(tokens[-half:])}"


def count_messages(messages: list[dict[str, Any]], model: str = "") -> int:
    total = 3  # every reply is primed with <|start|>assistant<|message|>
    for msg in messages:
        total += _PER_MESSAGE_OVERHEAD + count_text(str(msg.get("content") or ""), model)
        if msg.get("tool_calls"):
            total += count_text(str(msg["tool_calls"]), model)
    return total


def context_window(model: str, config: Config | None = None) -> int:
    """The model's window: `context.windows` for this model, else `agents.defaults.contextWindow`, else
    litellm's model map."""
    if config is not None:
        return config.context.windows.get(model) or config.agents.defaults.context_window or _known_window(model)
    return _known_window(model)


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
