"""The five steps, one by one: tag, intent, dispatch, final (collect is covered end to end)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nanofolks.crew.crew import Crew, install_team
from nanofolks.orchestrator.dispatch import dispatch
from nanofolks.orchestrator.final import final
from nanofolks.orchestrator.intent import classify, classify_by_rules
from nanofolks.orchestrator.tag import tag
from nanofolks.orchestrator.turn import BotReply, Intent, Plan, Tags, Turn
from nanofolks.store.rooms import Room

ALL = ["leader", "researcher", "coder", "social", "creative", "auditor"]


@pytest.fixture(scope="module")
def crew(tmp_path_factory: pytest.TempPathFactory) -> Crew:
    return install_team(tmp_path_factory.mktemp("ws"), "pirate_crew")


def room(members: list[str] = ALL, name: str = "general") -> Room:
    return Room(id=1, name=name, type="open", settings={}, version=0, created_at=0, members=list(members))


# --- tag ---


def test_tag_by_handle_and_by_character_name(crew: Crew) -> None:
    assert tag("@coder and @Blackbeard, look", crew).bots == ["coder", "leader"]


def test_tag_all_and_crew_mean_everyone(crew: Crew) -> None:
    assert tag("@all hello", crew).everyone
    assert tag("hey @crew!", crew).everyone
    assert not tag("email me at a@all.com", crew).everyone


def test_tag_unknown_and_duplicates(crew: Crew) -> None:
    tags = tag("@coder @coder @nobody", crew)
    assert tags.bots == ["coder"]
    assert tags.unknown == ["nobody"]


def test_tag_action_words(crew: Crew) -> None:
    assert "build" in tag("please build a landing page", crew).actions
    assert "research" in tag("research the best vector index", crew).actions
    assert tag("hello there", crew).actions == []


@pytest.mark.parametrize("text", ["What is my ship called?", "the planet postgres testament", "a coded codex"])
def test_action_words_match_whole_words_only(crew: Crew, text: str) -> None:
    assert tag(text, crew).actions == []


# --- intent ---


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Hello!", "greeting"),
        ("ahoy crew", "greeting"),
        ("thanks a lot", "thanks"),
        ("What is the capital of France?", "question"),
        ("build me a todo app", "build"),
        ("can you explain monads", "question"),
        ("please summarise this", "request"),
    ],
)
def test_intent_rules(crew: Crew, text: str, kind: str) -> None:
    intent = classify_by_rules(text, tag(text, crew))
    assert intent.kind == kind
    assert intent.confident


async def test_intent_asks_llm_only_when_unsure(crew: Crew) -> None:
    asked: list[str] = []

    async def ask(text: str) -> str:
        asked.append(text)
        return "Research."

    sure = await classify("Hello!", tag("Hello!", crew), ask)
    assert sure.kind == "greeting" and asked == []
    unsure_text = "the quarterly thing, you know"
    guessed = await classify(unsure_text, tag(unsure_text, crew), ask)
    assert asked == [unsure_text]
    assert (guessed.kind, guessed.source) == ("research", "llm")


async def test_intent_keeps_rules_guess_when_llm_fails_or_rambles(crew: Crew) -> None:
    async def broken(text: str) -> str:
        raise RuntimeError("model down")

    async def rambling(text: str) -> str:
        return "I think it's hard to say"

    text = "the quarterly thing"
    assert (await classify(text, tag(text, crew), broken)).kind == "request"
    assert (await classify(text, tag(text, crew), rambling)).source == "rules"


# --- dispatch ---


def test_dispatch_mentioned(crew: Crew) -> None:
    plan = dispatch(Tags(bots=["coder"]), Intent("code", True), room(), crew, 8)
    assert (plan.mode, plan.bots, plan.consult) == ("mentioned", ["coder"], [])


def test_dispatch_everyone_leader_first(crew: Crew) -> None:
    plan = dispatch(Tags(everyone=True), Intent("greeting", True), room(["coder", "leader", "social"]), crew, 8)
    assert plan.bots == ["leader", "coder", "social"]


def test_dispatch_everyone_bounded_by_budget(crew: Crew) -> None:
    assert len(dispatch(Tags(everyone=True), Intent("greeting", True), room(), crew, 3).bots) == 3


def test_dispatch_leader_consults_specialists_for_work(crew: Crew) -> None:
    plan = dispatch(Tags(), Intent("build", True), room(), crew, 8)
    assert (plan.mode, plan.bots, plan.consult) == ("leader", ["leader"], ["coder"])


def test_dispatch_leader_alone_for_chat(crew: Crew) -> None:
    assert dispatch(Tags(), Intent("greeting", True), room(), crew, 8).consult == []


def test_dispatch_consults_only_room_members(crew: Crew) -> None:
    assert dispatch(Tags(), Intent("build", True), room(["leader", "researcher"]), crew, 8).consult == []


def test_dispatch_mentioned_bot_missing_from_room_falls_back_to_leader(crew: Crew) -> None:
    plan = dispatch(Tags(bots=["coder"]), Intent("code", True), room(["leader"]), crew, 8)
    assert (plan.bots, plan.missing) == (["leader"], ["coder"])


def test_dispatch_room_without_leader_uses_first_member(crew: Crew) -> None:
    assert dispatch(Tags(), Intent("question", True), room(["researcher", "coder"]), crew, 8).bots == ["researcher"]


# --- final ---


def test_final_labels_each_part_when_several_spoke(crew: Crew) -> None:
    turn = Turn(room=room(), text="@all hi", turn_id="t1")
    replies = [BotReply("leader", "Ahoy!"), BotReply("coder", "Hi."), BotReply("social", "", ok=False, error="boom")]
    answer = final(turn, Tags(everyone=True), Plan("everyone", ["leader", "coder", "social"]), replies, crew)
    text = answer.markdown()
    assert "@leader (🏴‍☠️ Blackbeard)" in text and "@coder (🔨 Ironhook)" in text
    assert "@social could not answer: boom" in text
    assert text.index("Ahoy!") < text.index("Hi.")


def test_final_single_reply_is_plain(crew: Crew) -> None:
    turn = Turn(room=room(), text="@coder hi", turn_id="t1")
    answer = final(turn, Tags(bots=["coder"]), Plan("mentioned", ["coder"]), [BotReply("coder", "Hi.")], crew)
    assert answer.markdown() == "Hi."


def test_final_notes_missing_and_unknown(crew: Crew) -> None:
    turn = Turn(room=room(["leader"], "ops"), text="x", turn_id="t1")
    answer = final(turn, Tags(bots=["coder"], unknown=["bob"]), Plan("leader", ["leader"], missing=["coder"]),
                   [BotReply("leader", "ok")], crew)
    assert any("@bob is not a member" in n for n in answer.notes)
    assert any("nanofolks room invite ops coder" in n for n in answer.notes)


def test_templates_ship_six_teams_of_six(tmp_path: Path) -> None:
    from nanofolks.crew.crew import TEAMS, available_teams

    assert sorted(available_teams()) == sorted(TEAMS)
    for team in TEAMS:
        crew = install_team(tmp_path / team, team)
        assert crew.handles == ALL
        names = [b.name for b in crew.bots.values()]
        assert len(set(names)) == 6 and all(names)
        for bot in crew.bots.values():
            assert bot.soul and bot.role_card and bot.emoji and bot.catchphrase and bot.tools


async def test_a_failed_model_call_reaches_the_chat_as_a_plain_note(tmp_path: Path, crew: Crew) -> None:
    from nanofolks.agent.runner import BotRunner, TurnBudget
    from nanofolks.config.schema import Config
    from nanofolks.llm.client import LLMError
    from nanofolks.orchestrator.turn import Turn
    from nanofolks.store.db import Database
    from nanofolks.store.messages import MessageRepo
    from nanofolks.store.rooms import RoomRepo

    class RefusingLLM:
        spend = None

        def model_for(self, bot: str) -> str:
            return "openai/fake-model"

        def route_model(self, bot: str, tier: str = "") -> tuple[str, str]:
            return "openai/fake-model", tier

        async def chat(self, *args: object, **kwargs: object) -> None:
            raise LLMError("model openai/fake-model failed (AuthenticationError): Incorrect API key sk-live-1",
                           "the model provider refused our credentials")

    db = Database(tmp_path / "t.db")
    config = Config()
    config.agents.defaults.context_window = 8192
    room = RoomRepo(db).ensure("general", "open", crew.handles)
    runner = BotRunner(config, crew, RefusingLLM(), MessageRepo(db))  # type: ignore[arg-type]
    reply = await runner.answer("leader", Turn(room=room, text="hi", turn_id="t"), TurnBudget(4))
    assert not reply.ok and reply.error == "the model provider refused our credentials"
    db.close()
