"""Step 2, intent: rules first; a short LLM call only when the rules are unsure.

The intent steers who is consulted; it never answers on its own (no canned replies)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from nanofolks.orchestrator.tag import ACTION_WORDS
from nanofolks.orchestrator.turn import Intent, Tags

INTENTS = ("greeting", "thanks", "question", "request", *ACTION_WORDS)

_GREETING = re.compile(
    r"^\W*(hi|hello|hey|yo|hiya|howdy|ahoy|greetings|good (morning|afternoon|evening)|gm)\b[\W\w]{0,20}$",
    re.IGNORECASE,
)
_THANKS = re.compile(r"^\W*(thanks|thank you|thx|cheers|ty)\b", re.IGNORECASE)
_QUESTION = re.compile(
    r"(\?\s*$)|^\W*(what|why|how|who|when|where|which|can|could|would|should|is|are|do|does|did|will)\b",
    re.IGNORECASE,
)
_REQUEST = re.compile(r"^\W*(please|pls|can you|could you|would you|help|make|give|show|tell|list|explain)\b",
                      re.IGNORECASE)

Classifier = Callable[[str], Awaitable[str]]


def classify_by_rules(text: str, tags: Tags) -> Intent:
    stripped = re.sub(r"@[\w-]+", "", text).strip()
    if _GREETING.match(stripped):
        return Intent("greeting", True)
    if _THANKS.match(stripped):
        return Intent("thanks", True)
    if len(tags.actions) == 1:
        return Intent(tags.actions[0], True)
    if tags.actions:  # several kinds of work named: the first is a guess, not a certainty
        return Intent(tags.actions[0], False)
    if _QUESTION.search(stripped):
        return Intent("question", True)
    if _REQUEST.match(stripped):
        return Intent("request", True)
    return Intent("request", False)


async def classify(text: str, tags: Tags, ask_llm: Classifier | None = None) -> Intent:
    """Rules first. When they are unsure and an LLM classifier is given, let it pick among INTENTS."""
    intent = classify_by_rules(text, tags)
    if intent.confident or ask_llm is None:
        return intent
    try:
        answer = (await ask_llm(text)).strip().lower()
    except Exception:  # the classifier is a nicety: any failure keeps the rules' guess
        return intent
    for word in re.findall(r"[a-z]+", answer):
        if word in INTENTS:
            return Intent(word, True, "llm")
    return intent


def classifier_prompt(text: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "Classify the user's message. Answer with one word from: "
                                      + ", ".join(INTENTS) + "."},
        {"role": "user", "content": text[:2000]},
    ]
