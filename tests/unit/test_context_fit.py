"""Fitting one prompt into a window: history first, then the memory block, then the persona; the user's
newest message never goes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from nanofolks.agent.runner import assemble
from nanofolks.context.fit import PromptParts, PromptTooLong, fit_prompt
from nanofolks.llm.tokens import count_messages

MODEL = "openai/gpt-4o-mini"
FULL = "You are Blackbeard (@leader): the crew's leader.\n\n## Your soul\n" + "Salt and storms. " * 60
COMPACT = "You are Blackbeard (@leader): the crew's leader.\nYour voice: gruff."
NAME = "You are Blackbeard (@leader): the crew's leader."
MEMORY = "\n".join(["## Memory", "What you remember.", "", "Preferences of this person (apply them):",
                    "- likes short answers", "- writes in French", "", "Related memories:",
                    "- the ship is called the Ada", "- the crew sailed to Lisbon in May"])
QUESTION = {"role": "user", "content": "how many messages do you see?"}


def parts(history: int = 10, memory: str = MEMORY) -> PromptParts:
    said = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i}: " + "words " * 20}
            for i in range(history)]
    return PromptParts(personas=[FULL, COMPACT, NAME], memory=memory, history=said, newest=[QUESTION])


def cost(p: PromptParts) -> int:
    return count_messages(assemble(p), MODEL)


def test_a_prompt_that_fits_is_sent_whole() -> None:
    p = parts()
    assert fit_prompt(p, cost(p), MODEL, assemble, 8000) == assemble(p)


def test_the_oldest_history_goes_first_and_the_question_stays() -> None:
    p = parts()
    budget = cost(replace(p, history=p.history[2:]))  # two history messages too many
    sent = fit_prompt(p, budget, MODEL, assemble, 8000)
    assert count_messages(sent, MODEL) <= budget
    assert sent[-1] == QUESTION
    assert sent[1:-2] == p.history[2:]  # the newest eight, oldest first
    assert FULL in sent[0]["content"] and "the ship is called the Ada" in sent[-2]["content"]


def test_a_tool_call_and_its_result_go_together() -> None:
    call = {"role": "assistant", "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "read_file", "arguments": "{}"}}]}
    result = {"role": "tool", "tool_call_id": "c1", "content": "file text " * 10}
    p = PromptParts(personas=[NAME], history=[call, result, {"role": "assistant", "content": "done"}],
                    newest=[QUESTION])
    without_call = count_messages(assemble(PromptParts(personas=[NAME], history=[result, p.history[2]],
                                                       newest=[QUESTION])), MODEL)
    sent = fit_prompt(p, without_call, MODEL, assemble, 8000)  # room for the result, not for its call
    assert sent[1:] == [{"role": "assistant", "content": "done"}, QUESTION]


def test_then_the_memory_block_loses_its_least_important_lines() -> None:
    p = parts()
    whole = cost(parts(history=0))
    budget = whole - 12  # no history, and a little less memory
    sent = fit_prompt(p, budget, MODEL, assemble, 8000)
    system = sent[0]["content"] + sent[1]["content"]
    assert sent[2:] == [QUESTION]
    assert FULL in system
    assert "likes short answers" in system and "Lisbon" not in system


def test_a_section_left_without_items_loses_its_title() -> None:
    p = parts(history=0)
    without_related = MEMORY.split("\n\nRelated memories:")[0]
    budget = cost(parts(history=0, memory=without_related))
    sent = fit_prompt(p, budget, MODEL, assemble, 8000)
    assert sent[1]["content"].endswith("- writes in French")


def test_then_the_persona_is_shortened() -> None:
    p = parts()
    budget = cost(PromptParts(personas=[COMPACT], newest=[QUESTION]))
    sent = fit_prompt(p, budget, MODEL, assemble, 8000)
    assert sent == [{"role": "system", "content": COMPACT}, QUESTION]
    budget = cost(PromptParts(personas=[NAME], newest=[QUESTION]))
    assert fit_prompt(p, budget, MODEL, assemble, 8000) == [{"role": "system", "content": NAME}, QUESTION]


def test_a_message_that_cannot_fit_is_refused_plainly() -> None:
    long = {"role": "user", "content": "tell me about the sea " * 400}
    p = PromptParts(personas=[FULL, COMPACT, NAME], memory=MEMORY, newest=[long])
    with pytest.raises(PromptTooLong) as exc:
        fit_prompt(p, 1200, MODEL, assemble, 1400)
    text = str(exc.value)
    assert MODEL in text and "1,400 tokens" in text and "2,001 tokens" in text
    assert "keeps 200 for the reply and tool definitions" in text


def test_fitting_does_not_depend_on_the_order_parts_are_sent_in() -> None:
    def memory_last(p: PromptParts) -> list[dict]:  # stable prefix first, as for a KV-cache
        extra = [{"role": "user", "content": p.memory}] if p.memory else []
        return [{"role": "system", "content": p.personas[0]}, *p.history, *extra, *p.newest]

    p = parts()
    for budget in (cost(replace(p, history=p.history[2:])), cost(parts(history=0)) - 12, 120):
        sent = fit_prompt(p, budget, MODEL, memory_last, 8000)
        assert count_messages(sent, MODEL) <= budget and sent[-1] == QUESTION


def test_a_summary_outlives_the_history_and_goes_before_the_memory_block() -> None:
    summary = [{"role": "assistant", "content": "[Summary] the crew mapped the reef " * 5}]
    p = replace(parts(), summary=summary)
    sent = fit_prompt(p, cost(replace(p, history=p.history[-1:])), MODEL, assemble, 8000)
    assert sent[1:] == [*summary, p.history[-1], {"role": "system", "content": MEMORY}, QUESTION]
    sent = fit_prompt(p, cost(replace(p, history=[], summary=[])), MODEL, assemble, 8000)
    assert sent[1:] == [{"role": "system", "content": MEMORY}, QUESTION]  # the memory block whole


def test_history_cut_for_tokens_starts_at_the_same_message_while_the_conversation_grows() -> None:
    """With history_step, the oldest history kept moves in steps, so most turns resend the previous
    turn's prompt as their prefix; without it, every turn past the budget starts one exchange later."""
    budget = cost(parts(history=6, memory=""))  # room for six history messages

    def first_sent(history: int, step: int) -> str:
        p = replace(parts(history=history, memory=""), history_step=step)
        sent = fit_prompt(p, budget, MODEL, assemble, 8000)
        assert count_messages(sent, MODEL) <= budget and sent[-1] == QUESTION
        return sent[1]["content"]

    growing = range(8, 21, 2)  # a turn adds the user's message and the reply
    assert len({first_sent(n, 1) for n in growing}) == len(growing)  # it moved at every turn
    starts = [first_sent(n, 4).split(":")[0] for n in growing]
    assert starts == ["message 4", "message 4", "message 8", "message 8", "message 12", "message 12", "message 16"]


def test_an_aligned_cut_that_would_leave_no_history_keeps_what_fits() -> None:
    p = replace(parts(history=6, memory=""), history_step=10)
    budget = cost(replace(p, history=p.history[3:]))
    sent = fit_prompt(p, budget, MODEL, assemble, 8000)
    assert sent[1:-1] == p.history[3:]
