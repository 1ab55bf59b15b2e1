"""What a model call returns or raises, whichever backend answered (litellm or the local model).
Callers import these through llm/client.py, the one entry point; backends import them from here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class LLMError(Exception):
    """The model could not answer (unreachable, timed out, refused); the message says which and why, for
    the log and the owner's terminal. `plain` is what a chat user is told: short, no provider's text."""

    def __init__(self, message: str, plain: str = "the model could not answer"):
        super().__init__(message)
        self.plain = plain


class SpendLimitReached(LLMError):
    """Today's spend limit stops paid models, and the fallback model could not answer instead."""

    def __init__(self, message: str):
        super().__init__(message, message)  # written for the user: told as it is


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass
class ChatResult:
    text: str
    model: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None
