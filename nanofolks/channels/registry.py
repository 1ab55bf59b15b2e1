"""Every chat platform, described once: its adapter, config section, lock key and what it can do.

The gateway builds channels from here, `nanofolks status` and `nanofolks channels` report from here, and
the CLI checks channel names against it. Adapter modules are imported only when a channel is built:
`nanofolks pairing list` loads no platform library."""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nanofolks.channels.base import Channel
    from nanofolks.config.schema import Config


@dataclass(frozen=True)
class ChannelSpec:
    platform: str  # "telegram": its rows carry this name
    adapter: str  # "module:Class", imported when a channel is built
    renderer: str  # "module:function": Markdown -> the chunks to send, converted and within the limit
    key: str  # its config section's dotted key: channels.telegram, dashboard
    credential: Callable[[Any], str]  # what one gateway at a time may use (a bot token, a bridge...)
    typing: bool = False  # shows "typing..." while the crew works (the adapter is a ShowsTyping)
    command_menu: bool = False  # lists the chat commands in the app's menu (the adapter has a CommandMenu)
    threads_direct_replies: bool = False  # answers in direct chats go in a thread too (Slack DMs have them)
    streams: bool = False  # shows a reply as it is written (the adapter is a Streams)
    serves_pages: bool = False  # serves the dashboard and needs the gateway's services (a ServesPages)

    def section(self, config: Config) -> Any:
        section: Any = config
        for name in self.key.split("."):
            section = getattr(section, name)
        return section

    def lock_key(self, config: Config) -> str:
        """Names the credential for the one-gateway-per-credential lock, without revealing it."""
        return hashlib.sha256(self.credential(self.section(config)).encode()).hexdigest()[:16]

    def build(self, config: Config) -> Channel:
        """The adapter, given its section; ChannelError when the section lacks what it needs (a token...)."""
        adapter: type[Channel] = _load(self.adapter)
        return adapter(self.section(config))  # type: ignore[call-arg]

    def render(self, markdown: str) -> list[str]:
        """A reply as the platform's messages: split, converted, each within the platform's limit. Done
        once, before the reply is queued: the adapter sends each chunk as it is."""
        return _load(self.renderer)(markdown)


def _load(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _whatsapp_target(section: Any) -> str:
    """Our own bridge child is keyed by its credentials folder (two bridges on one would fight), else the URL."""
    from nanofolks.channels.whatsapp_bridge import auth_dir

    return str(auth_dir()) if section.start_bridge else section.bridge_url


CHANNELS: dict[str, ChannelSpec] = {spec.platform: spec for spec in (
    ChannelSpec("telegram", adapter="nanofolks.channels.telegram:TelegramChannel",
                renderer="nanofolks.channels.formatting:split_for_telegram",
                key="channels.telegram", credential=lambda s: s.token, typing=True, command_menu=True),
    ChannelSpec("discord", adapter="nanofolks.channels.discord:DiscordChannel",
                renderer="nanofolks.channels.formatting:split_for_discord",
                key="channels.discord", credential=lambda s: s.token, typing=True),
    # Socket Mode spreads events over every connection of an app token: one gateway per app token.
    # No typing: bots on Socket Mode have no indicator (only the legacy RTM API had one).
    ChannelSpec("slack", adapter="nanofolks.channels.slack:SlackChannel",
                renderer="nanofolks.channels.formatting:split_for_slack",
                key="channels.slack", credential=lambda s: s.app_token, threads_direct_replies=True),
    # No typing: the bridge protocol has no typing frame.
    ChannelSpec("whatsapp", adapter="nanofolks.channels.whatsapp:WhatsAppChannel",
                renderer="nanofolks.channels.formatting:split_for_whatsapp",
                key="channels.whatsapp", credential=_whatsapp_target),
    # The dashboard's chat: one web server per address; the page streams replies as they are written.
    ChannelSpec("web", adapter="nanofolks.web.channel:WebChannel", renderer="nanofolks.web.channel:render",
                key="dashboard", credential=lambda s: f"{s.host}:{s.port}", streams=True, serves_pages=True),
)}


def spec(platform: str) -> ChannelSpec:
    """The platform's description; ValueError naming the known ones for any other name."""
    try:
        return CHANNELS[platform]
    except KeyError:
        raise ValueError(f"unknown channel {platform!r}: choose one of {', '.join(CHANNELS)}") from None
