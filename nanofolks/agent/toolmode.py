"""Native or text tool calls for a model.

`auto` picks text for the local model and Ollama's `ollama/` route (which has no native tools in
litellm), litellm's own answer for models in its price map, text for other Ollama models it does not
know (many refuse `tools=`), and native for any other model it does not know: those are mostly self-hosted OpenAI-compatible servers (vLLM, llama.cpp server, LM Studio) reached
through an apiBase, which litellm reports as "no function calling" only because it cannot look them
up. A bot whose model chokes on `tools=` sets `agents.bots.<handle>.toolMode: text`."""

from __future__ import annotations

from functools import lru_cache

from nanofolks.config.schema import Config
from nanofolks.llm.client import is_local
from nanofolks.llm.env import import_litellm


def tool_mode(config: Config, bot: str, model: str) -> str:
    settings = config.agents.bots.get(bot)
    if settings is not None and settings.tool_mode != "auto":
        return settings.tool_mode
    return auto_mode(model)


@lru_cache(maxsize=64)
def auto_mode(model: str) -> str:
    if is_local(model) or model.startswith("ollama/"):
        return "text"
    litellm = import_litellm()
    try:
        litellm.get_model_info(model)
    except Exception:  # not in litellm's map: a self-hosted or new model, see the module's note
        return "text" if model.startswith("ollama_chat/") else "native"
    return "native" if litellm.supports_function_calling(model) else "text"
