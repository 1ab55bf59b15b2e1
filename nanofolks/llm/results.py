"""What a model call returns or raises, whichever backend answered (litellm or the local model).
Callers import these through llm/client.py, the one entry point; backends import them from here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class LLMError(Exception):
    """The model could not answer (unreachable, timed out, refused); the message says which and why."""


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
