"""The web chat as a channel like the others (channels/registry.py: `web`): a message typed on the page goes
through the same ingress, inbox, turn and outbox as a Telegram message; the reply is stored in the room and
"sent" to the page. It also runs the dashboard's web server, started and stopped with the channel."""

from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING, Any

from nanofolks.channels.base import ChannelError, OnMessage
from nanofolks.channels.messages import InboundMessage, OutboundMessage
from nanofolks.web.hub import Hub
from nanofolks.web.page import ACCOUNT

if TYPE_CHECKING:
    from aiohttp import web

    from nanofolks.config.schema import DashboardConfig
    from nanofolks.services import Services

log = logging.getLogger("nanofolks.web")



def render(markdown: str) -> list[str]:
    """A reply for the page: one piece, kept as Markdown (the page shows the stored message)."""
    return [markdown]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WebChannel:
    platform = "web"

    def __init__(self, section: DashboardConfig):
        self.section = section
        self.username = ""  # the dashboard's address once started: `status` and `nanofolks dashboard` show it
        self.hub = Hub()
        self.services: Services | None = None
        self.closing = False  # pages following the crew (server-sent events) end when it is set
        self._state = "starting"
        self._on_message: OnMessage | None = None
        self._runner: web.AppRunner | None = None

    @property
    def account(self) -> str:
        return ACCOUNT

    @property
    def state(self) -> str:
        return self._state

    def attach(self, services: Any) -> None:
        self.services = services

    async def start(self, on_message: OnMessage) -> None:
        from aiohttp import web

        from nanofolks.web.app import build_app

        if self.services is None:
            raise ChannelError("the dashboard was built without the gateway's services")
        self._on_message = on_message
        host, port = self.section.host, self.section.port
        runner = web.AppRunner(build_app(self.services, self), access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            await runner.cleanup()
            raise ChannelError(f"dashboard: cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        self._runner = runner
        bound = runner.addresses[0][1]
        shown = host if is_loopback(host) or host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        self.username = f"http://{shown}:{bound}"
        self._state = "running"
        if not is_loopback(host):
            log.warning("dashboard listening on %s:%s beyond this machine, without TLS: put a TLS proxy in front "
                        "(or set dashboard.host to 127.0.0.1)", host, bound)
        log.info("dashboard at %s (`nanofolks dashboard` prints a login link)", self.username)

    async def stop(self) -> None:
        self.closing = True
        self._state = "stopped"
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def receive(self, msg: InboundMessage) -> None:
        """A message typed on the page: into the inbox, like any platform's."""
        if self._on_message is None:
            raise ChannelError("the web channel is not started")
        await self._on_message(msg)

    async def send(self, message: OutboundMessage) -> str:
        """The reply is stored in the room already: pages following it are told to look now."""
        self.hub.publish(f"chat:{message.chat_id}", None)
        return message.key

    def stream(self, chat_id: str, turn: str, bot: str, piece: str) -> None:
        self.hub.publish(f"chat:{chat_id}", (turn, bot, piece))
