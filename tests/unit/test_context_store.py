"""A room's context markers: where the context starts, compare-and-set on the room's version, and a
tool call never compacted apart from its result."""

from __future__ import annotations

from nanofolks.context.room import tool_safe_cut
from nanofolks.context.window import ChatWindows
from nanofolks.store.context import START, SUMMARY, ContextRepo
from nanofolks.store.db import Database
from nanofolks.store.messages import Message, MessageRepo
from nanofolks.store.rooms import RoomRepo


def setup(db: Database) -> tuple[ContextRepo, MessageRepo, int]:
    room = RoomRepo(db).create("general", "open", ["leader"])
    return ContextRepo(db), MessageRepo(db), room.id


def say(messages: MessageRepo, room_id: int, n: int) -> list[Message]:
    return [messages.add(Message(room_id, "user" if i % 2 == 0 else "leader", "user" if i % 2 == 0 else "assistant",
                                 f"message {i}")) for i in range(n)]


def test_a_new_room_starts_at_the_beginning(db: Database) -> None:
    repo, messages, room_id = setup(db)
    said = say(messages, room_id, 3)
    state = repo.state(room_id)
    assert (state.after_id, state.marker_id, state.summary, state.noticed) == (0, 0, None, False)
    assert [m.content for m in repo.since(room_id, 0)] == [m.content for m in said]


def test_a_summary_moves_the_start_and_later_messages_stay(db: Database) -> None:
    repo, messages, room_id = setup(db)
    said = say(messages, room_id, 6)
    state = repo.state(room_id)
    later = say(messages, room_id, 2)  # appended while the summary was being written
    marker = Message(room_id, "nanofolks", "assistant", "the gist", kind=SUMMARY, meta={"through_id": said[3].id})
    assert repo.move(state.version, marker)
    now = repo.state(room_id)
    assert now.summary is not None and now.summary.content == "the gist" and now.after_id == said[3].id
    assert [m.id for m in repo.since(room_id, now.after_id)] == [said[4].id, said[5].id, *(m.id for m in later)]
    assert messages.count(room_id) == 9  # every message kept, and the summary beside them


def test_a_stale_version_writes_nothing(db: Database) -> None:
    repo, messages, room_id = setup(db)
    said = say(messages, room_id, 4)
    state = repo.state(room_id)
    assert repo.move(state.version, Message(room_id, "nanofolks", "system", "reset", kind=START,
                                            meta={"through_id": said[1].id}))
    lost = Message(room_id, "nanofolks", "assistant", "late", kind=SUMMARY, meta={"through_id": said[3].id})
    assert not repo.move(state.version, lost)
    assert repo.state(room_id).after_id == said[1].id and repo.summaries(room_id) == 0
    assert lost.id is None


def tool(kind: str, call_id: str, turn: str) -> Message:
    role = "assistant" if kind == "tool_call" else "tool"
    return Message(1, "coder", role, "{}", kind=kind, turn_id=turn, meta={"call_id": call_id})


def chat(text: str, turn: str) -> Message:
    return Message(1, "user", "user", text, turn_id=turn)


def test_a_tool_call_is_never_compacted_while_its_result_is_kept() -> None:
    # Two turns interleaved (two processes): turn b's call before the cut, its result after it.
    messages = [chat("a", "a"), tool("tool_call", "c1", "b"), chat("b", "b"), tool("tool_result", "c1", "b"),
                chat("c", "c")]
    assert tool_safe_cut(messages, 2) == 1
    assert tool_safe_cut(messages, 4) == 4  # call and result both compacted
    # Text-mode call ids repeat across turns: the turn tells them apart.
    messages = [tool("tool_call", "text_1", "a"), tool("tool_result", "text_1", "a"), chat("x", "b"),
                tool("tool_result", "text_1", "b")]
    assert tool_safe_cut(messages, 2) == 2


def test_the_chat_window_is_topped_up_and_read_again_when_the_start_moves(db: Database) -> None:
    """Kept between turns, the window always equals a fresh read: messages added by another process
    (another connection) are picked up, other kinds are not, and a new start marker rebuilds it."""
    repo, messages, room_id = setup(db)
    windows = ChatWindows(repo)
    other_db = Database(db.path) if isinstance(db, Database) else type(db)(db.url)
    other = MessageRepo(other_db)  # the CLI's `chat -m` beside the gateway

    def fresh(limit: int) -> tuple[list[int | None], int]:
        state = repo.state(room_id)
        return [m.id for m in repo.since(room_id, state.after_id, limit=limit)], repo.count_since(room_id, state.after_id)

    def kept(limit: int) -> tuple[list[int | None], int]:
        found, count = windows.newest(repo.state(room_id), limit)
        return [m.id for m in found], count

    said = say(messages, room_id, 5)
    assert kept(3) == fresh(3) and kept(3)[1] == 5
    say(other, room_id, 2)
    other.add(Message(room_id, "leader", "assistant", "{...}", kind="tool_call"))
    assert kept(3) == fresh(3) and kept(3)[1] == 7
    assert kept(2) == fresh(2)  # a shorter window is served from the same one
    assert kept(6) == fresh(6)  # a longer one is read again
    state = repo.state(room_id)
    assert repo.move(state.version, Message(room_id, "nanofolks", "assistant", "gist", kind=SUMMARY,
                                            meta={"through_id": said[3].id}))
    say(messages, room_id, 1)
    assert kept(6) == fresh(6) and kept(6)[1] == 4
    assert windows.newest(repo.state(room_id), 0) == ([], 4)
    other_db.close()


def test_the_window_of_sent_messages_moves_half_the_limit_at_a_time() -> None:
    from nanofolks.context.room import window_start

    assert [window_start(n, 10) for n in (0, 10)] == [0, 0]
    starts = [window_start(n, 10) for n in range(11, 31)]
    assert sorted(set(starts)) == [5, 10, 15, 20]  # four moves over twenty new messages, not twenty
    assert all(5 < n - s <= 10 for n, s in zip(range(11, 31), starts, strict=True))  # 6 to 10 sent
    assert window_start(7, 0) == 7  # historyMessages 0: nothing sent
