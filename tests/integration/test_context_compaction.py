"""Long conversations against the real litellm and the scripted OpenAI-compatible server: compaction
(summary, token-limit), concurrent writers, two compactions at once, reset, the 70% notice, the CLI."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from nanofolks.config.loader import load_config, save_config
from nanofolks.context.room import SUMMARY_PREFIX, RoomContext
from nanofolks.llm.tokens import count_messages, count_text
from nanofolks.orchestrator.turn import Turn
from nanofolks.services import Services
from nanofolks.store.context import NOTICE, SUMMARY
from nanofolks.store.db import Database
from nanofolks.store.messages import Message, MessageRepo
from tests.conftest import run_cli
from tests.fakes.llm_server import Rule, ScriptedLLM

MODEL = "openai/fake-model"
SUMMARIZER = "keep the record"  # in the summary model's system prompt


def configure(home: Path, window: int, **context: object) -> None:
    config = load_config(home / "config.json")
    config.context.windows = {MODEL: window}
    config.agents.defaults.max_tokens = 200
    for key, value in context.items():
        setattr(config.context, key, value)
    save_config(config, home / "config.json")


@pytest.fixture
def services(crew_home: Path) -> Iterator[Services]:
    configure(crew_home, 6000)
    services = Services.open()
    yield services
    services.close()


def seed(services: Services, n: int, room: str = "general") -> list[Message]:
    room_id = services.rooms.get(room).id
    out = []
    for i in range(n):
        user = i % 2 == 0
        text = f"note {i}: the {'kraken' if i == 0 else 'tide'} report " + "waves and wind " * 30
        out.append(services.messages.add(Message(room_id, "user" if user else "leader", "user" if user else "assistant",
                                                 text, turn_id=f"t{i // 2}")))
    return out


def context(services: Services) -> RoomContext:
    return RoomContext(services.config, services.crew, services.llm, services.db)


async def prompt_for(services: Services, text: str = "and now?") -> list[dict]:
    room = services.rooms.general()
    return await services.pipeline.runner.build_messages("leader", Turn(room=room, text=text, turn_id="new"), [],
                                                         MODEL)


async def test_a_summary_replaces_the_oldest_messages_in_what_models_read(services: Services,
                                                                         llm_server: ScriptedLLM) -> None:
    llm_server.add(Rule(system_contains=SUMMARIZER, reply="- The user asked for the kraken report."))
    said = seed(services, 20)
    result = await context(services).compact(services.rooms.general())
    assert result.done and 0 < result.compacted < 20
    summary_request = llm_server.requests[-1]["messages"]
    assert "note 0: the kraken report" in summary_request[1]["content"]  # the oldest message was read
    sent = await prompt_for(services)
    assert sent[1] == {"role": "assistant", "content": f"{SUMMARY_PREFIX}\n- The user asked for the kraken report."}
    assert all("kraken" not in m["content"] for m in sent if m["role"] in ("user", "system"))
    assert sent[2]["content"] == said[result.compacted].content  # then the messages after the summary, whole
    # Every original stays in the room and in memory search; the summary is a record of its own kind.
    stored = services.db.query("SELECT kind, COUNT(*) FROM messages GROUP BY kind")
    assert dict((r[0], r[1]) for r in stored) == {"chat": 20, SUMMARY: 1}
    assert any("kraken" in hit.item.text for hit in services.memory.search("kraken report", touch=False))


async def test_token_limit_leaves_the_oldest_out_without_a_model_call(services: Services,
                                                                     llm_server: ScriptedLLM) -> None:
    said = seed(services, 20)
    result = await context(services).compact(services.rooms.general(), "token-limit")
    assert result.done and llm_server.requests == []
    sent = await prompt_for(services)
    assert sent[1]["content"] == said[result.compacted].content and not sent[1]["content"].startswith(SUMMARY_PREFIX)
    assert services.messages.count(services.rooms.general().id) == 21  # 20 and the marker


async def test_messages_written_while_a_summary_is_written_are_kept(crew_home: Path, services: Services,
                                                                    llm_server: ScriptedLLM) -> None:
    llm_server.add(Rule(system_contains=SUMMARIZER, reply="- the gist", delay=1.5))
    seed(services, 20)
    room = services.rooms.general()
    compaction = asyncio.ensure_future(context(services).compact(room))
    other = Database(crew_home / "nanofolks.db")  # another process's connection
    try:
        while not llm_server.requests:
            await asyncio.sleep(0.02)
        late = [await asyncio.to_thread(MessageRepo(other).add, Message(room.id, "user", "user", f"late {i}"))
                for i in range(5)]
        result = await compaction
    finally:
        other.close()
    assert result.done and result.through_id < late[0].id
    summary, live = context(services).history(room.id, 50)
    assert summary is not None and [m.content for m in live][-5:] == [f"late {i}" for i in range(5)]


async def test_two_compactions_of_one_room_never_interleave(crew_home: Path, services: Services,
                                                           llm_server: ScriptedLLM) -> None:
    llm_server.add(Rule(system_contains=SUMMARIZER, reply="- summary {user}", delay=1.0))
    seed(services, 20)
    second = Services.open(db_file=crew_home / "nanofolks.db")  # as a second process would
    try:
        room = services.rooms.general()
        first_run = asyncio.ensure_future(context(services).compact(room))
        second_run = asyncio.ensure_future(context(second).compact(second.rooms.general()))
        while len(llm_server.requests) < 2:
            await asyncio.sleep(0.02)
        services.rooms.repo.update_settings(room.id, lambda s: {**s, "topic": "sails"})  # a settings write meanwhile
        results = await asyncio.gather(first_run, second_run)
    finally:
        second.close()
    assert sorted(r.done for r in results) == [False, True]
    assert "meanwhile" in next(r.reason for r in results if not r.done)
    assert services.db.query_one("SELECT COUNT(*) FROM messages WHERE kind = ?", (SUMMARY,))[0] == 1
    assert services.rooms.get("general").settings["topic"] == "sails"


async def test_one_process_runs_one_compaction_of_a_room_at_a_time(services: Services,
                                                                  llm_server: ScriptedLLM) -> None:
    llm_server.add(Rule(system_contains=SUMMARIZER, reply="- the gist", delay=0.5))
    seed(services, 20)
    shared = context(services)
    room = services.rooms.general()
    first, second = await asyncio.gather(shared.compact(room), shared.compact(room))
    assert first.done and not second.done  # the second saw the first's result: nothing left to compact
    assert len(llm_server.requests) == 1


async def test_a_reset_starts_afresh_and_keeps_the_history(services: Services, llm_server: ScriptedLLM) -> None:
    said = seed(services, 6)
    await context(services).reset(services.rooms.general())
    sent = await prompt_for(services, "fresh start")
    assert [m["role"] for m in sent] == ["system", "user"] and sent[-1]["content"] == "fresh start"
    assert services.messages.count(services.rooms.general().id) == len(said) + 1


async def test_the_reply_carries_one_notice_at_70_percent(crew_home: Path, llm_server: ScriptedLLM) -> None:
    configure(crew_home, 5000, compact_percent=95)
    services = Services.open()
    try:
        llm_server.add(Rule(handle="leader", reply="Aye."))
        seed(services, 24)  # about 2,100 tokens of conversation and a 900-token persona: over 70% of 4,200
        room = services.rooms.general()
        first = await services.pipeline.handle(room, "how full are we?")
        second = await services.pipeline.handle(room, "and now?")
        usage = context(services).usage(room)
        notices = services.db.query("SELECT turn_id FROM messages WHERE kind = ?", (NOTICE,))
    finally:
        services.close()
    assert 70 <= usage.percent < 95
    assert len(first.notes) == 1 and "of openai/fake-model's context window" in first.notes[0]
    assert "summarized at 95%" in first.notes[0] and first.notes[0] in first.markdown()
    assert second.notes == []
    assert [r[0] for r in notices] == [first.turn_id]


def test_the_session_commands(crew_home: Path, llm_server: ScriptedLLM) -> None:
    configure(crew_home, 6000)
    services = Services.open()
    seed(services, 20)
    services.close()
    status = run_cli("session", "status", "--json", home=crew_home)
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["room"] == "general" and data["window"] == 6000 and data["mode"] == "summary"
    assert data["messages"] == 20 and data["summaries"] == 0 and 0 < data["percent"] < 100
    llm_server.add(Rule(system_contains=SUMMARIZER, reply="- the gist"))
    compacted = run_cli("session", "compact", "--room", "general", home=crew_home)
    assert compacted.returncode == 0 and "messages compacted" in compacted.stdout
    after = json.loads(run_cli("session", "status", "--json", home=crew_home).stdout)
    assert after["summaries"] == 1 and after["messages"] < 20 and after["tokens"] < data["tokens"]
    assert run_cli("session", "reset", home=crew_home).returncode == 0
    assert json.loads(run_cli("session", "status", "--json", home=crew_home).stdout)["messages"] == 0
    bad = run_cli("session", "compact", "--mode", "fast", home=crew_home)
    assert bad.returncode == 2 and "--mode must be summary or token-limit" in bad.stderr
    missing = run_cli("session", "status", "--room", "nowhere", home=crew_home)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr


async def test_a_60_message_conversation_stays_inside_a_small_window(crew_home: Path,
                                                                    llm_server: ScriptedLLM) -> None:
    configure(crew_home, 4096)
    llm_server.add(Rule(system_contains=SUMMARIZER, reply="- The user has been logging the voyage, day by day."))
    services = Services.open()
    try:
        room = services.rooms.general()
        for day in range(30):  # 30 turns: 60 messages
            text = f"@leader day {day} of the voyage: " + "we trimmed the sails and watched the gulls " * 8
            answer = await services.pipeline.handle(room, text)
            assert answer.parts[0].ok, answer.notes
            await services.pipeline.settle()
        stored = services.db.query("SELECT author, content FROM messages WHERE room_id = ? AND kind = 'chat' "
                                   "ORDER BY id", (room.id,))
        usage = context(services).usage(room)
    finally:
        services.close()
    for request in llm_server.requests:
        sent = count_messages(request["messages"], MODEL) + count_text(json.dumps(request.get("tools") or []), MODEL)
        assert sent + request["max_tokens"] <= 4096
    summaries = [r for r in llm_server.requests if SUMMARIZER in r["messages"][0]["content"]]
    assert summaries and usage.summaries == len(summaries)
    assert SUMMARY_PREFIX in llm_server.requests[-1]["messages"][1]["content"]
    assert [row[1].split(":")[0] for row in stored[::2]] == [f"@leader day {d} of the voyage" for d in range(30)]
    assert len(stored) == 60 and usage.percent < 80
