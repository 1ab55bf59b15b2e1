"""`nanofolks gateway`: every enabled channel in one asyncio process, until SIGINT/SIGTERM.

    adapter -> Ingress (access, inbox row) -> bounded queue -> turn workers -> Pipeline (one turn per
    room, global cap) -> replies stored + inbox row done + outbox rows (one transaction) -> SendWorker
    per account

Channels start concurrently and independently: one that is slow to start or fails to start (logged)
never holds up the others; the gateway gives up only when not one started.

On start it resumes what a crash left: inbox rows still `pending` are run again (their turn never
produced replies), outbox rows still `pending` are sent, rows caught `sending` become `uncertain`."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import hashlib
import importlib
import json
import logging
import os
import signal
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from nanofolks.bus.inbox import Ingress
from nanofolks.bus.messages import InboundMessage
from nanofolks.bus.outbox import SendWorker
from nanofolks.channels.access import AccessPolicy
from nanofolks.channels.base import Channel, ChannelError
from nanofolks.config import paths
from nanofolks.config.schema import Config
from nanofolks.config.secret_fields import secret_values
from nanofolks.rooms.rooms import RoomError
from nanofolks.secrets.sanitize import SanitizeFilter, remember
from nanofolks.services import Services
from nanofolks.store.channel_state import ChannelStateRepo
from nanofolks.store.db import Database
from nanofolks.store.inbox import InboxRepo, InboxRow, mark_done
from nanofolks.store.outbox import STATES as OUTBOX_STATES
from nanofolks.store.outbox import OutboxRepo, OutboxRow
from nanofolks.store.pairing import PairingRepo
from nanofolks.store.rooms import Room

log = logging.getLogger("nanofolks.gateway")

INBOUND_QUEUE = 256  # messages accepted but not yet picked up; when full, polling waits (backpressure)
TURN_WORKERS = 16  # the Pipeline still caps concurrent turns (orchestrator.maxConcurrentTurns)
TYPING_AFTER = 1.0  # a quick answer needs no indicator: one Bot API call less per message
TYPING_EVERY = 4.0  # Telegram shows "typing" for about 5 seconds
HEARTBEAT_EVERY = 5.0
STATE_CHECK = 0.5  # seconds between looks at a channel's state (a change is written at once)
STOP_GRACE = 3.0  # seconds a send in flight may take to finish at shutdown
COMMANDS = [("rooms", "List the rooms"), ("room", "Move this chat to a room: /room NAME"),
            ("help", "How to talk to the crew")]
HELP = ("Talk to the crew by writing a message. `@coder` or `@all` picks who answers.\n"
        "/rooms lists the rooms, `/room NAME` moves this chat to a room.")
FALLBACK = "Sorry, the crew had nothing to say to that. Please try again or rephrase."


class AlreadyAnswered(Exception):
    """The inbox row was answered meanwhile: the turn's writes are rolled back, nothing is sent twice."""


# --- logging ----------------------------------------------------------------------------------------


def remember_config_secrets(config: Config) -> None:
    """Teach the sanitizer every credential in the config (found by the schema's secret mark)."""
    for _key, value in secret_values(config):
        remember(value)


def configure_logging(config: Config) -> Path:
    """Log to stderr and $NANOFOLKS_HOME/logs/gateway.log, both through the sanitizer."""
    remember_config_secrets(config)
    mask = SanitizeFilter()
    logs = paths.logs_dir()
    logs.mkdir(parents=True, exist_ok=True)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in (logging.StreamHandler(), logging.FileHandler(logs / "gateway.log", encoding="utf-8")):
        handler.setFormatter(formatter)
        handler.addFilter(mask)
        root.addHandler(handler)
    for noisy in ("httpx", "httpcore", "telegram", "LiteLLM", "litellm"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return logs / "gateway.log"


# --- one poller per token ---------------------------------------------------------------------------


def lock_path(platform: str, key: str) -> Path:
    return paths.home() / "locks" / f"{platform}-{key}.lock"


class TokenLock:
    """An OS file lock per bot token: a second gateway on this machine refuses to poll the same bot.
    The kernel drops it when the process dies, even by kill -9, so it never goes stale."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def acquire(self, what: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ChannelError(f"another gateway (pid {holder}) is already polling this {what}") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def lock_holder(path: Path) -> int | None:
    """The pid of the gateway holding this lock, or None when nobody does."""
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        text = os.read(fd, 32).decode(errors="replace").strip()
        return int(text) if text.isdigit() else -1
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


# --- chat commands ------------------------------------------------------------------------------------


def parse_command(text: str) -> tuple[str, str] | None:
    """`/room NAME` -> ("room", "NAME"); None for text that is not one of the gateway's commands."""
    if not text.startswith("/"):
        return None
    head, _, rest = text[1:].partition(" ")
    name = head.lower()
    return (name, rest.strip()) if name in {"room", "rooms", "help", "start"} else None


# --- the platforms ---------------------------------------------------------------------------------

# platform -> its adapter class in nanofolks.channels.<platform>. Its config section is channels.<platform>;
# the module's `lock_key(section)` names the credential that one gateway at a time may use.
PLATFORMS = {"telegram": "TelegramChannel", "discord": "DiscordChannel", "slack": "SlackChannel",
             "whatsapp": "WhatsAppChannel"}


def adapter_module(platform: str) -> ModuleType:
    return importlib.import_module(f"nanofolks.channels.{platform}")  # each pulls its library in lazily


def section(config: Config, platform: str) -> Any:
    return getattr(config.channels, platform)


def make_channel(config: Config, platform: str) -> Channel:
    """The platform's adapter; ChannelError when its section lacks what it needs (a token...)."""
    return getattr(adapter_module(platform), PLATFORMS[platform])(section(config, platform))


def platform_lock(config: Config, platform: str) -> Path:
    return lock_path(platform, adapter_module(platform).lock_key(section(config, platform)))


def build_channels(config: Config) -> tuple[list[Channel], dict[str, str]]:
    """The enabled channels, and why each enabled one that cannot be built was left out."""
    enabled = [p for p in PLATFORMS if section(config, p).enabled]
    if not enabled:
        raise ChannelError(f"no channel is enabled: set channels.<{'|'.join(PLATFORMS)}>.enabled "
                           "and its credentials in the config")
    channels: list[Channel] = []
    failures: dict[str, str] = {}
    for platform in enabled:
        try:
            channels.append(make_channel(config, platform))
        except ChannelError as exc:
            failures[platform] = str(exc)
    return channels, failures


# --- status -------------------------------------------------------------------------------------------

INBOX_STATES = ("pending", "done", "denied")


def channel_report(config: Config, db: Database) -> list[dict[str, Any]]:
    """Every platform, whether configured or not, for `nanofolks status` and `nanofolks channels list`:
    running is the lock probe (the lock dies with its gateway, even by kill -9), the rest comes from the
    last heartbeat and the inbox/outbox tables."""
    beats = {key: json.loads(keys["status"][0]) for key, keys in ChannelStateRepo(db).all().items()
             if "status" in keys}
    inbox, outbox = InboxRepo(db).counts(), OutboxRepo(db).counts()
    rows = []
    for platform in PLATFORMS:
        conf = section(config, platform)
        try:
            make_channel(config, platform)
            problem = ""
        except ChannelError as exc:
            problem = str(exc)
        pid = lock_holder(platform_lock(config, platform))
        account, beat = max(((a, b) for (p, a), b in beats.items() if p == platform),
                            key=lambda ab: ab[1].get("at", 0), default=("", {}))
        if pid is None:
            state = "stopped"
        else:  # a heartbeat written by another process is an older run's: this one is still starting
            state = beat.get("state", "starting") if beat.get("pid") == pid else "starting"
        rows.append({
            "channel": platform, "enabled": conf.enabled, "configured": not problem, "problem": problem,
            "allowFrom": len(conf.allow_from), "state": state, "pid": pid, "account": account,
            "username": beat.get("username", ""), "last_heartbeat": beat.get("at"),
            "inbox": _totals(inbox, platform, INBOX_STATES), "outbox": _totals(outbox, platform, OUTBOX_STATES),
        })
    return rows


def _totals(counts: dict[tuple[str, str], dict[str, int]], platform: str, states: tuple[str, ...]) -> dict[str, int]:
    """One platform's rows by state, over all its accounts (an old account's pending rows still count)."""
    return {state: sum(c.get(state, 0) for (p, _), c in counts.items() if p == platform) for state in states}


# --- the gateway --------------------------------------------------------------------------------------


@dataclass
class _Link:
    """One channel and what belongs to it."""

    channel: Channel
    ingress: Ingress
    sender: SendWorker | None = None
    lock: TokenLock | None = None
    started: bool = False
    tasks: list[asyncio.Task] = field(default_factory=list)


class Gateway:
    def __init__(self, services: Services, channels: list[Channel], failures: dict[str, str] | None = None):
        self.services = services
        self.db = services.db
        self.inbox = InboxRepo(self.db)
        self.outbox = OutboxRepo(self.db)
        self.pairing = PairingRepo(self.db)
        self.state = ChannelStateRepo(self.db)
        self.queue: asyncio.Queue[tuple[_Link, int]] = asyncio.Queue(INBOUND_QUEUE)
        self._queued: set[int] = set()  # inbox ids on the queue or being handled: never run twice at once
        self.links = [self._link(c) for c in channels]
        self.failures = dict(failures or {})  # platform -> why it did not start
        self._workers: list[asyncio.Task] = []
        self._warm: asyncio.Task | None = None

    def _link(self, channel: Channel) -> _Link:
        section = getattr(self.services.config.channels, channel.platform)
        access = AccessPolicy(channel.platform, section.allow_from, section.open_groups, self.pairing)
        return _Link(channel, Ingress(access, self.inbox, self.db, self.services.keeper))

    async def run(self, stop: asyncio.Event) -> None:
        """Start every channel at once (WhatsApp waiting for its bridge never delays Telegram), answer
        from the first one up, until `stop`. ChannelError when not a single channel started."""
        for platform, why in self.failures.items():
            log.error("%s: not started: %s", platform, why)
        self._warm = asyncio.create_task(self._warm_up(), name="warm-up")
        self._workers = [asyncio.create_task(self._work(), name=f"turn-{i}") for i in range(TURN_WORKERS)]
        starting = asyncio.ensure_future(asyncio.gather(*(self._start(link) for link in self.links)))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():  # asked to stop while a channel was still starting
                await _cancel([starting])
                return
            starting.result()  # _start keeps channel failures to itself: what is left here is a bug, raise it
            running = [ln for ln in self.links if ln.started]
            if not running:
                raise ChannelError("no channel started: " + "; ".join(f"{p}: {w}" for p, w in self.failures.items()))
            log.info("gateway running: %s", ", ".join(f"{ln.channel.platform}:{ln.channel.account}" for ln in running))
            await stopping
            log.info("gateway stopping")
        finally:
            await _cancel([stopping])
            await self._shutdown()

    async def _warm_up(self) -> None:
        """Import litellm (seconds) in a thread while the channels connect, not inside the first user's
        turn, where the import would also block the event loop (and Discord's heartbeat with it); then
        freeze what is loaded out of the garbage collector's reach."""
        from nanofolks.llm.client import is_local

        agents = self.services.config.agents
        models = {agents.defaults.model, *(bot.model for bot in agents.bots.values() if bot.model)}
        if not all(is_local(model) for model in models):
            from nanofolks.llm.env import import_litellm

            try:
                await asyncio.to_thread(import_litellm)
            except Exception:  # noqa: BLE001 - the turn imports it again and reports the failure to the user
                log.exception("could not import litellm ahead of the first turn")
        # What is loaded by now lives as long as the process: frozen, the collector's full passes stop
        # walking it (they took 60-180 ms with litellm loaded, a pause in the middle of somebody's reply).
        gc.collect()
        gc.freeze()

    async def _start(self, link: _Link) -> None:
        """Start one channel. A failure is logged and recorded; the other channels carry on."""
        channel = link.channel
        platform = channel.platform
        try:
            lock = TokenLock(lock_path(platform, channel.lock_key))
            lock.acquire(f"{platform} bot")
            link.lock = lock
            await channel.start(lambda msg: self._on_message(link, msg))
        except Exception as exc:  # noqa: BLE001 - one broken channel must not take the others down
            self.failures[platform] = str(exc) or type(exc).__name__
            if isinstance(exc, ChannelError):
                log.error("%s: not started: %s", platform, exc)
            else:
                log.exception("%s: not started", platform)
            await self._stop_link(link)
            return
        account = channel.account
        stuck = await self.db.run(self.outbox.recover, platform, account)
        if stuck:
            log.warning("%s: %d sends were in flight at the last stop; marked uncertain, not resent",
                        platform, stuck)
        await self._register_commands(channel)
        link.sender = SendWorker(channel, self.outbox, self.db)
        link.tasks = [
            asyncio.create_task(link.sender.run(), name=f"send-{platform}-{account}"),
            asyncio.create_task(self._heartbeat(link), name=f"heartbeat-{platform}"),
            asyncio.create_task(self._resume(link), name=f"resume-{platform}"),
        ]
        link.started = True
        log.info("%s: channel running as %s", platform, account)

    async def _register_commands(self, channel: Channel) -> None:
        """Only when the command list changed: re-registering at every start earns 429s."""
        register = getattr(channel, "register_commands", None)
        if register is None:
            return
        digest = hashlib.sha256(json.dumps(COMMANDS).encode()).hexdigest()
        if await self.db.run(self.state.get, channel.platform, channel.account, "commands_hash") == digest:
            return
        try:
            await register(COMMANDS)
        except Exception as exc:  # noqa: BLE001 - the crew works without a command menu
            log.warning("%s: could not register commands: %s", channel.platform, exc)
            return
        await self.db.run(self.state.set, channel.platform, channel.account, "commands_hash", digest)
        log.info("%s: commands registered", channel.platform)

    async def _resume(self, link: _Link) -> None:
        rows = await self.db.run(self.inbox.pending, link.channel.platform, link.channel.account)
        if rows:
            log.info("%s: resuming %d unanswered messages", link.channel.platform, len(rows))
        for row in rows:
            assert row.id is not None
            await self._enqueue(link, row.id)

    async def _on_message(self, link: _Link, msg: InboundMessage) -> None:
        """Called by the adapter before it acknowledges the message to the platform."""
        received = await link.ingress.receive(msg)
        if (received.outcome == "paired" or received.notice) and link.sender:
            link.sender.wake()
        if received.outcome == "accepted" and received.inbox_id is not None:
            await self._enqueue(link, received.inbox_id)

    async def _enqueue(self, link: _Link, inbox_id: int) -> None:
        if inbox_id in self._queued:
            return
        self._queued.add(inbox_id)
        await self.queue.put((link, inbox_id))

    async def _work(self) -> None:
        while True:
            link, inbox_id = await self.queue.get()
            try:
                await self._answer(link, inbox_id)
            except asyncio.CancelledError:
                raise  # shutting down: the row stays pending and is answered at the next start
            except Exception:
                log.exception("inbox %s: could not be answered; will retry at the next start", inbox_id)
            finally:
                self._queued.discard(inbox_id)

    async def _answer(self, link: _Link, inbox_id: int) -> None:
        row, room = await self.db.quick(self._load, inbox_id)
        if row is None or row.status != "pending":
            return
        command = parse_command(row.text)
        if command is not None:
            reply = await self.db.run(self._command, row, *command)
        elif room is None:
            reply = HELP
        else:
            reply = await self._turn(link, row, room)
        if (reply is None or await self.db.quick(self._complete, link, row, reply)) and link.sender:
            link.sender.wake()

    def _load(self, inbox_id: int) -> tuple[InboxRow | None, Room | None]:
        """The inbox row and, when it needs a turn, its room: one trip to the database thread."""
        row = self.inbox.get(inbox_id)
        if row is None or row.status != "pending" or parse_command(row.text) is not None or not row.text.strip():
            return row, None
        return row, self._room_for(row)

    async def _turn(self, link: _Link, row: InboxRow, room: Room) -> str | None:
        """Run the turn. Its replies are stored, the inbox row marked done and the outbox rows queued in
        one transaction (None returned); when the turn fails, the apology to send instead."""
        services = self.services
        if self._warm is not None:
            await asyncio.shield(self._warm)  # the first turns wait for the import without blocking the loop
        typing = asyncio.create_task(self._typing(link.channel, row.chat_id))
        started = time.monotonic()
        try:
            await services.pipeline.handle(
                room, row.text, sender=row.sender_name or row.sender_id, platform=row.platform,
                turn_id=f"{row.platform}-inbox-{row.id}",
                commit=lambda conn, answer: self._queue_replies(conn, link, row, answer.markdown()),
            )
            reply = None
        except asyncio.CancelledError:
            raise
        except AlreadyAnswered:
            return None
        except Exception as exc:  # noqa: BLE001 - the user gets an honest answer, never silence
            log.exception("inbox %s: the turn failed", row.id)
            reply = f"Sorry, something went wrong on my side and I could not answer this ({type(exc).__name__})."
        finally:
            typing.cancel()
        log.info("inbox %s answered in #%s in %.1fs", row.id, room.name, time.monotonic() - started)
        return reply

    def _complete(self, link: _Link, row: InboxRow, text: str) -> bool:
        """Answer without a turn (a command, help, an apology). False when the row was answered meanwhile."""
        try:
            with self.db.write() as conn:
                self._queue_replies(conn, link, row, text)
        except AlreadyAnswered:
            return False
        return True

    def _queue_replies(self, conn: sqlite3.Connection, link: _Link, row: InboxRow, text: str) -> None:
        """Inside a write transaction: mark the inbox row done and queue the reply, split for the platform."""
        assert row.id is not None
        channel = link.channel
        # Groups get replies to the message; direct chats plain answers, unless the platform threads them (Slack).
        threaded = row.chat_type != "private" or getattr(channel, "reply_in_private", False)
        rows = [
            OutboxRow(key=f"inbox:{row.id}:{i}", inbox_id=row.id, platform=row.platform, account=row.account,
                      chat_id=row.chat_id, text=chunk, reply_to=row.message_id if threaded else None)
            for i, chunk in enumerate(channel.split(text.strip() or FALLBACK))
        ]
        if not mark_done(conn, row.id, rows):
            raise AlreadyAnswered(row.id)

    def _room_for(self, row: InboxRow) -> Room:
        """The chat's room. A thread (Discord) nobody mapped gets a room of its own at its first turn,
        `<platform>-thread-<id>` with the whole crew, so its talk stays out of its channel's room."""
        rooms = self.services.rooms
        if row.chat_type != "thread" or rooms.repo.room_for_chat(row.platform, row.chat_id) is not None:
            return rooms.for_chat(row.platform, row.chat_id)
        room = rooms.repo.ensure(f"{row.platform}-thread-{row.chat_id}", "project", rooms.crew.handles)
        rooms.repo.map_chat(row.platform, row.chat_id, room.id)
        return room

    def _command(self, row: InboxRow, name: str, arg: str) -> str:
        rooms = self.services.rooms
        current = rooms.for_chat(row.platform, row.chat_id)
        if name in {"help", "start"}:
            return HELP
        if name == "rooms":
            lines = [f"{'→' if r.id == current.id else '•'} #{r.name} ({r.type})" for r in rooms.list()]
            return "Rooms:\n" + "\n".join(lines)
        if not arg:
            return f"This chat talks in #{current.name}. `/room NAME` moves it."
        try:
            room = rooms.map_chat(arg.lstrip("#"), f"{row.platform}:{row.chat_id}")
        except RoomError as exc:
            return str(exc)
        return f"This chat now talks in #{room.name}."

    async def _typing(self, channel: Channel, chat_id: str) -> None:
        await asyncio.sleep(TYPING_AFTER)
        while True:
            await channel.typing(chat_id)
            await asyncio.sleep(TYPING_EVERY)

    async def _heartbeat(self, link: _Link) -> None:
        """Write the channel's state every HEARTBEAT_EVERY seconds, and as soon as it changed."""
        channel = link.channel
        written, at = "", 0.0
        while True:
            state = channel.state
            if state != written or time.monotonic() - at >= HEARTBEAT_EVERY:
                await self._record_state(channel, state)
                written, at = state, time.monotonic()
            await asyncio.sleep(STATE_CHECK)

    async def _record_state(self, channel: Channel, state: str) -> None:
        value = json.dumps({"state": state, "pid": os.getpid(), "at": time.time(),
                            "username": getattr(channel, "username", "")})
        with contextlib.suppress(Exception):
            await self.db.run(self.state.set, channel.platform, channel.account, "status", value)

    async def _shutdown(self) -> None:
        """Drop turns in flight (their rows stay pending: answered at the next start), let the send in
        flight finish (cutting it could leave it `uncertain`), then disconnect, every channel at once.
        Messages that arrive meanwhile are in the inbox and wait for the next start too."""
        await _cancel([*self._workers, *([self._warm] if self._warm else [])])
        await asyncio.gather(*(self._stop_link(link) for link in self.links))
        log.info("gateway stopped")

    async def _stop_link(self, link: _Link) -> None:
        if link.lock is None:
            return  # never got as far as its lock: nothing started
        if link.sender is not None:
            link.sender.stop()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(link.tasks[0]), STOP_GRACE)
        await _cancel(link.tasks)
        with contextlib.suppress(Exception):
            await link.channel.stop()
        if link.started:
            await self._record_state(link.channel, "stopped")
        link.lock.release()
        link.lock, link.started = None, False


async def _cancel(tasks: list[asyncio.Task]) -> None:
    """Cancel and wait; asyncio.wait never raises the tasks' CancelledError, so ours still would."""
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks)


async def serve(services: Services) -> None:
    """Run the gateway until SIGINT or SIGTERM."""
    gateway = Gateway(services, *build_channels(services.config))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await gateway.run(stop)
