"""One human message through the five steps. Reads top to bottom:

    store the message -> tag -> intent -> dispatch -> collect -> final -> store the replies
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING

from nanofolks.agent.budget import TurnBudget
from nanofolks.agent.runner import BotRunner, TokenSink
from nanofolks.agent.tools.hiring import hiring_tools
from nanofolks.config.schema import Config
from nanofolks.context.room import RoomContext
from nanofolks.crew.crew import Crew
from nanofolks.identity import LOCAL_OWNER
from nanofolks.llm.client import LLM
from nanofolks.orchestrator.collect import collect
from nanofolks.orchestrator.dispatch import dispatch
from nanofolks.orchestrator.final import final
from nanofolks.orchestrator.hiring import HiringDesk, settle_reply
from nanofolks.orchestrator.intent import classifier_prompt, classify
from nanofolks.orchestrator.tag import tag
from nanofolks.orchestrator.turn import FinalAnswer, Turn
from nanofolks.rooms.tasks import Tasks
from nanofolks.routing.router import Router
from nanofolks.routing.tiers import cheapest_model
from nanofolks.store.leases import RoomLeases
from nanofolks.store.messages import Message, MessageRepo
from nanofolks.store.rooms import Room
from nanofolks.store.routing import RoutingRepo

if TYPE_CHECKING:
    from nanofolks.memory.service import MemoryService
    from nanofolks.secrets.keeper import Keeper
    from nanofolks.skills.skills import Skills

log = logging.getLogger(__name__)

# commit(answer), once the answer is known and before the write transaction (formatting a reply for a platform
# happens there, never while the database is locked), returns what runs inside the transaction.
Commit = Callable[[FinalAnswer], Callable[[sqlite3.Connection], None]]

INTENT_WAIT = 5.0  # seconds: a one-word classification that takes longer is not worth it, the rules' guess stands
CREW_LOOK_SECONDS = 1.0  # a hire or retirement made by another process is seen by the turns that start this much later

class Pipeline:
    def __init__(self, config: Config, crew: Crew, llm: LLM, messages: MessageRepo,
                 memory: MemoryService | None = None, tasks: Tasks | None = None, keeper: Keeper | None = None,
                 skills: Skills | None = None):
        self.config = config
        self.crew = crew
        self.llm = llm
        self.messages = messages
        self.memory = memory
        self.context = RoomContext(config, crew, llm, messages.db)
        self.runner = BotRunner(config, crew, llm, messages, tasks=tasks, memory=memory, keeper=keeper,
                                skills=skills, context=self.context)
        self.desk = HiringDesk(config, crew, messages.db)
        for tool in hiring_tools(self.desk):
            self.runner.tools.register(tool)
        self._compactions: dict[int, asyncio.Future[None]] = {}
        self.router = Router(config, llm, RoutingRepo(messages.db))
        self._room_locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._slots = asyncio.Semaphore(config.orchestrator.max_concurrent_turns)
        self.leases = RoomLeases(messages.db)

    async def handle(
        self,
        room: Room,
        text: str,
        *,
        sender: str = "user",
        person: str = LOCAL_OWNER,
        platform: str = "cli",
        turn_id: str | None = None,
        chat: str = "",
        scope: tuple[int, ...] | None = None,
        on_token: TokenSink | None = None,
        commit: Commit | None = None,
    ) -> FinalAnswer:
        """Answer one message. One turn at a time per room; a global cap on turns across rooms.
        What `commit(answer)` returns runs in the transaction that stores the replies (all or nothing).
        `sender` is the display name, `person` who it is ("telegram:12345"; the terminal's owner by default).
        `scope`: the rooms the sender's memory may see (None: every room, for the owner)."""
        turn = Turn(room=room, text=text, sender=sender, person=person, platform=platform,
                    turn_id=turn_id or uuid.uuid4().hex, chat=chat, scope=scope)
        db = self.messages.db
        # One turn per room in this process (the lock), then across processes (the lease: gateway and CLI).
        self.crew.refresh(max_age=CREW_LOOK_SECONDS)  # a bot hired or retired by another process (`bot create`...)
        async with self._room_locks[room.id], self._slots, self.leases.hold(room.id):
            # The deadline starts once the room is ours: every model call and retry of the turn ends by it, so
            # the next message in the room waits no longer than this.
            turn.time_limit = self.config.orchestrator.turn_deadline
            turn.deadline = asyncio.get_running_loop().time() + turn.time_limit
            asked = Message(room.id, "user", "user", text, platform=platform, sender=sender, person=person,
                            turn_id=turn.turn_id)
            if await db.quick(self.messages.add_turn_message, asked):  # a re-run turn (same id) stored it already
                self._index([asked])
            turn.message_id = asked.id
            turn.tags = tag(text, self.crew)
            turn.intent = await classify(text, turn.tags, (lambda t: self._ask_intent(t, turn.deadline))
                                         if self.config.orchestrator.llm_intent else None)
            if self.config.routing.enabled:
                turn.route = await self.router.route(room.id, text[:self.config.orchestrator.max_message_chars])
            turn.plan = dispatch(turn.tags, turn.intent, room, self.crew, self.config.orchestrator.turn_budget)
            await self.desk.prepare(turn)  # a hire asked for, or agreed to: done before the leader speaks
            budget = TurnBudget(self.config.orchestrator.turn_budget)
            # a hiring turn is not streamed: its reply may yet be replaced (settle_reply)
            turn.replies, consulted = await collect(turn, turn.plan, self.runner, budget,
                                                    None if turn.desk_note else on_token)
            settle_reply(turn)
            answer = final(turn, turn.tags, turn.plan, turn.replies, self.crew)
            cut = self.config.orchestrator.max_message_chars
            if len(text) > cut:
                answer.notes.append(f"Your message is {len(text):,} characters long: it is kept whole in the room, "
                                    "but the crew read only its beginning and its end.")
            if self.llm.spend is not None:  # told once a day, in the chat where it happened
                answer.notes += await self.llm.spend.notices([r.bot for r in (*consulted, *turn.replies)])
            replies = [Message(room.id, r.bot, "assistant", r.text, kind=kind, platform=platform, turn_id=turn.turn_id)
                       for kind, group in (("consult", consulted), ("chat", turn.replies)) for r in group if r.ok]
            check = await db.quick(self.context.check_turn, room, replies)
            if check.notice is not None:  # the context is filling up: the reply says so, once
                answer.notes.append(check.notice.content)
            await db.quick(self.messages.add_many, replies + ([check.notice] if check.notice else []),
                           commit(answer) if commit else None)
            self._index(replies)
        if check.compact:
            self._compact_later(room)
        return answer

    def _compact_later(self, room: Room) -> None:
        """Compact the room's context after the reply, in the background (one task per room)."""
        if room.id not in self._compactions:
            task = asyncio.ensure_future(self._compact(room))
            self._compactions[room.id] = task
            task.add_done_callback(lambda _: self._compactions.pop(room.id, None))

    async def _compact(self, room: Room) -> None:
        try:
            result = await self.context.compact(room)
            log.info("context of #%s: %s", room.name, result.reason)
        except Exception as exc:  # noqa: BLE001 - the reply is out; the next turn tries again, fitting holds meanwhile
            log.warning("compacting #%s failed: %s", room.name, str(exc) or type(exc).__name__)

    async def settle(self) -> None:
        """Wait for the compactions under way (a one-message CLI run, before it exits)."""
        while self._compactions:
            await asyncio.gather(*self._compactions.values(), return_exceptions=True)

    def _index(self, messages: list[Message]) -> None:
        if self.memory is not None:
            self.memory.note_messages([m.id for m in messages])  # indexed in the background: the reply never waits

    async def _ask_intent(self, text: str, deadline: float | None) -> str:
        prompt = classifier_prompt(text[:self.config.orchestrator.max_message_chars])
        wait = asyncio.get_running_loop().time() + INTENT_WAIT
        async with asyncio.timeout_at(min(wait, deadline or wait)):
            result = await self.llm.chat(prompt, model=cheapest_model(self.config), bot="intent", max_tokens=5)
        return result.text
