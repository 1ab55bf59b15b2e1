"""MemoryService with a fast deterministic embedder: learning from events, search, forgetting, bounds,
concurrent writers, priming."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from nanofolks.config.schema import Config
from nanofolks.identity import LOCAL_OWNER
from nanofolks.llm.tokens import count_text
from nanofolks.memory.search import keyword_ranking
from nanofolks.memory.service import MemoryError_, MemoryService
from nanofolks.orchestrator.turn import Turn
from nanofolks.store.db import Database
from nanofolks.store.memory import Filters, load_blob, store_large_output
from nanofolks.store.messages import Message, MessageRepo
from nanofolks.store.rooms import RoomRepo
from tests.conftest import database_before
from tests.fakes.embedder import HashEmbedder

DAY = 86400.0


def service(path: Path, config: Config | None = None) -> MemoryService:
    return MemoryService(config or Config(), Database(path / "nanofolks.db"), embedder=HashEmbedder())


@pytest.fixture
def mem(db: Database) -> MemoryService:  # on each backend (tests/conftest.py); its index beside the database
    svc = MemoryService(Config(), db, embedder=HashEmbedder())
    yield svc
    svc.close()


def room(mem: MemoryService, name: str = "general") -> int:
    return RoomRepo(mem.db).ensure(name, "open", ["leader"]).id


def say(mem: MemoryService, room_id: int, text: str, role: str = "user", sender: str = "ana",
        at: float | None = None, person: str | None = None) -> int:
    """A message of `sender` (a display name), written by `person` (by default the one of that name)."""
    author = "user" if role == "user" else "leader"
    user = role == "user"
    msg = MessageRepo(mem.db).add(Message(room_id, author, role, text, sender=sender if user else "",
                                          person=(f"telegram:{sender}" if person is None else person) if user else "",
                                          created_at=at or time.time()))
    return int(msg.id or 0)


def test_events_teach_notes_preferences_and_entities(mem: MemoryService) -> None:
    general = room(mem)
    note_id = say(mem, general, "remember that my passport expires in May")
    pref_id = say(mem, general, "please keep it short")
    rel_id = say(mem, general, "Lucas is my brother")
    say(mem, general, "Noted, captain!", role="assistant")
    assert mem.vectors.pending_count() == 4 == mem.status()["pending"]  # the note is not learnt yet
    assert mem.index_pending() == 5  # four messages and the note
    hits = mem.search("passport")
    assert hits[0].item.source == "entry" and hits[0].item.text == "My passport expires in May"
    assert hits[0].item.protected
    assert all(h.item.id != note_id or h.item.source != "message" for h in hits)  # the note stands for its message
    prefs = mem.preferences.of("telegram:ana")
    assert [(p.key, p.evidence) for p in prefs] == [("length", [pref_id])]
    lucas = mem.entity("lucas")  # names match case-insensitively
    assert lucas["type"] == "person"
    assert lucas["relations"][0]["subject"] == "ana" and lucas["relations"][0]["predicate"] == "brother"
    assert lucas["relations"][0]["events"][0]["message_id"] == rel_id
    assert mem.index_pending() == 0  # nothing is learnt or embedded twice
    assert mem.vectors.pending_count() == 0
    assert len(mem.preferences.of("telegram:ana")) == 1 and mem.entries.count()["entries"] == 1


def test_short_messages_are_seen_but_not_indexed(mem: MemoryService) -> None:
    general = room(mem)
    say(mem, general, "ok")
    say(mem, general, "thanks!")
    assert mem.index_pending() == 0
    assert not mem.vectors.pending_messages(0, 10) and mem.vectors.pending_count() == 0  # seen: a NULL vector row


def test_search_filters_by_room_bot_and_time(mem: MemoryService) -> None:
    general, project = room(mem), room(mem, "project")
    old = time.time() - 10 * DAY
    say(mem, general, "the boat trip is planned for Sunday", at=old)
    say(mem, project, "the boat engine needs a new filter")
    say(mem, project, "boat insurance renewed by the leader", role="assistant")
    mem.index_pending()
    assert {h.item.room for h in mem.search("boat", room="project")} == {"project"}
    assert {h.item.author for h in mem.search("boat", bot="leader")} == {"leader"}
    assert all(h.item.created_at > old + 1 for h in mem.search("boat", since=time.time() - DAY))
    assert len(mem.search("boat")) == 3
    with pytest.raises(MemoryError_, match="no room"):
        mem.search("boat", room="nowhere")


def test_keywords_find_names_and_numbers_the_vectors_miss(mem: MemoryService) -> None:
    general = room(mem)
    say(mem, general, "the invoice number is INV-20931 for the blue widgets")
    for i in range(30):
        say(mem, general, f"unrelated chatter about lunch plans number {i} and sandwiches")
    mem.index_pending()
    assert "INV-20931" in mem.search("INV-20931", limit=3)[0].item.text


def test_worker_indexes_in_the_background(tmp_path: Path) -> None:
    mem = service(tmp_path)
    general = room(mem)
    ids = [say(mem, general, f"background message number {i} about gardening") for i in range(5)]
    mem.note_messages(ids)  # returns at once
    assert mem.wait_indexed(timeout=60)
    assert len(mem.search("gardening", limit=10)) == 5
    mem.close()
    assert (tmp_path / "memory.hnsw").exists()


def test_forgetting_protects_what_must_stay(mem: MemoryService) -> None:
    cfg = mem.config.memory.forgetting
    start = time.time() - 200 * DAY
    keep_note = mem.add("the alarm code is 4321", protected=True)
    important = mem.add("the client's deadline is June 1st", protected=False, importance=0.9)
    fading = mem.add("we had pizza at the office once", protected=False, importance=0.3)
    mem.preferences.put("telegram:ana", "ana", "length", "Keep answers short.", None, start)
    for e in (keep_note, important, fading):  # all created long ago and never used since
        with mem.db.write() as conn:
            conn.execute("UPDATE memory_entries SET created_at = ? WHERE id = ?", (start, e.id))
    now = time.time()
    first = mem.consolidate(now, merge=False)["forgetting"]
    assert first["marked"] == 1 and first["archived"] == 0
    second = mem.consolidate(now + (cfg.archive_after_days + 1) * DAY, merge=False)["forgetting"]
    assert second["archived"] == 1
    assert mem.entries.get(int(keep_note.id or 0)) is not None
    assert mem.entries.get(int(important.id or 0)) is not None
    assert mem.entries.get(int(fading.id or 0)) is None
    assert mem.preferences.of("telegram:ana")
    assert "pizza" not in " ".join(h.item.text for h in mem.search("pizza office"))
    archived = mem.archive.list()
    assert archived[0]["reason"] == "unused" and "pizza" in archived[0]["text"]
    restored = mem.restore(archived[0]["id"])
    assert "pizza" in mem.search("pizza office")[0].item.text and restored.protected is False


def test_a_restore_that_fails_halfway_leaves_the_entry_archived(mem: MemoryService) -> None:
    entry = mem.add("the boat is moored at pier 7", protected=False)
    mem.archive_entry(entry, "unused", time.time())
    [archived] = mem.archive.list()
    sqlite = mem.db.dialect.name == "sqlite"
    with mem.db.write() as conn:  # the re-insert fails after the archive row was deleted, in the same transaction
        if sqlite:
            conn.execute("CREATE TRIGGER no_room BEFORE INSERT ON memory_entries BEGIN SELECT RAISE(ABORT, 'disk full');"
                         " END")
        else:
            conn.execute("CREATE FUNCTION no_room() RETURNS trigger LANGUAGE plpgsql AS"
                         " $$ BEGIN RAISE EXCEPTION 'disk full'; END $$")
            conn.execute("CREATE TRIGGER no_room BEFORE INSERT ON memory_entries FOR EACH ROW EXECUTE FUNCTION no_room()")
    with pytest.raises(sqlite3.IntegrityError if sqlite else Exception, match="disk full"):
        mem.archive.restore(archived["id"])
    assert [a["id"] for a in mem.archive.list()] == [archived["id"]]  # still archived, not lost
    with mem.db.write() as conn:
        conn.execute("DROP TRIGGER no_room" if sqlite else "DROP TRIGGER no_room ON memory_entries")
    restored = mem.archive.restore(archived["id"])
    assert restored is not None and mem.entries.get(int(restored.id or 0)) is not None and not mem.archive.list()


def test_a_used_memory_is_not_forgotten(mem: MemoryService) -> None:
    entry = mem.add("the spare key is under the blue pot", protected=False, importance=0.3)
    with mem.db.write() as conn:
        conn.execute("UPDATE memory_entries SET created_at = ? WHERE id = ?", (time.time() - 100 * DAY, entry.id))
    assert mem.search("spare key")[0].item.id == entry.id  # a use: last_used is now
    assert mem.consolidate(time.time(), merge=False)["forgetting"]["marked"] == 0


def test_weekly_merge_folds_near_duplicates(mem: MemoryService) -> None:
    first = mem.add("Ana's flight to Lisbon leaves at nine", protected=False, importance=0.5)
    mem.add("Ana's flight to Lisbon leaves at nine!", protected=False, importance=0.5)
    mem.add("the quarterly report is due on Friday", protected=False, importance=0.5)
    report = mem.consolidate(time.time(), merge=True, forget=False)
    assert report["merged"] == 1
    assert mem.entries.count()["entries"] == 2
    assert mem.archive.list()[0]["reason"] == f"merged into #{first.id}"


def test_merging_never_carries_a_message_into_another_room(mem: MemoryService) -> None:
    """Near-duplicates fold only within one room (or among crew-wide notes): the kept entry takes the other's
    sources, and bob's room must not end up holding what alice said in hers."""
    repo = RoomRepo(mem.db)
    alice_dm, bob_dm = repo.ensure("telegram-dm-111", "direct", ["leader"]), repo.ensure("telegram-dm-222", "direct",
                                                                                          ["leader"])
    said = say(mem, alice_dm.id, "the flight to Lisbon leaves at nine", sender="alice")
    text = "The flight to Lisbon leaves at nine"
    hers = mem.add(text, room_id=alice_dm.id, protected=False, importance=0.5, sources=[said], index=False)
    his = mem.add(text + "!", room_id=bob_dm.id, protected=False, importance=0.5, index=False)
    crew = mem.add(text + ".", protected=False, importance=0.5, index=False)
    also_his = mem.add(text + "!!", room_id=bob_dm.id, protected=False, importance=0.5)
    assert mem.consolidate(time.time(), merge=True, forget=False)["merged"] == 1  # bob's two entries only
    assert mem.entries.get(also_his.id or 0) is None and mem.entries.get(his.id or 0) is not None
    assert mem.entries.sources(his.id or 0) == [] and mem.entries.sources(crew.id or 0) == []
    assert mem.entries.sources(hers.id or 0) == [said]


def test_store_and_index_stay_bounded_under_a_long_load(tmp_path: Path) -> None:
    config = Config()
    f = config.memory.forgetting
    f.message_days, f.mark_after_days, f.archive_after_days, f.max_vectors = 5, 3, 2, 400
    mem = service(tmp_path, config)
    general = room(mem)
    start = time.time() - 60 * DAY
    live, files = [], []
    for day in range(40):
        now = start + day * DAY
        for i in range(40):
            say(mem, general, f"day {day} message {i}: the weather and topic {i % 7} again", at=now + i)
        entry = mem.add(f"day {day} passing thought about topic {day % 5}", protected=False, importance=0.3)
        with mem.db.write() as conn:  # written on that simulated day
            conn.execute("UPDATE memory_entries SET created_at = ? WHERE id = ?", (now, entry.id))
        mem.index_pending()
        mem.consolidate(now + DAY - 1, merge=day % 7 == 6)
        mem.index.save()
        live.append(len(mem.index))
        files.append(mem.index.stats()["file_bytes"])
    # 1,600 messages and 40 entries went in; the index holds only the recent window.
    assert max(live[10:]) <= 400
    assert max(files[20:]) <= files[19] * 1.01  # the file stopped growing
    assert mem.entries.count()["entries"] <= 6  # marked after 3 days, archived 2 days later
    assert mem.archive.count() >= 30
    mem.close()


def test_concurrent_writers_share_one_store(tmp_path: Path) -> None:
    first = service(tmp_path)
    general = room(first)
    second = service(tmp_path)  # its own connection: a second process as far as SQLite is concerned
    errors: list[BaseException] = []

    def write(mem: MemoryService, who: str) -> None:
        try:
            for i in range(30):
                mem.add(f"{who} wrote note {i} about the shared garden", protected=False)
                say(mem, general, f"{who} says message {i} about the shared garden")
                mem.index_pending()
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(m, w)) for m, w in ((first, "ana"), (second, "bob"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors
    first.close()
    second.close()
    fresh = service(tmp_path)
    assert fresh.entries.count()["entries"] == 60
    assert len(fresh.ensure_index()) == 120  # every entry and message exactly once
    assert len(fresh.vectors.live_labels(HashEmbedder.name)) == 120
    fresh.close()


def test_search_sees_what_another_process_just_stored(tmp_path: Path) -> None:
    reader, writer = service(tmp_path), service(tmp_path)
    assert reader.search("volcano") == []
    writer.add("the volcano tour is booked for Tuesday")
    assert "volcano" in reader.search("volcano")[0].item.text
    reader.close()
    writer.close()


async def test_priming_stays_within_its_budget_and_names_what_matters(tmp_path: Path) -> None:
    config = Config()
    config.memory.priming_tokens = 150
    mem = service(tmp_path, config)
    general, other = room(mem), room(mem, "travel")
    say(mem, general, "keep it short")
    say(mem, general, "Lucas is my brother")
    for i in range(50):
        mem.add(f"long memory {i} about the beach house, the boat and the summer holidays with Lucas", protected=False)
    say(mem, other, "booking the ferry to the islands for Lucas and me", at=time.time() - 3600)
    mem.index_pending()
    turn = Turn(room=RoomRepo(mem.db).get("general"), text="what should Lucas pack for the beach?",
                sender="ana", person="telegram:ana", turn_id="t1")
    block = await mem.prime(turn, "")
    assert count_text(block) <= 150
    assert block.startswith("## Memory")
    assert "Keep answers short." in block
    assert "Lucas is this person's brother" in block
    assert await mem.prime(turn, "") == block  # the bots of one turn share the look-ups
    mem.close()


async def test_priming_never_holds_up_a_reply(tmp_path: Path) -> None:
    config = Config()
    config.memory.priming_timeout = 0.2

    class SlowEmbedder(HashEmbedder):
        def query(self, text: str):  # noqa: ANN201
            time.sleep(2)
            return super().query(text)

    mem = MemoryService(config, Database(tmp_path / "nanofolks.db"), embedder=SlowEmbedder())
    turn = Turn(room=RoomRepo(mem.db).ensure("general", "open", []), text="hello there", turn_id="t2")
    started = asyncio.get_running_loop().time()
    assert await mem.prime(turn, "") == ""
    assert asyncio.get_running_loop().time() - started < 1.9  # gave up before the embedder answered
    mem.close()


def test_forget_and_bad_ids(mem: MemoryService) -> None:
    general = room(mem)
    msg = say(mem, general, "my locker combination is 1234")
    entry = mem.add("the locker is number 56")
    mem.index_pending()
    mem.forget(str(entry.id))
    mem.forget(f"message:{msg}")
    assert mem.search("locker") == []
    for bad in ("abc", "message:999", "999", "thing:1"):
        with pytest.raises(MemoryError_):
            mem.forget(bad)
    with pytest.raises(MemoryError_):
        mem.add("   ")


def test_large_tool_outputs_are_stored_once_and_referenced(mem: MemoryService) -> None:
    small = "short output"
    assert store_large_output(mem.db, small) == small
    big = "line of build log\n" * 2000
    ref = store_large_output(mem.db, big)
    assert len(ref) < 3000 and "blob:" in ref
    blob_id = int(ref.rsplit("blob:", 1)[1].rstrip("]"))
    assert load_blob(mem.db, blob_id) == big
    assert store_large_output(mem.db, big) == ref  # deduplicated by content


def test_messages_from_before_memory_existed_are_searchable(tmp_path: Path) -> None:
    db = Database(tmp_path / "nanofolks.db")
    general = RoomRepo(db).ensure("general", "open", [])
    MessageRepo(db).add(Message(general.id, "user", "user", "the harbour festival starts on Saturday"))
    mem = MemoryService(Config(), db, embedder=HashEmbedder())
    assert mem.search("festival", touch=False)[0].item.source == "message"  # full text right away
    mem.index_pending()
    assert mem.search("harbour festival")[0].similarity is not None
    mem.close()


def test_the_indexer_waits_for_a_quiet_crew_but_not_forever(mem: MemoryService,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Embedding beside a reply's query embedding slows the reply: the worker waits for a pause."""
    import nanofolks.memory.service as service_module

    monkeypatch.setattr(service_module, "QUIET_SECONDS", 0.6)  # six times the pace of the talk below
    monkeypatch.setattr(service_module, "MAX_DEFER_SECONDS", 1.5)
    general = room(mem)

    def talk(seconds: float) -> list[int]:
        """A busy crew: a message every 0.1 s."""
        ids, started = [], time.monotonic()
        while time.monotonic() - started < seconds:
            ids.append(say(mem, general, f"a busy crew keeps talking, message {len(ids)}"))
            mem.note_messages(ids[-1:])
            time.sleep(0.1)
        return ids

    talk(0.9)
    assert len(mem.vectors.pending_messages(0, 100)) >= 8  # nothing embedded while it talked
    assert mem.wait_indexed(5)  # embedded once it paused

    said = talk(3.0)  # never pausing for longer than the deferral
    pending = {event.id for event in mem.vectors.pending_messages(0, 1000)}
    assert set(said[:5]) & pending == set()  # the first ones were embedded while it still talked


async def test_a_person_searches_and_is_primed_only_from_their_own_rooms(mem: MemoryService) -> None:
    """bob must not read alice's API key back from his own DM (search_memory, priming)."""
    from nanofolks.agent.tools import ToolContext
    from nanofolks.memory.tool import search_memory_tool


    repo = RoomRepo(mem.db)
    alice_dm, bob_dm = repo.ensure("telegram-dm-111", "direct", ["leader"]), repo.ensure("telegram-dm-222", "direct",
                                                                                          ["leader"])
    say(mem, alice_dm.id, "my deploy api key is zebra-7781-quartz", sender="alice")
    say(mem, bob_dm.id, "my favourite api is the weather one", sender="bob")
    mem.add("the crew's api style guide lives in docs/api.md")  # the owner's crew-wide note (no room)
    mem.index_pending()
    bob = (bob_dm.id,)
    found = [h.item.text for h in mem.search("api key", 10, rooms=bob)]
    assert found and not any("zebra" in t for t in found)
    assert any("style guide" in t for t in found) and any("weather" in t for t in found)
    assert any("zebra" in h.item.text for h in mem.search("api key", 10))  # the owner sees every room
    with pytest.raises(MemoryError_):
        mem.search("api key", 10, room="telegram-dm-111", rooms=bob)  # naming her room does not help

    turn = Turn(room=bob_dm, text="what is the deploy api key?", sender="bob", turn_id="t-bob", scope=bob)
    tool = search_memory_tool(mem)
    ctx = ToolContext(config=mem.config, workspace=Path("."), crew=None, turn=turn, bot="leader",  # type: ignore[arg-type]
                      tasks=None, store=None)  # type: ignore[arg-type]
    assert "zebra" not in await tool.run(ctx, {"query": "deploy api key"})
    mem.config.agents.defaults.context_window = 8192
    block = await mem.prime(turn, "gpt-4o")
    assert "zebra" not in block


async def test_priming_tells_nobody_what_was_learnt_in_another_persons_rooms(mem: MemoryService) -> None:
    """Entities, relations and preferences learnt in alice's DM stay there: bob, even named "alice" and
    naming her brother, is primed with none of them; the owner's crew-wide notes reach everyone."""
    repo = RoomRepo(mem.db)
    alice_dm = repo.ensure("telegram-dm-111", "direct", ["leader"])
    bob_dm = repo.ensure("telegram-dm-222", "direct", ["leader"])
    say(mem, alice_dm.id, "Lucas is my brother", sender="alice")
    say(mem, alice_dm.id, "I work at Zephyr Labs", sender="alice")
    say(mem, alice_dm.id, "please keep it short", sender="alice")
    mem.add("Captain Flint works at Harbour Bank")  # the owner's note: crew-wide
    mem.index_pending()
    mem.config.agents.defaults.context_window = 8192
    bob = (bob_dm.id,)
    assert mem.profile("telegram:alice", bob) == [] and mem.preferences.of("telegram:alice", bob) == []
    assert mem.entities_named_in("how is Lucas doing at Zephyr Labs?", bob) == []
    for sender in ("bob", "alice"):  # a display name is anyone's to take
        turn = Turn(room=bob_dm, text="how is Lucas doing at Zephyr Labs? and Captain Flint?", sender=sender,
                    person="telegram:bob", turn_id=f"t-{sender}", scope=bob)
        block = await mem.prime(turn, "gpt-4o")
        assert "brother" not in block and "Zephyr" not in block and "short" not in block.lower(), block
        assert "Harbour Bank" in block, block

    owner = Turn(room=alice_dm, text="how is Lucas doing?", sender="alice", person="telegram:alice", turn_id="t-owner",
                 scope=None)
    assert "brother" in await mem.prime(owner, "gpt-4o")  # the owner (no scope) sees every room
    in_her_room = Turn(room=alice_dm, text="how is Lucas doing?", sender="alice", person="telegram:alice",
                       turn_id="t-her", scope=(alice_dm.id,))
    assert "brother" in await mem.prime(in_her_room, "gpt-4o")  # and alice in her own room


async def test_a_name_taken_in_a_shared_group_gets_nobody_elses_preferences_or_profile(mem: MemoryService) -> None:
    """In one group both talk in, someone calling themselves "alice" is primed with none of alice's
    preferences or profile: memory knows people by platform and sender id, the name is a label."""
    group = RoomRepo(mem.db).ensure("telegram-group-9", "open", ["leader"])
    say(mem, group.id, "please keep it short", sender="alice", person="telegram:111")
    say(mem, group.id, "I work at Zephyr Labs", sender="alice", person="telegram:111")
    say(mem, group.id, "I prefer bullet points", sender="alice", person="telegram:222")  # bob, renamed
    mem.index_pending()
    mem.config.agents.defaults.context_window = 8192
    scope = (group.id,)
    assert [p.key for p in mem.preferences.of("telegram:111", scope)] == ["length"]
    assert [(p.key, p.label) for p in mem.preferences.of("telegram:222", scope)] == [("format", "alice")]
    assert mem.profile("telegram:111", scope) == ["this person works at Zephyr Labs"]
    assert mem.profile("telegram:222", scope) == []
    impostor = Turn(room=group, text="what do you know about me?", sender="alice", person="telegram:222",
                    turn_id="t-222", scope=scope)
    block = await mem.prime(impostor, "gpt-4o")
    assert "Use bullet points." in block and "short" not in block.lower() and "Zephyr" not in block, block
    alice = Turn(room=group, text="what do you know about me?", sender="alice", person="telegram:111",
                 turn_id="t-111", scope=scope)
    block = await mem.prime(alice, "gpt-4o")
    assert "Keep answers short." in block and "this person works at Zephyr Labs" in block, block
    assert "bullet" not in block, block
    assert mem.preferences.people() == [("telegram:111", "alice"), ("telegram:222", "alice")]


def test_an_unknown_writer_teaches_no_preference_and_no_profile(mem: MemoryService) -> None:
    """A user message whose writer is not known (none recorded) is remembered, but says nothing of anyone."""
    general = room(mem)
    say(mem, general, "keep it short, I work at Zephyr Labs", person="")
    mem.index_pending()
    assert mem.preferences.count() == 0 and mem.profile("") == []
    assert mem.entity("Zephyr Labs")["relations"] == []


def test_keywords_find_words_inside_japanese_and_chinese_text(tmp_path: Path) -> None:
    """Japanese and Chinese write no spaces between words: the word index sees a whole sentence as one
    token, the trigram index (SQLite's) finds a word inside it, for entries and messages, and forgets with them."""
    mem = service(tmp_path)
    if mem.db.dialect.name == "postgresql":
        pytest.skip("PostgreSQL has no trigram index (m021 is SQLite's): a CJK run is found only whole")
    general = room(mem)
    ramen = say(mem, general, "駅前のラーメン屋は火曜日が定休日です。")
    say(mem, general, "新しいプロジェクトの締め切りは3月末です。")
    tea = mem.add("我最喜欢的茶是龙井茶，每天早上喝一杯。", kind="note")
    mem.add("The ramen place near the station is closed on Tuesdays.", kind="note")

    def keyword_hits(query: str) -> list[tuple[str, int]]:
        found = keyword_ranking(mem.search_repo, query, 10, Filters())
        return sorted(found, key=lambda ref: found[ref].rank)

    assert keyword_hits("ラーメン屋はいつ休み？")[:1] == [("message", ramen)]
    assert keyword_hits("龙井茶")[:1] == [("entry", tea.id)]
    assert keyword_hits("休み") == []  # two characters: too short for a trigram, and no guess
    mem.forget(f"entry:{tea.id}")
    assert keyword_hits("龙井茶") == []
    # Only text holding such characters goes to the trigram index (plain ASCII skips even the check), and an
    # edited text follows its edit.
    say(mem, general, "Le café de la gare ferme à 18 h.")
    note = mem.add("plain ascii note", kind="note")
    assert mem.db.query_one("SELECT COUNT(*) FROM messages_cjk")[0] == 2
    with mem.db.write() as conn:
        conn.execute("UPDATE memory_entries SET text = ? WHERE id = ?", ("抹茶のアイスが好き", note.id))
    assert keyword_hits("抹茶のアイス")[:1] == [("entry", note.id)]
    mem.close()


def test_japanese_stored_before_the_trigram_index_existed_is_found(tmp_path: Path) -> None:
    conn = database_before(tmp_path / "nanofolks.db", "m021_house_memory_cjk")
    conn.execute("INSERT INTO memory_entries (text, created_at, updated_at) VALUES (?, 0, 0)",
                 ("姉の美咲は大阪で看護師をしています。",))
    conn.close()
    mem = service(tmp_path)
    assert list(keyword_ranking(mem.search_repo, "大阪の看護師", 10, Filters())) == [("entry", 1)]
    mem.close()


def test_people_known_by_their_names_before_are_known_by_who_they_are_after_the_upgrade(tmp_path: Path) -> None:
    """m023: each stored user message gets its writer (the gateway's inbox row, the terminal's owner); the
    preferences are split by who stated them; a person's own entity is theirs only where one person alone
    used that name."""
    conn = database_before(tmp_path / "nanofolks.db", "m023_identity_people")
    conn.execute("INSERT INTO rooms (id, name, type, created_at) VALUES (1, 'telegram-group-9', 'open', 0)")
    said = [  # (inbox id, sender id, display name, text); inbox None: the terminal
        (1, "111", "alice", "please keep it short"), (2, "222", "alice", "give me more detail"),
        (None, "", "user", "I prefer bullet points"), (3, "333", "carol", "I work at Acme Corp"),
        (4, "111", "alice", "I live in Paris"), (5, "222", "alice", "I live in Rome")]
    for n, (inbox, sender_id, name, text) in enumerate(said, 1):
        if inbox:
            conn.execute("INSERT INTO inbox (id, platform, account, chat_id, message_id, sender_id, sender_name, text,"
                         " status, received_at) VALUES (?, 'telegram', 'bot', '-9', ?, ?, ?, ?, 'done', 0)",
                         (inbox, str(inbox), sender_id, name, text))
        conn.execute("INSERT INTO messages (id, room_id, author, role, content, platform, sender, turn_id,"
                     " created_at) VALUES (?, 1, 'user', 'user', ?, ?, ?, ?, ?)",
                     (n, text, "telegram" if inbox else "cli", name, f"telegram-inbox-{inbox}" if inbox else "t", n))
    # what the version before learnt: keyed by display name
    conn.execute("INSERT INTO memory_preferences VALUES (1, 'alice', 'length', 'Give detailed answers.', 1, 2)")
    conn.execute("INSERT INTO memory_preferences VALUES (2, 'user', 'format', 'Use bullet points.', 3, 3)")
    conn.executemany("INSERT INTO memory_preference_evidence VALUES (?, ?)", [(1, 1), (1, 2), (2, 3)])
    for entity_id, name in ((1, "alice"), (2, "carol"), (3, "Acme Corp"), (4, "Paris"), (5, "Rome")):
        conn.execute("INSERT INTO memory_entities (id, name, type, first_seen, last_seen) VALUES (?, ?, ?, 0, 0)",
                     (entity_id, name, "person" if entity_id < 3 else "place"))
        conn.execute("INSERT INTO memory_aliases VALUES (?, ?)", (name, entity_id))
    for rel_id, subject, predicate, obj, message_id in ((1, 2, "works at", 3, 4), (2, 1, "lives in", 4, 5),
                                                        (3, 1, "lives in", 5, 6)):
        conn.execute("INSERT INTO memory_relations VALUES (?, ?, ?, ?, 0)", (rel_id, subject, predicate, obj))
        conn.execute("INSERT INTO memory_relation_events VALUES (?, ?)", (rel_id, message_id))
    conn.close()

    mem = service(tmp_path)
    people = {m.id: m.person for m in MessageRepo(mem.db).recent(1, 10)}
    assert people == {1: "telegram:111", 2: "telegram:222", 3: LOCAL_OWNER, 4: "telegram:333", 5: "telegram:111",
                      6: "telegram:222"}
    prefs = {p: [(x.key, x.text, x.evidence) for x in mem.preferences.of(p)]
             for p in ("telegram:111", "telegram:222", LOCAL_OWNER)}
    assert prefs == {"telegram:111": [("length", "Keep answers short.", [1])],
                     "telegram:222": [("length", "Give detailed answers.", [2])],
                     LOCAL_OWNER: [("format", "Use bullet points.", [3])]}
    assert mem.profile("telegram:333") == ["this person works at Acme Corp"]
    assert mem.profile("telegram:111") == [] and mem.profile("telegram:222") == []  # "alice" was two people
    said_again = say(mem, 1, "keep it short, please", sender="carol", person="telegram:333")
    mem.index_pending()  # the rebuilt tables take new preferences, and forget them with their person's row
    assert [p.evidence for p in mem.preferences.of("telegram:333")] == [[said_again]]
    with mem.db.write() as c:
        c.execute("DELETE FROM memory_preferences WHERE person = 'telegram:333'")
    assert mem.db.query_one("SELECT COUNT(*) FROM memory_preference_evidence")[0] == 3
    mem.close()


def test_the_model_distils_each_room_apart(tmp_path: Path) -> None:
    """One consolidation call per room: an entry never blends alice's DM into a room bob reads."""
    from nanofolks.llm.results import ChatResult

    prompts: list[str] = []

    class Distiller:
        spend = None

        async def chat(self, messages: list[dict], **kwargs: object) -> ChatResult:
            prompt = messages[-1]["content"]
            prompts.append(prompt)
            ids = [int(i) for i in re.findall(r"^\[(\d+)\]", prompt, flags=re.M)]
            text = " and ".join(line.split(": ", 1)[1] for line in prompt.splitlines() if line.startswith("["))
            return ChatResult(text=json.dumps({"entries": [{"kind": "fact", "text": text, "sources": ids}]}),
                              model="m")

    config = Config()
    config.memory.consolidation.llm = True
    mem = MemoryService(config, Database(tmp_path / "nanofolks.db"), embedder=HashEmbedder(), llm=Distiller())  # type: ignore[arg-type]
    repo = RoomRepo(mem.db)
    alice_dm, group = repo.ensure("telegram-dm-111", "direct", ["leader"]), repo.ensure("crew-room", "open", ["leader"])
    say(mem, alice_dm.id, "my bank PIN hint is the name of my first boat", sender="alice")
    say(mem, group.id, "the regatta starts on Saturday at nine", sender="bob")
    say(mem, alice_dm.id, "my sister lives in Porto", sender="alice")
    mem.consolidate(time.time() + 1, merge=False, forget=False)
    assert len(prompts) == 2 and not any("PIN" in p and "regatta" in p for p in prompts)
    rows = mem.db.query("SELECT room_id, text FROM memory_entries WHERE origin = 'consolidation:llm'")
    by_room = {r[0]: r[1] for r in rows}
    assert "regatta" in by_room[group.id] and "PIN" not in by_room[group.id]
    assert "PIN" in by_room[alice_dm.id] and "Porto" in by_room[alice_dm.id]
    mem.close()


def test_a_code_inside_chinese_text_is_found_and_told_from_its_look_alike(tmp_path: Path) -> None:
    mem = service(tmp_path)  # the trigram index is SQLite's
    mine = mem.add("我的车牌号是沪A7K3M9，停在地下二层。", kind="note")
    shuttle = mem.add("公司班车的车牌号是沪A7K3N9。", kind="note")
    flight = mem.add("下个月去成都的航班是CA4113。", kind="note")
    found = keyword_ranking(mem.search_repo, "沪A7K3M9", 10, Filters())
    assert found[("entry", mine.id)].specific == 1.0 and ("entry", shuttle.id) not in found
    assert keyword_ranking(mem.search_repo, "what time is CA4113?", 10, Filters())[("entry", flight.id)].specific == 1.0
    mem.close()
