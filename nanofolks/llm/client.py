"""One way to call any model: litellm for providers, the in-process local model for `local/...`.

Timeouts, retries with backoff on 429/5xx, a clear error when the model is unreachable, and every
call's tokens and cost recorded."""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nanofolks.config.schema import Config, is_local
from nanofolks.llm.env import import_litellm
from nanofolks.llm.results import ChatResult, LLMError, SpendLimitReached, ToolCall
from nanofolks.routing.tiers import tier_model
from nanofolks.secrets.sanitize import sanitize_messages
from nanofolks.store.usage import Usage, UsageRepo

if TYPE_CHECKING:
    from nanofolks.llm.spend import SpendGuard


TokenCallback = Callable[[str], None]


def kv_slot(bot: str, room_id: int | None) -> str:
    """Whose KV state a local model call leaves and starts from: a bot in a room."""
    return f"{bot or '-'} in room {room_id}"


class LLM:
    def __init__(self, config: Config, usage: UsageRepo | None = None, spend: SpendGuard | None = None):
        self.config = config
        self.usage = usage
        self.spend = spend  # daily limits on paid models, checked before each paid call

    async def ready(self) -> None:
        """litellm imported (seconds, once per process) in a thread, unless every configured model is local.
        Called before a turn: its deadline is for model calls, not for loading the library, and an import
        on the event loop would stall everything else meanwhile."""
        agents, routing = self.config.agents, self.config.routing
        models = {agents.defaults.model, *(b.model for b in agents.bots.values() if b.model),
                  *(t.model for t in routing.tiers.values() if routing.enabled and t.model)}
        if all(is_local(model) for model in models) or "litellm" in sys.modules:
            return
        await asyncio.to_thread(import_litellm)

    def model_for(self, bot: str, tier: str = "") -> str:
        return self.route_model(bot, tier)[0]

    def route_model(self, bot: str, tier: str = "") -> tuple[str, str]:
        """(model, tier it serves) for `bot` on a message routed to `tier`: the bot's own configured model
        wins over routing (no tier then); a tier without a model falls back to the crew's default model."""
        override = self.config.agents.bots.get(bot)
        if override and override.model:
            return override.model, ""
        return (tier and tier_model(self.config, tier)) or self.config.agents.defaults.model, tier

    async def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        model: str,
        bot: str = "",
        room_id: int | None = None,
        tools: list[dict[str, Any]] | None = None,
        on_token: TokenCallback | None = None,
        max_tokens: int | None = None,
        tier: str = "",
    ) -> ChatResult:
        """One call; `tier` is the routing tier it serves, recorded with its usage."""
        defaults = self.config.agents.defaults
        started = time.monotonic()
        stopped = ""  # why a paid model gave way to the fallback model
        messages = sanitize_messages(messages)  # the last line: no secret reaches a model
        try:
            if self.spend is not None:
                model, stopped = await self.spend.affordable(bot, model)
            if is_local(model):
                from nanofolks.llm.local import local_chat

                result = await local_chat(
                    model, messages, max_tokens or defaults.max_tokens, defaults.temperature, on_token,
                    timeout=defaults.timeout, slot=kv_slot(bot, room_id),  # its KV state is kept
                )
            else:
                result = await self._litellm_chat(messages, model, tools, on_token, max_tokens)
        except LLMError as exc:
            error = SpendLimitReached(f"{stopped} It could not answer either: {exc}") if stopped else exc
            kind = type(error.__cause__).__name__ if error.__cause__ else type(error).__name__
            await self._record(Usage(model=model, bot=bot, room_id=room_id, tier=tier, ok=False, error=str(error)[:500],
                                     error_kind=kind, latency_ms=(time.monotonic() - started) * 1000))
            if error is exc:
                raise
            raise error from exc
        await self._record(Usage(
            model=model, bot=bot, room_id=room_id, tier=tier, prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens, cost=result.cost,
            latency_ms=(time.monotonic() - started) * 1000,
        ))
        return result

    async def warm(self, messages: list[dict[str, Any]], *, model: str, bot: str, room_id: int | None) -> int:
        """Evaluate `messages`, the start of `bot`'s prompts in the room, into the local model's saved KV
        state for its turns there, so that its first turn evaluates only the rest. Returns the tokens
        evaluated: 0 when a saved state holds them already, or for a model that is not local."""
        if not is_local(model):
            return 0
        from nanofolks.llm.local import local_warm

        return await local_warm(model, sanitize_messages(messages), kv_slot(bot, room_id))

    async def _record(self, usage: Usage) -> None:
        if self.usage is not None:
            await self.usage.db.quick(self.usage.record, usage)

    def _provider_kwargs(self, model: str) -> dict[str, Any]:
        provider = model.split("/", 1)[0] if "/" in model else "openai"
        settings = getattr(self.config.providers, provider, None)
        kwargs: dict[str, Any] = {}
        if settings is not None:
            if settings.api_key:
                kwargs["api_key"] = settings.api_key
            if settings.api_base:
                kwargs["api_base"] = settings.api_base
        return kwargs  # with no key in config, litellm reads the provider's usual env var

    async def _litellm_chat(
        self,
        messages: list[dict[str, Any]],
        model: str,
        tools: list[dict[str, Any]] | None,
        on_token: TokenCallback | None,
        max_tokens: int | None,
    ) -> ChatResult:
        litellm = import_litellm()
        defaults = self.config.agents.defaults
        kwargs: dict[str, Any] = {
            "model": model,
            "messages": messages,
            "timeout": defaults.timeout,
            "max_tokens": max_tokens or defaults.max_tokens,
            "temperature": defaults.temperature,
            # Retries are ours, so that backoff and errors are predictable: litellm and the openai SDK
            # under it would each retry on their own otherwise.
            "num_retries": 0,
            "max_retries": 0,
            **self._provider_kwargs(model),
        }
        if tools:
            kwargs["tools"] = tools
        retryable = (
            litellm.RateLimitError, litellm.InternalServerError, litellm.ServiceUnavailableError,
            litellm.APIConnectionError, litellm.Timeout,
        )
        attempt = 0
        while True:
            try:
                if on_token is not None:
                    return await self._stream(litellm, kwargs, on_token)
                response = await litellm.acompletion(**kwargs)
                return _result(litellm, response, model)
            except retryable as exc:
                attempt += 1
                if attempt > defaults.max_retries:
                    raise LLMError(_explain(model, exc), _plain(litellm, exc)) from exc
                await asyncio.sleep(min(8.0, 0.5 * 2 ** (attempt - 1)) * (0.5 + random.random()))
            except Exception as exc:  # auth, bad request, unknown provider...: not worth a retry
                raise LLMError(_explain(model, exc), _plain(litellm, exc)) from exc

    async def _stream(self, litellm: Any, kwargs: dict[str, Any], on_token: TokenCallback) -> ChatResult:
        chunks = []
        stream = await litellm.acompletion(**kwargs, stream=True, stream_options={"include_usage": True})
        async for chunk in stream:
            chunks.append(chunk)
            delta = chunk.choices[0].delta.content if chunk.choices else None
            if delta:
                on_token(delta)
        response = litellm.stream_chunk_builder(chunks, messages=kwargs["messages"])
        return _result(litellm, response, kwargs["model"])


def _result(litellm: Any, response: Any, model: str) -> ChatResult:
    message = response.choices[0].message
    calls = []
    for call in getattr(message, "tool_calls", None) or []:
        try:
            arguments = json.loads(call.function.arguments or "{}")
        except json.JSONDecodeError:
            arguments = {"_raw": call.function.arguments}
        calls.append(ToolCall(id=call.id or f"call_{len(calls)}", name=call.function.name, arguments=arguments))
    usage = getattr(response, "usage", None)
    return ChatResult(
        text=message.content or "",
        model=model,
        tool_calls=calls,
        prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
        completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
        cost=_cost(litellm, response),
    )


def _cost(litellm: Any, response: Any) -> float | None:
    """What litellm priced the call at while handling it (None for a model missing from its price map);
    computed here only for a response it did not price (one rebuilt from a stream)."""
    hidden = getattr(response, "_hidden_params", None) or {}
    if "response_cost" in hidden:
        cost = hidden["response_cost"]
        return None if cost is None else float(cost)
    try:
        return float(litellm.completion_cost(completion_response=response))
    except Exception:  # models missing from litellm's price map have no known cost
        return None


def _explain(model: str, exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"model {model} failed ({type(exc).__name__}): {text[:300]}"


def _plain(litellm: Any, exc: Exception) -> str:
    """What a chat user is told about a failed model call: the kind of failure, never the provider's words."""
    kinds = [
        ((litellm.AuthenticationError, litellm.PermissionDeniedError), "the model provider refused our credentials"),
        ((litellm.RateLimitError,), "the model provider is rate limiting us; please try again in a minute"),
        ((litellm.Timeout,), "the model took too long to answer"),
        ((litellm.ContextWindowExceededError,), "the conversation is too long for the model"),
        ((litellm.APIConnectionError, litellm.ServiceUnavailableError, litellm.InternalServerError),
         "the model could not be reached"),
    ]
    for types, text in kinds:
        if isinstance(exc, types):
            return text
    return "the model could not answer"
