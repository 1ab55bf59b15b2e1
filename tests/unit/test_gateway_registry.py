"""The channel registry as the gateway reads it: building channels, locks, masking every secret, the
status report."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import pytest

from nanofolks.channels.base import ChannelError
from nanofolks.channels.registry import CHANNELS, spec
from nanofolks.config.schema import Config
from nanofolks.config.secret_fields import secret_values
from nanofolks.doctor import CHANNEL_PROBES
from nanofolks.gateway.commands import menu, parse_command
from nanofolks.gateway.core import build_channels
from nanofolks.gateway.locks import TokenLock, channel_lock_path
from nanofolks.gateway.logs import remember_config_secrets
from nanofolks.gateway.report import channel_report
from nanofolks.secrets.sanitize import SanitizeFilter
from nanofolks.store.channel_state import ChannelStateRepo
from nanofolks.store.db import Database
from nanofolks.store.inbox import InboxRepo, InboxRow
from nanofolks.store.outbox import OutboxRepo, OutboxRow


def full_config() -> Config:
    return Config.model_validate({
        "providers": {"openai": {"apiKey": "sk-openai-secret"}, "groq": {"apiKey": "gsk-groq-secret"}},
        "channels": {
            "telegram": {"enabled": True, "token": "123:telegram-secret"},
            "discord": {"enabled": True, "token": "discord-secret-token"},
            "slack": {"enabled": True, "botToken": "xoxb-slack-bot-secret", "appToken": "xapp-slack-app-secret"},
            "whatsapp": {"enabled": True, "bridgeToken": "whatsapp-bridge-secret"},
        },
    })


def test_every_secret_of_every_section_is_found_by_its_schema_mark_and_masked_in_logs() -> None:
    secrets = dict(secret_values(full_config()))
    assert sorted(secrets.values()) == sorted(["sk-openai-secret", "gsk-groq-secret", "123:telegram-secret",
                                               "discord-secret-token", "xoxb-slack-bot-secret",
                                               "xapp-slack-app-secret", "whatsapp-bridge-secret"])
    assert "channels.slack.botToken" in secrets and "providers.openai.apiKey" in secrets
    remember_config_secrets(full_config())
    try:
        raise RuntimeError("bridge refused whatsapp-bridge-secret")
    except RuntimeError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "token %s and %s", ("123:telegram-secret",
                                   "xapp-slack-app-secret"), sys.exc_info())
    assert SanitizeFilter().filter(record)
    assert record.getMessage() == "token *** and ***"
    assert "whatsapp-bridge-secret" not in record.exc_text and "***" in record.exc_text


def test_each_entry_says_what_its_adapter_can_do() -> None:
    """The registry's capabilities are what the gateway relies on instead of probing adapters: they must
    match the adapter classes (loaded here, as the gateway loads them)."""
    config = full_config()
    for entry in CHANNELS.values():
        adapter = type(entry.build(config))
        assert adapter.platform == entry.platform
        assert hasattr(adapter, "typing") == entry.typing, entry.platform
        assert hasattr(adapter, "register_commands") == entry.command_menu, entry.platform
        assert hasattr(adapter, "stream") == entry.streams, entry.platform
        assert hasattr(adapter, "attach") == entry.serves_pages, entry.platform
    with pytest.raises(ValueError, match="telegram, discord, slack, whatsapp, web"):
        spec("irc")
    assert list(CHANNEL_PROBES) == list(CHANNELS)  # `nanofolks doctor` probes every registered channel


def test_a_lock_names_the_credential_without_revealing_it() -> None:
    config = full_config()
    slack = CHANNELS["slack"]
    key = slack.lock_key(config)
    assert "slack" not in key and len(key) == 16
    config.channels.slack.bot_token = "xoxb-another-bot"  # Socket Mode: one gateway per app token
    assert slack.lock_key(config) == key
    config.channels.slack.app_token = "xapp-another-app"
    assert slack.lock_key(config) != key
    assert channel_lock_path(slack, config).name == f"slack-{slack.lock_key(config)}.lock"


def test_chat_commands_come_from_one_list() -> None:
    assert menu() == [("rooms", "List the rooms"), ("room", "Move this chat to a room: /room NAME"),
                      ("help", "How to talk to the crew")]
    parsed = parse_command("/ROOM  #work ")
    assert parsed is not None and (parsed[0].name, parsed[1]) == ("room", "#work")
    assert parse_command("/start") is not None  # answered, though not in the menu
    assert parse_command("/weather") is None and parse_command("room") is None


def test_build_channels_builds_each_enabled_platform_and_names_what_it_could_not() -> None:
    channels, failures = build_channels(full_config())
    assert [c.platform for c in channels] == list(CHANNELS) == ["telegram", "discord", "slack", "whatsapp", "web"]
    assert failures == {}

    config = full_config()
    config.channels.slack.app_token = ""
    config.channels.discord.enabled = False
    config.dashboard.enabled = False
    channels, failures = build_channels(config)
    assert [c.platform for c in channels] == ["telegram", "whatsapp"]
    assert list(failures) == ["slack"] and "appToken" in failures["slack"]

    assert [c.platform for c in build_channels(Config())[0]] == ["web"]  # the dashboard is on by default
    nothing = Config()
    nothing.dashboard.enabled = False
    with pytest.raises(ChannelError) as info:
        build_channels(nothing)
    assert all(spec.key + ".enabled" in str(info.value) for spec in CHANNELS.values())


def test_the_report_covers_every_platform_with_the_lock_probe_heartbeat_and_counts(home: Path) -> None:
    config = full_config()
    db = Database(home / "nanofolks.db")
    try:
        rows = {r["channel"]: r for r in channel_report(config, db)}
        assert list(rows) == list(CHANNELS)
        assert all(r["state"] == "stopped" and r["pid"] is None and r["configured"] for r in rows.values())

        # Slack runs in "this gateway" (we hold its lock and wrote its heartbeat); an older account left rows.
        lock = TokenLock(channel_lock_path(CHANNELS["slack"], config))
        lock.acquire("slack bot")
        states = ChannelStateRepo(db)
        states.set("slack", "UOLD", "status", json.dumps({"state": "stopped", "pid": 1, "at": 1.0}))
        states.set("slack", "UBOT", "status", json.dumps({"state": "reconnecting", "pid": os.getpid(),
                                                           "at": 2.0, "username": "crewbot"}))
        inbox = InboxRepo(db)
        for account, message_id in (("UOLD", "1"), ("UBOT", "2"), ("UBOT", "3")):
            inbox.add(InboxRow("slack", account, "D1", message_id, "hi"))
        OutboxRepo(db).enqueue([OutboxRow("k1", "slack", "UBOT", "D1", "a"), OutboxRow("k2", "slack", "UBOT", "D1", "b")])
        # Discord's lock is held but its heartbeat is an older process's: that gateway is still starting.
        other = TokenLock(channel_lock_path(CHANNELS["discord"], config))
        other.acquire("discord bot")
        states.set("discord", "100", "status", json.dumps({"state": "running", "pid": -5, "at": 3.0}))
        try:
            rows = {r["channel"]: r for r in channel_report(config, db)}
        finally:
            lock.release()
            other.release()
        slack = rows["slack"]
        assert (slack["state"], slack["pid"], slack["account"], slack["username"]) == \
            ("reconnecting", os.getpid(), "UBOT", "crewbot")
        assert slack["last_heartbeat"] == 2.0
        assert slack["inbox"] == {"pending": 3, "done": 0, "denied": 0}
        assert slack["outbox"]["pending"] == 2 and slack["outbox"]["uncertain"] == 0
        assert rows["discord"]["state"] == "starting"
        assert rows["telegram"]["state"] == "stopped" and rows["whatsapp"]["inbox"]["pending"] == 0

        config.channels.whatsapp.bridge_token = ""
        problem = {r["channel"]: r for r in channel_report(config, db)}["whatsapp"]
        assert not problem["configured"] and "bridgeToken" in problem["problem"]
    finally:
        db.close()


async def test_a_failing_gateway_task_is_started_again_with_backoff_and_status_says_so() -> None:
    import asyncio
    import time

    from nanofolks.gateway.core import supervised

    runs: list[float] = []
    failing: set[str] = set()

    async def job() -> None:
        runs.append(time.monotonic())
        if len(runs) < 3:
            raise RuntimeError("the send worker tripped")

    task = asyncio.create_task(supervised("send-telegram-1", job, failing, first_delay=0.2))
    await asyncio.sleep(0.05)
    assert failing == {"send-telegram-1"}  # the heartbeat reports "degraded" meanwhile
    await asyncio.wait_for(task, 10)
    assert len(runs) == 3 and runs[1] - runs[0] >= 0.2 and runs[2] - runs[1] >= 0.4  # started again, backing off
    assert failing == set()
