"""`nanofolks gateway`: every enabled channel in one asyncio process, until SIGINT/SIGTERM.

    adapter -> Ingress (access, inbox row) -> bounded queue -> turn workers -> Pipeline (one turn per
    room, global cap) -> inbox.complete (outbox rows, same transaction) -> SendWorker per account

On start it resumes what a crash left: inbox rows still `pending` are run again (their turn never
produced replies), outbox rows still `pending` are sent, rows caught `sending` become `uncertain`."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from nanofolks.bus.inbox import Ingress
from nanofolks.bus.messages import InboundMessage
from nanofolks.bus.outbox import SendWorker
from nanofolks.channels.access import AccessPolicy
from nanofolks.channels.base import Channel, ChannelError
from nanofolks.config import paths
from nanofolks.config.schema import Config
from nanofolks.rooms.rooms import RoomError
from nanofolks.services import Services
from nanofolks.store.channel_state import ChannelStateRepo
from nanofolks.store.inbox import InboxRepo, InboxRow
from nanofolks.store.outbox import OutboxRepo, OutboxRow
from nanofolks.store.pairing import PairingRepo
from nanofolks.store.rooms import Room

log = logging.getLogger("nanofolks.gateway")

INBOUND_QUEUE = 256  # messages accepted but not yet picked up; when full, polling waits (backpressure)
TURN_WORKERS = 16  # the Pipeline still caps concurrent turns (orchestrator.maxConcurrentTurns)
TYPING_AFTER = 1.0  # a quick answer needs no indicator: one Bot API call less per message
TYPING_EVERY = 4.0  # Telegram shows "typing" for about 5 seconds
HEARTBEAT_EVERY = 5.0
STOP_GRACE = 3.0  # seconds a send in flight may take to finish at shutdown
COMMANDS = [("rooms", "List the rooms"), ("room", "Move this chat to a room: /room NAME"),
            ("help", "How to talk to the crew")]
HELP = ("Talk to the crew by writing a message. `@coder` or `@all` picks who answers.\n"
        "/rooms lists the rooms, `/room NAME` moves this chat to a room.")
FALLBACK = "Sorry, the crew had nothing to say to that. Please try again or rephrase."


# --- logging ----------------------------------------------------------------------------------------


class SecretMask(logging.Filter):
    """Replace every known secret (bot tokens, API keys) in a log line with ***."""

    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        masked = text
        for secret in self.secrets:
            masked = masked.replace(secret, "***")
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            for secret in self.secrets:
                record.exc_text = record.exc_text.replace(secret, "***")
        if masked != text:
            record.msg, record.args = masked, None
        return True


def configure_logging(config: Config) -> Path:
    """Log to stderr and $NANOFOLKS_HOME/logs/gateway.log, secrets masked in both."""
    secrets = [config.channels.telegram.token, config.channels.discord.token]
    secrets += [config.channels.slack.bot_token, config.channels.slack.app_token]
    secrets += [getattr(config.providers, name).api_key for name in type(config.providers).model_fields]
    mask = SecretMask(secrets)
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


# --- the gateway --------------------------------------------------------------------------------------


@dataclass
class _Link:
    """One running channel and what belongs to it."""

    channel: Channel
    ingress: Ingress
    sender: SendWorker | None = None
    lock: TokenLock | None = None
    tasks: list[asyncio.Task] = field(default_factory=list)


def build_channels(config: Config) -> list[Channel]:
    channels: list[Channel] = []
    if config.channels.telegram.enabled:
        from nanofolks.channels.telegram import TelegramChannel

        channels.append(TelegramChannel(config.channels.telegram))
    if config.channels.whatsapp.enabled:
        from nanofolks.channels.whatsapp import WhatsAppChannel

        channels.append(WhatsAppChannel(config.channels.whatsapp))
    if config.channels.discord.enabled:
        from nanofolks.channels.discord import DiscordChannel

        channels.append(DiscordChannel(config.channels.discord))
    if config.channels.slack.enabled:
        from nanofolks.channels.slack import SlackChannel

        channels.append(SlackChannel(config.channels.slack))
    if not channels:
        raise ChannelError("no channel is enabled: set channels.telegram.enabled and channels.telegram.token")
    return channels


class Gateway:
    def __init__(self, services: Services, channels: list[Channel]):
        self.services = services
        self.db = services.db
        self.inbox = InboxRepo(self.db)
        self.outbox = OutboxRepo(self.db)
        self.pairing = PairingRepo(self.db)
        self.state = ChannelStateRepo(self.db)
        self.queue: asyncio.Queue[tuple[_Link, int]] = asyncio.Queue(INBOUND_QUEUE)
        self._queued: set[int] = set()  # inbox ids on the queue or being handled: never run twice at once
        self.links = [self._link(c) for c in channels]
        self._workers: list[asyncio.Task] = []

    def _link(self, channel: Channel) -> _Link:
        section = getattr(self.services.config.channels, channel.platform)
        access = AccessPolicy(channel.platform, section.allow_from, section.open_groups, self.pairing)
        return _Link(channel, Ingress(access, self.inbox, self.db))

    async def run(self, stop: asyncio.Event) -> None:
        try:
            for link in self.links:
                await self._start(link)
            self._workers = [asyncio.create_task(self._work(), name=f"turn-{i}") for i in range(TURN_WORKERS)]
            log.info("gateway running: %s", ", ".join(f"{ln.channel.platform}:{ln.channel.account}"
                                                       for ln in self.links))
            await stop.wait()
            log.info("gateway stopping")
        finally:
            await self._shutdown()

    async def _start(self, link: _Link) -> None:
        channel = link.channel
        lock_key = getattr(channel, "lock_key", channel.platform)
        link.lock = TokenLock(lock_path(channel.platform, lock_key))
        link.lock.acquire(f"{channel.platform} bot")
        await channel.start(lambda msg: self._on_message(link, msg))
        platform, account = channel.platform, channel.account
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
        if received.outcome == "paired" and link.sender:
            link.sender.wake()
        elif received.outcome == "accepted" and received.inbox_id is not None:
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
        row = await self.db.run(self.inbox.get, inbox_id)
        if row is None or row.status != "pending":
            return
        command = parse_command(row.text)
        if command is not None:
            reply = await self.db.run(self._command, row, *command)
        elif not row.text.strip():
            reply = HELP
        else:
            reply = await self._turn(link, row)
        channel = link.channel
        # Groups get replies to the message; direct chats plain answers, unless the platform threads them (Slack).
        threaded = row.chat_type != "private" or getattr(channel, "reply_in_private", False)
        rows = [
            OutboxRow(key=f"inbox:{inbox_id}:{i}", inbox_id=inbox_id, platform=row.platform, account=row.account,
                      chat_id=row.chat_id, text=chunk, reply_to=row.message_id if threaded else None)
            for i, chunk in enumerate(channel.split(reply))
        ]
        if await self.db.run(self.inbox.complete, inbox_id, rows) and link.sender:
            link.sender.wake()

    async def _turn(self, link: _Link, row: InboxRow) -> str:
        services = self.services
        room = await self.db.run(self._room_for, row)
        typing = asyncio.create_task(self._typing(link.channel, row.chat_id))
        started = time.monotonic()
        try:
            answer = await services.pipeline.handle(
                room, row.text, sender=row.sender_name or row.sender_id, platform=row.platform,
                turn_id=f"{row.platform}-inbox-{row.id}",
            )
            text = answer.markdown().strip()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the user gets an honest answer, never silence
            log.exception("inbox %s: the turn failed", row.id)
            text = f"Sorry, something went wrong on my side and I could not answer this ({type(exc).__name__})."
        finally:
            typing.cancel()
        log.info("inbox %s answered in #%s in %.1fs", row.id, room.name, time.monotonic() - started)
        return text or FALLBACK

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
        channel = link.channel
        while True:
            await self._record_state(channel, channel.state)
            await asyncio.sleep(HEARTBEAT_EVERY)

    async def _record_state(self, channel: Channel, state: str) -> None:
        value = json.dumps({"state": state, "pid": os.getpid(), "at": time.time(),
                            "username": getattr(channel, "username", "")})
        with contextlib.suppress(Exception):
            await self.db.run(self.state.set, channel.platform, channel.account, "status", value)

    async def _shutdown(self) -> None:
        """Drop turns in flight (their rows stay pending: answered at the next start), let the send in
        flight finish (cutting it could leave it `uncertain`), then disconnect. Messages that arrive
        meanwhile are in the inbox and wait for the next start too."""
        await _cancel(self._workers)
        for link in self.links:
            if link.sender is not None:
                link.sender.stop()
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(link.tasks[0]), STOP_GRACE)
            await _cancel(link.tasks)
            with contextlib.suppress(Exception):
                await link.channel.stop()
            if link.tasks:
                await self._record_state(link.channel, "stopped")
            if link.lock is not None:
                link.lock.release()
        log.info("gateway stopped")


async def _cancel(tasks: list[asyncio.Task]) -> None:
    """Cancel and wait; asyncio.wait never raises the tasks' CancelledError, so ours still would."""
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks)


async def serve(services: Services) -> None:
    """Run the gateway until SIGINT or SIGTERM."""
    gateway = Gateway(services, build_channels(services.config))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await gateway.run(stop)
