"""The gateway's lifecycle: every enabled channel in one asyncio process, until SIGINT/SIGTERM.

    adapter -> Ingress (access, inbox row) -> bounded queue -> turn workers (turns.py) -> Pipeline (one
    turn per room, global cap) -> replies stored + inbox row done + outbox rows (one transaction) ->
    SendWorker per account

Channels start concurrently and independently: one that is slow to start or fails to start (logged)
never holds up the others; the gateway gives up only when not one started. Other long-running jobs
(a scheduler...) join with `add_task`: started with the turn workers, cancelled at stop.

On start it resumes what a crash left: inbox rows still `pending` are run again (their turn never
produced replies), outbox rows still `pending` are sent, rows caught `sending` become `uncertain`.

On PostgreSQL the gateway is one worker of a fleet (gateway/fleet.py, docs/scaling.md): turns are
claimed from the shared inbox instead of a queue of this process, a channel runs on the one worker that
holds its bot token's lock (the others stand by to take it over), and the scheduler runs on one worker."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, cast

from nanofolks.bus.inbox import Ingress
from nanofolks.bus.outbox import SendWorker
from nanofolks.channels.access import AccessPolicy
from nanofolks.channels.base import Channel, ChannelError, CommandMenu, ServesPages
from nanofolks.channels.messages import InboundMessage
from nanofolks.channels.registry import CHANNELS, ChannelSpec
from nanofolks.config.schema import Config
from nanofolks.gateway.commands import menu
from nanofolks.gateway.fleet import RETRY_FAILED, Fleet
from nanofolks.gateway.locks import TokenLock, channel_lock_name, channel_lock_path
from nanofolks.gateway.logs import ErrorsToActivity
from nanofolks.gateway.turns import Answerer
from nanofolks.llm.results import LLMError
from nanofolks.routines.activity import Activity
from nanofolks.routines.delivery import Target
from nanofolks.routines.schedule import parse_duration
from nanofolks.routines.scheduler import Scheduler
from nanofolks.services import Services
from nanofolks.store.activity import ActivityRepo
from nanofolks.store.channel_state import ChannelStateRepo
from nanofolks.store.fleet import is_postgres
from nanofolks.store.inbox import InboxRepo
from nanofolks.store.outbox import OutboxRepo
from nanofolks.store.pairing import PairingRepo

log = logging.getLogger("nanofolks.gateway")

INBOUND_QUEUE = 256  # messages accepted but not yet picked up; when full, polling waits (backpressure)
TURN_WORKERS = 16  # the Pipeline still caps concurrent turns (orchestrator.maxConcurrentTurns)
HEARTBEAT_EVERY = 5.0
STATE_CHECK = 0.5  # seconds between looks at a channel's state (a change is written at once)
RESTART_MAX = 60.0  # seconds: the longest wait before a failed gateway task is started again
STOP_GRACE = 3.0  # seconds a send in flight may take to finish at shutdown
FLEET_MEMORY_LOOK = 5.0  # seconds: how often the memory lock holder looks for messages other workers stored
RECHECK = 5.0  # seconds: in a fleet, the slow look at the shared inbox when no notification came

Job = Callable[[], Coroutine[Any, Any, None]]


def build_channels(config: Config) -> tuple[list[Channel], dict[str, str]]:
    """The enabled channels, and why each enabled one that cannot be built was left out."""
    enabled = [spec for spec in CHANNELS.values() if spec.section(config).enabled]
    if not enabled:
        keys = " or ".join(f"{spec.key}.enabled" for spec in CHANNELS.values())
        raise ChannelError(f"no channel is enabled: set {keys} (and the channel's credentials) in the config")
    channels: list[Channel] = []
    failures: dict[str, str] = {}
    for spec in enabled:
        try:
            channels.append(spec.build(config))
        except ChannelError as exc:
            failures[spec.platform] = str(exc)
    return channels, failures


@dataclass
class _Link:
    """One channel and what belongs to it."""

    channel: Channel
    spec: ChannelSpec
    ingress: Ingress
    sender: SendWorker | None = None
    release: Callable[[], Coroutine[Any, Any, None]] | None = None  # lets go of the bot token's lock
    started: bool = False
    tasks: list[asyncio.Task] = field(default_factory=list)
    failing: set[str] = field(default_factory=set)  # its tasks that failed and wait to be started again

    def wake(self) -> None:
        """Tell its sender that rows were queued."""
        if self.sender is not None:
            self.sender.wake()


class Gateway:
    def __init__(self, services: Services, channels: list[Channel], failures: dict[str, str] | None = None,
                 fleet: Fleet | None = None):
        self.services = services
        self.fleet = fleet  # PostgreSQL: this gateway is one worker of several
        self.config = services.config
        self.db = services.db
        self.inbox = InboxRepo(self.db)
        self.outbox = OutboxRepo(self.db)
        self.pairing = PairingRepo(self.db)
        self.state = ChannelStateRepo(self.db)
        routines = services.config.routines
        self.activity = Activity(parse_duration(routines.live_for), parse_duration(routines.max_wait))
        self.answerer = Answerer(services, self._wait_warm, self.activity)
        self.running = asyncio.Event()  # set once the channels had their chance to start
        self.queue: asyncio.Queue[tuple[_Link, int]] = asyncio.Queue(INBOUND_QUEUE)
        self._queued: set[int] = set()  # inbox ids on the queue or being handled: never run twice at once
        self.links = [self._link(c) for c in channels]
        self.failures = dict(failures or {})  # platform -> why it did not start
        self._jobs: dict[str, Job] = {}
        self._tasks: list[asyncio.Task] = []  # turn workers, warm-up and the jobs: cancelled at stop
        self._warm: asyncio.Task | None = None

    def _link(self, channel: Channel) -> _Link:
        spec = CHANNELS[channel.platform]
        section = spec.section(self.config)
        if spec.serves_pages:
            cast(ServesPages, channel).attach(self.services)
        access = AccessPolicy(channel.platform, section.allow_from, section.open_groups, self.pairing)
        return _Link(channel, spec, Ingress(access, self.inbox, self.db, spec.render, self.services.keeper))

    def add_task(self, name: str, job: Job) -> None:
        """Run `job()` for as long as the gateway runs (before `run`). A job that fails is logged; the
        gateway carries on without it."""
        self._jobs[name] = job

    async def run(self, stop: asyncio.Event) -> None:
        """Start every channel at once (WhatsApp waiting for its bridge never delays Telegram), answer
        from the first one up, until `stop`. ChannelError when not a single channel started."""
        for platform, why in self.failures.items():
            log.error("%s: not started: %s", platform, why)
        if self.fleet is not None:
            await self.fleet.join()
        self._warm = asyncio.create_task(self._warm_up(), name="warm-up")
        turns = ([self._claim_turns()] if self.fleet is not None else [self._work() for _ in range(TURN_WORKERS)])
        self._tasks = [self._warm, asyncio.create_task(self._warm_local_model(), name="local-model-warm-up"),
                       *(asyncio.create_task(turn, name=f"turn-{i}") for i, turn in enumerate(turns)),
                       *(asyncio.create_task(supervised(name, job), name=name) for name, job in self._jobs.items())]
        starting = asyncio.ensure_future(asyncio.gather(*(self._start(link) for link in self.links)))
        stopping = asyncio.ensure_future(stop.wait())
        if self.fleet is not None:
            await self._run_in_fleet(self.fleet, starting, stopping)
            return
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
            self.running.set()
            await stopping
            log.info("gateway stopping")
        finally:
            await _cancel([stopping])
            await self._shutdown()

    async def _run_in_fleet(self, fleet: Fleet, starting: asyncio.Future, stopping: asyncio.Future) -> None:
        """A worker answers from the moment it joined: its channels start when it wins their bot token's
        lock (now, or when their holder stops), the fleet connection's failure stops it."""
        self._tasks.append(starting)
        beating = asyncio.create_task(fleet.run(), name="fleet")
        log.info("gateway running as worker %d of the fleet", fleet.worker_id)
        self.running.set()
        try:
            await asyncio.wait({beating, stopping}, return_when=asyncio.FIRST_COMPLETED)
            log.info("gateway stopping")
            if beating.done():
                beating.result()  # StoreError: the worker lost its locks; stop and say so
        finally:
            await _cancel([stopping, beating])
            await self._shutdown()

    def targets(self) -> dict[str, Target]:
        """The platforms running now, on this worker or (in a fleet) any: where routines and heartbeats deliver."""
        if self.fleet is not None:
            return {h["platform"]: Target(h["account"], CHANNELS[h["platform"]].render)
                    for h in self.fleet.held_by_fleet().values() if h.get("account")}
        return {ln.channel.platform: Target(ln.channel.account, ln.spec.render) for ln in self.links if ln.started}

    async def _warm_up(self) -> None:
        """Import litellm (seconds) in a thread while the channels connect, not inside the first user's
        turn, where the import would also block the event loop (and Discord's heartbeat with it); then
        freeze what is loaded out of the garbage collector's reach."""
        try:
            await self.services.llm.ready()
        except Exception:  # noqa: BLE001 - the turn imports it again and reports the failure to the user
            log.exception("could not import litellm ahead of the first turn")
        # What is loaded by now lives as long as the process: frozen, the collector's full passes stop
        # walking it (they took 60-180 ms with litellm loaded, a pause in the middle of somebody's reply).
        gc.collect()
        gc.freeze()

    async def _warm_local_model(self) -> None:
        """The local model's saved KV state for each bot of #general (agent/warmup.py), in the background:
        turns do not wait for it, and one waits at most for one bot's warm-up to finish."""
        from nanofolks.agent.warmup import leader_first, warm_room

        try:
            room = await self.db.quick(self.services.rooms.general)
            await warm_room(self.services.pipeline.runner, room, leader_first(room))
        except LLMError as exc:  # the turns report it to the user
            log.warning("local model not warmed up: %s", exc)

    async def _wait_warm(self) -> None:
        if self._warm is not None:
            await asyncio.shield(self._warm)  # the first turns wait for the import without blocking the loop

    async def _start(self, link: _Link) -> None:
        """Start one channel. A failure is logged and recorded; the other channels carry on."""
        channel, spec = link.channel, link.spec
        platform = channel.platform
        try:
            link.release = await self._lock(link)
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
        if spec.command_menu:
            await self._register_commands(cast(CommandMenu, channel), platform, account)
        link.sender = SendWorker(channel, self.outbox, self.db)
        jobs: dict[str, Job] = {f"send-{platform}-{account}": link.sender.run,
                                f"heartbeat-{platform}": lambda: self._heartbeat(link)}
        if self.fleet is None:  # a fleet's pending messages are claimed by whichever worker is free
            jobs[f"resume-{platform}"] = lambda: self._resume(link)
        else:
            self.fleet.holds[channel_lock_name(spec, self.config)].update(account=account)
            self.fleet.senders[f"{platform}:{account}"] = link.sender.wake
        link.tasks = [asyncio.create_task(supervised(name, job, link.failing), name=name) for name, job in jobs.items()]
        link.started = True
        log.info("%s: channel running as %s", platform, account)

    async def _lock(self, link: _Link) -> Callable[[], Coroutine[Any, Any, None]]:
        """Take the bot token's lock, and return how to let it go. Alone, a second gateway of the same
        token is refused (ChannelError); in a fleet, this worker waits until the lock is free."""
        platform, fleet = link.channel.platform, self.fleet
        if fleet is not None:
            name = channel_lock_name(link.spec, self.config)
            await fleet.hold(name, platform=platform)
            return lambda: fleet.release(name)
        lock = TokenLock(channel_lock_path(link.spec, self.config))
        lock.acquire(f"{platform} bot")

        async def release() -> None:
            lock.release()

        return release

    async def _register_commands(self, channel: CommandMenu, platform: str, account: str) -> None:
        """Only when the command list changed: re-registering at every start earns 429s."""
        commands = menu()
        digest = hashlib.sha256(json.dumps(commands).encode()).hexdigest()
        if await self.db.run(self.state.get, platform, account, "commands_hash") == digest:
            return
        try:
            await channel.register_commands(commands)
        except Exception as exc:  # noqa: BLE001 - the crew works without a command menu
            log.warning("%s: could not register commands: %s", platform, exc)
            return
        await self.db.run(self.state.set, platform, account, "commands_hash", digest)
        log.info("%s: commands registered", platform)

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
            if self.fleet is not None:
                await self.fleet.notify_inbox()  # the first free worker claims it, maybe this one
            else:
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
                if await self.answerer.answer(link.channel, link.spec, inbox_id, wake=link.wake):
                    link.wake()
            except asyncio.CancelledError:
                raise  # shutting down: the row stays pending and is answered at the next start
            except Exception:
                log.exception("inbox %s: could not be answered; will retry at the next start", inbox_id)
            finally:
                self._queued.discard(inbox_id)

    async def _claim_turns(self) -> None:
        """In a fleet: claim messages from the shared inbox while a turn slot is free, each answered by a
        task of its own; look again when notified (a new message, a chat's previous one answered)."""
        fleet = self.fleet
        assert fleet is not None
        slots = asyncio.Semaphore(TURN_WORKERS)
        turns: set[asyncio.Task] = set()
        try:
            while True:
                await slots.acquire()
                fleet.claimable.clear()  # before looking, so that a notification while we look is not lost
                claimed = await fleet.claim()
                if claimed is None:
                    slots.release()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(fleet.claimable.wait(), RECHECK)
                    continue
                turn = asyncio.create_task(self._answer_claimed(fleet, *claimed), name=f"inbox-{claimed[0]}")
                turns.add(turn)
                turn.add_done_callback(lambda t: (turns.discard(t), slots.release()))
        finally:
            await _cancel(list(turns))

    async def _answer_claimed(self, fleet: Fleet, inbox_id: int, platform: str, account: str) -> None:
        link = next((ln for ln in self.links if ln.started and ln.channel.platform == platform
                     and ln.channel.account == account), None)  # this worker polls the bot: typing works
        try:
            if await self.answerer.answer(link.channel if link else None, CHANNELS[platform], inbox_id,
                                          wake=lambda: fleet.wake_sender(platform, account)):
                await fleet.notify_outbox(platform, account)
            await fleet.notify_inbox()  # the chat's next message may be claimed now
        except asyncio.CancelledError:
            raise  # stopping: the claim is handed back, another worker answers it
        except Exception:
            log.exception("inbox %s: could not be answered; any worker may retry it in %.0fs", inbox_id,
                          RETRY_FAILED)
            await fleet.park(inbox_id)

    async def _heartbeat(self, link: _Link) -> None:
        """Write the channel's state every HEARTBEAT_EVERY seconds, and as soon as it changed."""
        channel = link.channel
        written, at = "", 0.0
        while True:
            state = "degraded" if link.failing else channel.state  # a task of its own is being restarted
            if state != written or time.monotonic() - at >= HEARTBEAT_EVERY:
                await self._record_state(channel, state)
                written, at = state, time.monotonic()
            await asyncio.sleep(STATE_CHECK)

    async def _record_state(self, channel: Channel, state: str) -> None:
        value = json.dumps({"state": state, "pid": os.getpid(), "at": time.time(), "username": channel.username})
        with contextlib.suppress(Exception):
            await self.db.run(self.state.set, channel.platform, channel.account, "status", value)

    async def _shutdown(self) -> None:
        """Drop turns in flight (their rows stay pending: answered at the next start), let the send in
        flight finish (cutting it could leave it `uncertain`), then disconnect, every channel at once.
        Messages that arrive meanwhile are in the inbox and wait for the next start too."""
        await _cancel(self._tasks)
        if self.fleet is not None:
            with contextlib.suppress(Exception):
                await self.fleet.hand_back()
        await asyncio.gather(*(self._stop_link(link) for link in self.links))
        if self.fleet is not None:
            await self.fleet.leave()
        log.info("gateway stopped")

    async def _stop_link(self, link: _Link) -> None:
        if link.release is None:
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
        with contextlib.suppress(Exception):  # a fleet's lost connection has let go of it already
            await link.release()
        link.release, link.started = None, False


async def supervised(name: str, job: Job, failing: set[str] | None = None, first_delay: float = 1.0) -> None:
    """Run `job` for as long as the gateway runs: one that fails is logged and started again after a
    backoff (1 s, doubling, at most a minute), and is in `failing` (status says "degraded") meanwhile."""
    delay = first_delay
    while True:
        started = time.monotonic()
        try:
            await job()
            return  # a job that ends by itself has done its work
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - one job failing must not stop the crew answering
            if time.monotonic() - started > RESTART_MAX:
                delay = first_delay  # it had been running well: a fresh failure, a short wait
            log.exception("gateway task %s failed; starting it again in %.0fs", name, delay)
        if failing is not None:
            failing.add(name)
        try:
            await asyncio.sleep(delay)
        finally:
            if failing is not None:
                failing.discard(name)
        delay = min(RESTART_MAX, delay * 2)


async def _cancel(tasks: list[asyncio.Task]) -> None:
    """Cancel and wait; asyncio.wait never raises the tasks' CancelledError, so ours still would."""
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks)


async def serve(services: Services) -> None:
    """Run the gateway until SIGINT or SIGTERM."""
    fleet = Fleet(services.db.url) if is_postgres(services.db) else None  # type: ignore[attr-defined]
    gateway = Gateway(services, *build_channels(services.config), fleet=fleet)
    scheduler = Scheduler(services, gateway.targets, gateway.activity)

    async def schedule() -> None:  # routines and heartbeats deliver to channels: once they started
        await gateway.running.wait()
        if fleet is not None:  # one scheduler in the fleet; a survivor takes it over
            await fleet.hold("scheduler")
        await scheduler.run()

    gateway.add_task("scheduler", schedule)
    errors = ErrorsToActivity()  # errors join the dashboard's activity timeline
    logging.getLogger("nanofolks").addHandler(errors)
    gateway.add_task("errors", lambda: errors.flush_into(ActivityRepo(services.db)))
    if services.config.memory.enabled:  # consolidation, like heartbeats, waits for a live conversation
        services.memory.defer_while(gateway.activity.live, gateway.activity.max_wait)
        if fleet is not None:  # one worker learns, embeds and consolidates; a survivor takes it over
            services.memory.follow()

            async def remember() -> None:
                await fleet.hold("memory")
                while True:  # held while the gateway runs; other workers' messages wake nobody here
                    services.memory.lead()
                    await asyncio.sleep(FLEET_MEMORY_LOOK)

            gateway.add_task("memory", remember)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await gateway.run(stop)
    finally:
        logging.getLogger("nanofolks").removeHandler(errors)
