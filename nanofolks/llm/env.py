"""Make litellm and tiktoken work offline, without importing either (both are slow to import)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path


def prepare_offline_env() -> None:
    # litellm otherwise spends seconds trying to download its model price map at import.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    # tiktoken downloads its encodings at first use; litellm ships cl100k_base and o200k_base.
    if "TIKTOKEN_CACHE_DIR" not in os.environ:
        spec = importlib.util.find_spec("litellm")
        if spec and spec.submodule_search_locations:
            folder = Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils" / "tokenizers"
            if folder.is_dir():
                os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)


def import_litellm():  # noqa: ANN201 - the litellm module
    """Import litellm the offline-safe way, quiet about models missing from its price map."""
    prepare_offline_env()
    # litellm's own HTTP handler for OpenAI-compatible providers instead of the openai SDK, whose request
    # transform walks every message with typing introspection: 11 ms vs 4 ms per call with 40 messages of
    # history (bench/llm_call_bench.py). Set it to false to get the SDK path back.
    os.environ.setdefault("EXPERIMENTAL_OPENAI_BASE_LLM_HTTP_HANDLER", "true")
    import litellm

    litellm.suppress_debug_info = True
    return litellm
