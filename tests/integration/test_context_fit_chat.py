"""Issue 10's case, as a user meets it: a small window (contextWindow 1400, maxTokens 200) never loses the
user's own message; a message that cannot fit at all is refused plainly and still kept in the room."""

from __future__ import annotations

from pathlib import Path

from nanofolks.config.loader import load_config, save_config
from nanofolks.llm.tokens import count_messages
from nanofolks.services import Services
from tests.conftest import run_cli
from tests.fakes.llm_server import Rule, ScriptedLLM, last_user_message, system_prompt
from tests.integration.test_cli_chat import stored


def small_window(home: Path) -> None:
    config = load_config(home / "config.json")
    config.agents.defaults.context_window = 1400
    config.agents.defaults.max_tokens = 200
    save_config(config, home / "config.json")


async def test_the_question_reaches_the_model_in_a_small_window(crew_home: Path, llm_server: ScriptedLLM) -> None:
    small_window(crew_home)
    llm_server.add(Rule(handle="leader", reply="I see your question."))
    services = Services.open()
    try:
        for text in [*(f"earlier message {i}: " + "sea shanty " * 40 for i in range(3)),
                     "how many messages do you see?"]:
            answer = await services.pipeline.handle(services.rooms.general(), text)
            assert answer.parts[0].text == "I see your question."
            await services.pipeline.settle()
    finally:
        services.close()
    asked = [r for r in llm_server.requests if "(@leader)" in system_prompt(r["messages"])]
    # A 170-token message does not fit beside 1,000 tokens of tool definitions: it is answered without tools.
    assert "earlier message 0" in last_user_message(asked[0]["messages"]) and "tools" not in asked[0]
    messages = asked[-1]["messages"]
    assert last_user_message(messages) == "how many messages do you see?"
    assert "You are Blackbeard (@leader)" in system_prompt(messages)
    # The tool schemas (about 870 tokens) and the reply's 200 leave no room for history or the full persona.
    assert count_messages(messages, "openai/fake-model") + 200 < 1400
    assert len(stored(crew_home)) == 8  # every message kept in the room


def test_a_message_too_long_for_the_window_is_refused_plainly(crew_home: Path, llm_server: ScriptedLLM) -> None:
    small_window(crew_home)
    result = run_cli("chat", "-m", "please read this: " + "anchor chain " * 600, home=crew_home)
    assert result.returncode == 1
    assert llm_server.requests == []
    error = " ".join(result.stderr.split())
    assert "your message is too long for openai/fake-model" in error
    assert "1,400 tokens" in error and "1,205 tokens" in error
    assert "Traceback" not in result.stderr
    assert stored(crew_home)[-1][0] == "user"  # kept in the room all the same
