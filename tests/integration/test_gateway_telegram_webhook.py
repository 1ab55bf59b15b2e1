"""`nanofolks gateway` in webhook mode: the loopback Bot API server posts updates to the gateway, as
Telegram does after setWebhook. An update is acknowledged only once stored; forged posts are refused."""

from __future__ import annotations

import json
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.telegram_server import FakeTelegram
from tests.integration.gateway_harness import Gateway
from tests.integration.test_gateway_telegram import ALICE, barrier, configure

SECRET = "s3cret-Token_1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def tg() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        yield server


@pytest.fixture
def hook_url() -> str:
    return f"http://127.0.0.1:{free_port()}/tg-hook"


@pytest.fixture
def gateway(crew_home: Path, tg: FakeTelegram, hook_url: str) -> Iterator[Gateway]:
    port = int(hook_url.split(":")[2].split("/")[0])
    configure(crew_home, tg, webhookUrl=hook_url, webhookPort=port, webhookSecret=SECRET)
    gw = Gateway(crew_home)
    yield gw
    gw.close()


def post(url: str, body: bytes, secret: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    return httpx.post(url, content=body, headers=headers, timeout=10, trust_env=False).status_code


def forged_update(update_id: int, text: str) -> bytes:
    return json.dumps({"update_id": update_id, "message": {
        "message_id": update_id, "date": 0, "chat": {"id": ALICE, "type": "private"},
        "from": {"id": ALICE, "is_bot": False, "first_name": "A"}, "text": text}}).encode()


def test_webhook_answers_and_refuses_forged_posts(gateway: Gateway, tg: FakeTelegram, hook_url: str) -> None:
    gateway.start()
    assert tg.webhook["url"] == hook_url and tg.webhook["secret_token"] == SECRET
    first = tg.push_message(ALICE, "hello by webhook", user_id=ALICE)
    reply = tg.wait_for_sent(1, 60)[0]
    assert reply["chat_id"] == ALICE and "hello by webhook" in reply["text"]
    assert tg.count("getUpdates") == 0  # nobody polls while the webhook is set

    assert post(hook_url, forged_update(90_001, "forged without a secret"), None) == 403
    assert post(hook_url, forged_update(90_002, "forged with a wrong secret"), "guess") == 403
    assert post(hook_url, b"{not json", SECRET) == 400
    assert post(hook_url, b"[1, 2]", SECRET) == 400
    assert post(hook_url, b" " * (2 << 20), SECRET) == 413  # over 1 MB: refused before it is read

    tg.redeliver(first)  # Telegram re-sends when unsure: the inbox recognises it
    barrier(tg)
    assert sum("hello by webhook" in m["text"] for m in tg.sent) == 1
    assert not any("forged" in m["text"] for m in tg.sent)
    assert "without the secret token refused" in gateway.output()
    assert gateway.stop(signal.SIGTERM) == 0
    assert SECRET not in (gateway.home / "logs" / "gateway.log").read_text()


def test_updates_wait_for_a_stopped_gateway_then_polling_takes_over(gateway: Gateway, tg: FakeTelegram,
                                                                    crew_home: Path) -> None:
    gateway.start()
    gateway.stop(signal.SIGKILL)
    tg.push_message(ALICE, "sent while the gateway was down", user_id=ALICE)
    tg.wait_for(lambda: any(isinstance(status, str) for _, status in tg.webhook_deliveries), 30,
                "a delivery refused by the stopped gateway")

    gateway.start()  # Telegram delivers it again; the gateway answers once
    tg.wait_for(lambda: any("while the gateway was down" in m["text"] for m in tg.sent), 60, "the late reply")
    barrier(tg)
    assert sum("while the gateway was down" in m["text"] for m in tg.sent) == 1
    assert gateway.stop() == 0

    configure(crew_home, tg)  # back to long polling: the gateway removes the webhook itself
    gateway.start()
    assert tg.webhook == {}
    tg.push_message(ALICE, "polled again", user_id=ALICE)
    tg.wait_for(lambda: any("polled again" in m["text"] for m in tg.sent), 60, "a reply by polling")
    assert "webhook removed" in gateway.output()
