"""Team heartbeats: a bot wakes up on its own (opt-in, agents.bots.<handle>.heartbeat) and looks first,
without any model, at what is there to do:

    its open tasks due today or overdue, in every room
    mentions of @handle that its turn never answered
    unchecked "- [ ]" lines of the checklist file in the workspace

Findings it already acted on are remembered (heartbeat_seen), so only something new is worth a model
call: nothing new, no call at all. Something new: one call on the cheapest tier, and the bot messages
the room (stored, and delivered to every chat mapped to it) only when it has something to say."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import sqlite3
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nanofolks.config.loader import workspace_path
from nanofolks.config.schema import HeartbeatConfig
from nanofolks.crew.prompt import system_prompt
from nanofolks.llm.client import LLM, LLMError
from nanofolks.routines.delivery import Target, outbox_rows
from nanofolks.routines.schedule import parse_duration, zone
from nanofolks.routing.tiers import cheapest_model as cheapest_tier_model
from nanofolks.store.messages import Message
from nanofolks.store.outbox import insert_rows
from nanofolks.store.routines import HeartbeatRepo
from nanofolks.store.worklog import WorkEntry
from nanofolks.store.worklog import insert as log_work

if TYPE_CHECKING:
    from nanofolks.routines.activity import Activity
    from nanofolks.services import Services

log = logging.getLogger("nanofolks.heartbeat")

MENTION_WINDOW = 86400.0  # unanswered mentions older than a day are left alone
SILENT = "NOTHING"
_UNCHECKED = re.compile(r"^\s*[-*]\s+\[ \]\s+(.+?)\s*$")


def cheapest_model(llm: LLM, handle: str) -> str:
    """With routing on, the cheapest tier's model; otherwise the bot's own model."""
    if llm.config.routing.enabled:
        return cheapest_tier_model(llm.config)
    return llm.model_for(handle)


@dataclass
class Finding:
    key: str  # stable: the same thing found again has the same key
    room_id: int
    room: str
    text: str


def enabled(services: Services) -> dict[str, HeartbeatConfig]:
    """Bots of the crew whose heartbeat is on."""
    bots = services.config.agents.bots
    return {h: bots[h].heartbeat for h in services.crew.handles if h in bots and bots[h].heartbeat.enabled}


class Heartbeats:
    def __init__(self, services: Services, activity: Activity | None = None):
        self.services = services
        self.activity = activity
        self.repo = HeartbeatRepo(services.db)
        self.calls = 0  # model calls made by heartbeats in this process

    def look(self, handle: str, now: float | None = None) -> list[Finding]:
        """What there is to do for the bot, found without any model (database thread)."""
        now = now or time.time()
        config = self.services.config
        today = dt.datetime.fromtimestamp(now, zone(config.routines.timezone)).date().isoformat()
        found = [Finding(f"task:{t['id']}:{t['status']}:{t['due']}", t["room_id"], t["room"],
                         f"task #{t['number']} \"{t['title']}\" ({t['status']}) is "
                         f"{'due today' if t['due'] == today else 'overdue since ' + t['due']}")
                 for t in self.repo.due_tasks(handle, today)]
        grace = parse_duration(config.routines.live_for)  # a mention younger than this may still be answered
        found += [Finding(f"mention:{m['id']}", m["room_id"], m["room"],
                          f"{m['sender'] or 'the user'} mentioned you and got no answer from you: {m['content'][:300]!r}")
                  for m in self.repo.unanswered_mentions(handle, now - MENTION_WINDOW, now - grace)]
        checklist = workspace_path(config) / config.agents.bots[handle].heartbeat.checklist
        if checklist.is_file():
            general = self.services.rooms.general()
            for line in checklist.read_text(encoding="utf-8", errors="replace").splitlines():
                match = _UNCHECKED.match(line)
                if match:
                    digest = hashlib.sha256(match.group(1).encode()).hexdigest()[:16]
                    found.append(Finding(f"checklist:{digest}", general.id, general.name,
                                         f"checklist item still open: {match.group(1)}"))
        return found

    async def beat(self, handle: str, targets: dict[str, Target]) -> int:
        """One heartbeat of one bot; returns the model calls it made (0 or 1)."""
        db = self.services.db
        found = await db.run(self.look, handle)
        fresh = await db.run(self.repo.new, handle, [f.key for f in found])
        if not fresh:
            log.info("heartbeat @%s: nothing new to do (%d known), no model call", handle, len(found))
            return 0
        new = [f for f in found if f.key in fresh]
        room = new[0].room_id
        if self.activity is not None:
            await self.activity.quiet(room)  # the user is talking there: do not interrupt (bounded)
        reply = await self._ask(handle, new)
        self.calls += 1
        if reply is None:
            return 1  # the model failed: the findings stay new and are looked at again next beat
        await db.run(self.repo.remember, handle, [f.key for f in found])
        if reply:
            await db.run(self._post, handle, room, reply, targets)
        log.info("heartbeat @%s: %d new finding(s), %s", handle, len(new), "spoke up" if reply else "stayed quiet")
        return 1

    async def _ask(self, handle: str, new: list[Finding]) -> str | None:
        """One call on the cheapest tier: '' when the bot has nothing to say, None when the call failed."""
        services = self.services
        bot = services.crew.bots[handle]
        room = services.rooms.repo.get_by_id(new[0].room_id)
        assert room is not None
        persona = system_prompt(bot, services.crew, room.name, room.type, room.members, compact=True)
        listed = "\n".join(f"- #{f.room}: {f.text}" for f in new)
        prompt = [
            {"role": "system", "content": persona},
            {"role": "user", "content": (
                f"[Heartbeat, not from the user] You checked in on your own. New since you last looked:\n{listed}\n\n"
                f"If this deserves a short message to #{room.name} (a reminder, a status, a question), write just "
                f"that message. If not, answer exactly {SILENT}.")},
        ]
        try:
            result = await services.llm.chat(prompt, model=cheapest_model(services.llm, handle), bot=handle,
                                             room_id=room.id, max_tokens=300)
        except LLMError as exc:
            log.warning("heartbeat @%s: the model call failed: %s", handle, exc)
            return None
        text = result.text.strip()
        return "" if not text or text.strip(".").upper() == SILENT else text

    def _post(self, handle: str, room_id: int, text: str, targets: dict[str, Target]) -> None:
        """Store the message in the room and queue it for the room's chats, in one transaction."""
        services = self.services
        turn_id = f"heartbeat-{handle}-{time.time_ns()}"
        delivery = outbox_rows(services.rooms.repo, room_id, turn_id, text, targets)
        message = Message(room_id, handle, "assistant", text, platform="heartbeat", turn_id=turn_id)

        def queue(conn: sqlite3.Connection) -> None:
            insert_rows(conn, delivery.rows)
            log_work(conn, WorkEntry(room_id, handle, "heartbeat", f"heartbeat: {text.splitlines()[0][:200]}", text,
                                     artifacts=[f"message:{message.id}", *(f"chat:{c}" for c in delivery.chats)],
                                     turn_id=turn_id))

        services.messages.add_many([message], queue)
        services.memory.note_messages([message.id])
