"""Delivering what the crew says on its own (a routine's answer, a heartbeat) to every chat mapped to a
room, through the outbox. Keys are the caller's, so queuing the same thing twice queues it once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from nanofolks.config.schema import Config
from nanofolks.store.channel_state import ChannelStateRepo
from nanofolks.store.db import Database
from nanofolks.store.outbox import OutboxRow
from nanofolks.store.rooms import RoomRepo


@dataclass
class Target:
    """A platform the crew can send on: the bot's account there and its renderer (channels/registry.py)."""

    account: str
    render: Callable[[str], list[str]]


@dataclass
class Delivery:
    rows: list[OutboxRow]
    chats: list[str]  # "telegram:123" that get the text
    missing: list[str]  # mapped chats whose platform is not running here

    @property
    def note(self) -> str:
        return f"not delivered to {', '.join(self.missing)}: their platform is not running" if self.missing else ""


def outbox_rows(rooms: RoomRepo, room_id: int, key: str, text: str, targets: dict[str, Target]) -> Delivery:
    """Outbox rows for every chat mapped to the room, rendered for each platform, keyed `key:chat:i`."""
    delivery = Delivery([], [], [])
    for platform, chat_id, _ in rooms.mappings(room_id):
        chat = f"{platform}:{chat_id}"
        target = targets.get(platform)
        if target is None:
            delivery.missing.append(chat)
            continue
        delivery.chats.append(chat)
        delivery.rows += [OutboxRow(key=f"{key}:{chat}:{i}", platform=platform, account=target.account,
                                    chat_id=chat_id, text=chunk) for i, chunk in enumerate(target.render(text))]
    return delivery


def last_known_targets(config: Config, db: Database) -> dict[str, Target]:
    """Outside the gateway (`routines run`): each configured platform with the account its last gateway
    ran as, so what is queued now is sent by the next gateway (a running one within seconds)."""
    from nanofolks.channels.base import ChannelError
    from nanofolks.channels.registry import CHANNELS

    latest: dict[str, tuple[float, str]] = {}
    for (platform, account), keys in ChannelStateRepo(db).all().items():
        if "status" in keys and keys["status"][1] > latest.get(platform, (0.0, ""))[0]:
            latest[platform] = (keys["status"][1], account)
    targets = {}
    for platform, (_, account) in latest.items():
        if platform not in CHANNELS:
            continue
        spec = CHANNELS[platform]
        try:
            spec.build(config)
        except ChannelError:
            continue  # no longer configured here
        targets[platform] = Target(account, spec.render)
    return targets
